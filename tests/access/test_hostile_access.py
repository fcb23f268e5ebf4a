"""Hostile input on the access commands, through the real console script and through
the services: garbage session tokens, injection strings and oversized values in every
reveal argument, hostile policy files (huge, binary, invalid UTF-8, TOML bombs),
binary files to `export trace`, absurd approval ids.

Every case must end in a clear error that names the field and the reason, with exit
code 1, 2 or 3 — never 70 (internal error) or a traceback — leave nothing half-stored
(no quota charge, no ticket, no policy version, no vote) and print none of the seeded
personal data.
"""

from __future__ import annotations

import base64
import os
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyotp
import pytest
from argon2 import PasswordHasher
from sqlalchemy import text

from tests.access.network import OPERATOR, PASSWORD, Network, build_network
from tests.conftest import CLI, make_settings, row_pii, run_cli, scan_text
from waybillguard.domain.errors import FieldError
from waybillguard.services import approvals, auth, exports, identities, policy_admin, reveal
from waybillguard.services.app import App, initialise, open_app
from waybillguard.vault import credentials

REFUSED = 3
TEN_KB = 10 * 1024
# Address space for a console script fed a memory bomb: far above what a command needs
# (~0.3 GB), far below what would disturb anything else on the machine.
MEMORY_LIMIT = 2 * 1024**3
# A refusal takes a second or two; a parser doing quadratic work on a file under the
# 1 MB limit takes minutes. Generous for a loaded machine, short enough to notice.
BOMB_TIMEOUT = 30

_COUNTED = (
    "quota_charges",
    "tickets",
    "policy_versions",
    "approval_requests",
    "approval_votes",
    "exports",
    "alerts",
    "principals",
    "waybills",
    "break_glass",
)


def _snapshot(app: App) -> dict[str, int]:
    """What a refused request must not change (audit events of refusals are expected)."""
    with app.engine.connect() as conn:
        counts = {
            t: int(conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()) for t in _COUNTED
        }
        counts["charged_records"] = int(
            conn.execute(text("SELECT COALESCE(SUM(records), 0) FROM quota_charges")).scalar_one()
        )
        counts["policy_version"] = int(
            conn.execute(text("SELECT COALESCE(MAX(version), 0) FROM policy_versions")).scalar_one()
        )
        counts["live_sessions"] = int(
            conn.execute(
                text("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL")
            ).scalar_one()
        )
    return counts


def _login(app: App, net: Network, username: str) -> str:
    code = pyotp.TOTP(net.totp[username]).now() if username in net.totp else None
    return auth.login(app, username, PASSWORD, code, None, "test").token


@dataclass
class Home:
    """A SQLite home with the test network, sessions for some of its people, and the
    seeded personal values to look for in any output."""

    app: App
    net: Network
    home: Path
    files: Path
    tokens: dict[str, str]
    needles: set[str]

    def run(
        self, *args: str, token: str | None = None, limited: bool = False
    ) -> subprocess.CompletedProcess[str]:
        env = {"WAYBILLGUARD_TOKEN": token} if token is not None else None
        if not limited:
            return run_cli(*args, home=self.home, env_extra=env, timeout=120)
        return _run_limited(self.home, args, env)


def _run_limited(
    home: Path, args: tuple[str, ...], env_extra: dict[str, str] | None
) -> subprocess.CompletedProcess[str]:
    """The console script under an address-space limit and a timeout: a bomb that gets
    through shows up as a MemoryError (exit 70) or a kill, not as a frozen machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILLGUARD_")}
    env["WAYBILLGUARD_HOME"] = str(home)
    env.update(env_extra or {})
    try:
        return subprocess.run(
            ["prlimit", f"--as={MEMORY_LIMIT}", *CLI, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=BOMB_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(args)[:200]}: no answer within {BOMB_TIMEOUT} s")


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    root = tmp_path_factory.mktemp("hostile-cli")
    settings = make_settings(root / "home")
    initialise(settings)
    app = open_app(settings)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(credentials, "PASSWORD_HASHER", PasswordHasher(1, 1024, 1))
            net = build_network(app, root, count=20)
            tokens = {u: _login(app, net, u) for u in ("clerk1", "cs1", "sec1", "cs2", "clerk2")}
        identities.disable_user(app, OPERATOR, "cs2")  # ends cs2's sessions
        identities.disable_unit(app, OPERATOR, "S2")  # clerk2's session stays, unusable
        files = root / "files"
        files.mkdir()
        needles = set().union(*(row_pii(r) for r in net.rows))
        yield Home(app, net, settings.home, files, tokens, needles)
    finally:
        app.close()


def _assert_clean(
    home: Home,
    result: subprocess.CompletedProcess[str],
    codes: set[int],
    names: str | None = None,
) -> None:
    """Exit code in `codes`, no traceback or internal error, the field `names` in the
    message, no seeded personal value anywhere in the output."""
    output = result.stdout + result.stderr
    where = (
        f"exit {result.returncode}\nstdout: {result.stdout[-800:]}\nstderr: {result.stderr[-800:]}"
    )
    assert "Traceback" not in output, where
    assert result.returncode != 70 and "internal error" not in output, where
    assert result.returncode in codes, where
    if names is not None:
        assert names in result.stderr, where
    assert scan_text(output, home.needles) == [], where


def _seeded_phone(home: Home) -> str:
    return str(home.net.rows[0]["recipient"]["phone"])


# -- session tokens -------------------------------------------------------------------------
def _random_token() -> str:
    return "wg_" + base64.urlsafe_b64encode(random.Random(7).randbytes(32)).decode().rstrip("=")


HOSTILE_TOKENS: dict[str, tuple[str, str]] = {
    # name: (WAYBILLGUARD_TOKEN, the rule the refusal must name)
    "empty": ("", "auth.required"),
    "blank": ("   ", "auth.required"),
    "ten_kb": ("wg_" + "A" * TEN_KB, "auth.session_invalid"),
    "non_ascii": ("wg_令牌🚚ünïcödé", "auth.session_invalid"),
    "rtl_override": ("wg_\u202eabcdef\u202c", "auth.session_invalid"),
    "lone_surrogates": ("wg_\udcff\udcfe", "auth.session_invalid"),  # invalid UTF-8 bytes
    "control_chars": ("wg_\x1b[31mred\x07", "auth.session_invalid"),
    "sql_injection": ("wg_' OR '1'='1'; DROP TABLE sessions; --", "auth.session_invalid"),
    "bare_sql": ("' OR 1=1 --", "auth.session_invalid"),
    "bearer_prefix": ("Bearer wg_abc", "auth.session_invalid"),
    "unknown_well_formed": (_random_token(), "auth.session_invalid"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_TOKENS))
def test_reveal_with_hostile_token_is_denied(cli: Home, name: str) -> None:
    token, rule = HOSTILE_TOKENS[name]
    number = cli.net.s1_numbers[0]
    before = _snapshot(cli.app)
    result = cli.run(
        "reveal", number, "--fields", "recipient.phone", "--purpose", "return", "--json",
        token=token,
    )  # fmt: skip
    _assert_clean(cli, result, {REFUSED})
    answer = orjson.loads(result.stdout)
    assert answer["decision"] == "deny" and answer["rule"] == rule, answer
    assert answer["message"] and "fields" not in answer
    assert _snapshot(cli.app) == before


@pytest.mark.parametrize(
    ("user", "rule"),
    [("cs2", "auth.session_revoked"), ("clerk2", "auth.account_disabled")],
    ids=["disabled_user", "disabled_unit"],
)
def test_reveal_with_token_of_disabled_principal_is_denied(cli: Home, user: str, rule: str) -> None:
    before = _snapshot(cli.app)
    result = cli.run(
        "reveal", cli.net.numbers[0], "--fields", "recipient.phone", "--purpose", "ticket:H1",
        "--json", token=cli.tokens[user],
    )  # fmt: skip
    _assert_clean(cli, result, {REFUSED})
    answer = orjson.loads(result.stdout)
    assert (answer["decision"], answer["rule"]) == ("deny", rule)
    assert _snapshot(cli.app) == before


def test_control_valid_reveal_is_allowed(cli: Home) -> None:
    """The sessions used below work: each hostile case differs only in its hostile part."""
    number = cli.net.s1_numbers[0]
    result = cli.run(
        "reveal", number, "--fields", "recipient.phone", "--purpose", "return", "--json",
        token=cli.tokens["clerk1"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["decision"] == "allow"


# -- reveal arguments -----------------------------------------------------------------------
INJECTION = "1';DROP TABLE waybills;--"

# name: (argument overrides, exit codes, text the message must contain)
REVEAL_CASES: dict[str, tuple[dict[str, str], set[int], str | None]] = {
    "number_sql": ({"number": "WG' OR '1'='1"}, {REFUSED}, "waybill.not_found"),
    "number_ten_kb": ({"number": "WG" + "1" * TEN_KB}, {REFUSED}, "waybill.not_found"),
    "number_non_ascii": ({"number": "运单\u202e号码"}, {REFUSED}, "waybill.not_found"),
    "number_dash": ({"number": "-1"}, {2}, None),
    "fields_sql": ({"fields": "recipient.phone' OR '1'='1"}, {2}, "fields:"),
    "fields_drop": ({"fields": "recipient.phone;DROP TABLE waybills;--"}, {2}, "fields:"),
    "fields_ten_kb": ({"fields": "recipient.phone," + "x" * TEN_KB}, {2}, "fields:"),
    "fields_rtl": ({"fields": "recipient.phone,\u202esender.phone"}, {2}, "fields:"),
    "fields_empty_items": ({"fields": ",,, ,"}, {2}, "fields:"),
    "purpose_sql": ({"purpose": f"ticket:{INJECTION}"}, {2}, "purpose:"),
    "purpose_ten_kb": ({"purpose": "legal:" + "A" * TEN_KB}, {2}, "purpose:"),
    "purpose_rtl": ({"purpose": "return\u202e"}, {2}, "purpose:"),
    "purpose_control": ({"purpose": "ticket:T1\x1b[2J"}, {2}, "purpose:"),
    "reason_ten_kb": ({"reason": "r" * TEN_KB}, {2}, "reason:"),
}


def _reveal_args(cli: Home, overrides: dict[str, str]) -> list[str]:
    args = {
        "number": cli.net.s1_numbers[0],
        "fields": "recipient.phone",
        "purpose": "return",
        "reason": "",
        **overrides,
    }
    out = ["reveal", args["number"], "--fields", args["fields"], "--purpose", args["purpose"]]
    if args["reason"]:
        out += ["--reason", args["reason"]]
    return out


@pytest.mark.parametrize("name", sorted(REVEAL_CASES))
def test_reveal_with_hostile_arguments(cli: Home, name: str) -> None:
    overrides, codes, names = REVEAL_CASES[name]
    before = _snapshot(cli.app)
    result = cli.run(*_reveal_args(cli, overrides), token=cli.tokens["clerk1"])
    _assert_clean(cli, result, codes, names)
    for value in overrides.values():
        if len(value) > 12:
            assert value not in result.stdout + result.stderr  # the value is never echoed
    assert _snapshot(cli.app) == before


def test_injection_in_a_reason_is_only_text(cli: Home) -> None:
    """A reason is free text: quotes and semicolons are allowed and stored as they are
    (bound parameters), and nothing is dropped."""
    before = _snapshot(cli.app)
    result = cli.run(
        *_reveal_args(cli, {"reason": f"parcel {INJECTION}"}), "--json", token=cli.tokens["clerk1"]
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert orjson.loads(result.stdout)["decision"] == "allow"
    after = _snapshot(cli.app)
    assert after["waybills"] == before["waybills"]
    assert after["charged_records"] == before["charged_records"] + 1
    with cli.app.engine.connect() as conn:
        kept = conn.execute(text("SELECT reason FROM quota_charges ORDER BY id DESC")).first()
    assert kept is not None and kept[0] == f"parcel {INJECTION}"


def test_reason_with_a_customers_phone_is_refused_without_echo(cli: Home) -> None:
    phone = _seeded_phone(cli)
    before = _snapshot(cli.app)
    result = cli.run(
        *_reveal_args(cli, {"reason": f"customer {phone} called"}), token=cli.tokens["clerk1"]
    )
    _assert_clean(cli, result, {2}, "reason:")
    assert "phone" in result.stderr or "personal" in result.stderr
    assert _snapshot(cli.app) == before


def test_purpose_with_a_customers_phone_is_refused_without_echo(cli: Home) -> None:
    phone = _seeded_phone(cli)
    result = cli.run(*_reveal_args(cli, {"purpose": f"ticket:{phone}"}), token=cli.tokens["clerk1"])
    _assert_clean(cli, result, {2}, "purpose:")


@pytest.mark.parametrize(
    ("reason", "what"),
    [
        ("damaged parcel \x1b[31mred\x07", "control"),
        ("damaged parcel \u202eemoclew", "invisible"),
        ("damaged\u200bparcel claim", "invisible"),
    ],
    ids=["ansi_escape_and_bell", "rtl_override", "zero_width_space"],
)
def test_reason_with_control_characters_says_so(cli: Home, reason: str, what: str) -> None:
    """The refusal must give the real reason (control or invisible characters), not
    claim the text holds personal data."""
    before = _snapshot(cli.app)
    result = cli.run(*_reveal_args(cli, {"reason": reason}), token=cli.tokens["clerk1"])
    _assert_clean(cli, result, {2}, "reason:")
    assert _snapshot(cli.app) == before
    assert what in result.stderr, result.stderr


def test_reveal_with_absurd_approval_id(cli: Home) -> None:
    before = _snapshot(cli.app)
    result = cli.run(
        "reveal", cli.net.numbers[0], "--fields", "recipient.phone", "--purpose", "ticket:H2",
        "--approval", str(10**30), "--json", token=cli.tokens["cs1"],
    )  # fmt: skip
    _assert_clean(cli, result, {1, 2, REFUSED})
    assert _snapshot(cli.app)["charged_records"] == before["charged_records"]


# -- policy files ---------------------------------------------------------------------------
def _policy_text(cli: Home) -> str:
    return policy_admin.text_in_force(cli.app)[1]


def _write(cli: Home, name: str, data: bytes) -> Path:
    path = cli.files / name
    path.write_bytes(data)
    return path


def _policy_file(cli: Home, case: str) -> Path:
    body = _policy_text(cli).replace("version = 1", "version = 2")
    files = cli.files
    if case == "fifty_mb":
        path = files / "huge.toml"
        with path.open("wb") as handle:
            handle.write(body.encode())
            handle.truncate(50 * 1024 * 1024)  # sparse: 50 MB as far as stat() knows
        return path
    if case == "binary":
        return _write(cli, "policy.bin", random.Random(3).randbytes(64 * 1024))
    if case == "binary_ascii_controls":
        return _write(cli, "controls.toml", bytes(range(32)) * 100)
    if case == "invalid_utf8":
        return _write(cli, "bad-utf8.toml", body.encode()[:200] + b"\xff\xfe\xc3(" + b"\n")
    if case == "nul_bytes":
        return _write(cli, "nul.toml", body.encode().replace(b"\n", b"\x00\n", 3))
    if case == "nested_arrays":
        depth = 100_000
        return _write(cli, "arrays.toml", f"x = {'[' * depth}{']' * depth}\n".encode())
    if case == "nested_inline_tables":
        depth = 50_000
        return _write(cli, "inline.toml", f"x = {'{a=' * depth}1{'}' * depth}\n".encode())
    if case == "deep_table_header":
        return _write(cli, "header.toml", f"[{'.'.join(['a'] * 100_000)}]\n".encode())
    if case == "long_dotted_key":  # quadratic in tomllib: ~4 MB of work per 100 bytes
        return _write(cli, "dotted.toml", f"{'.'.join(['a'] * 60_000)} = 1\n".encode())
    if case == "huge_version":
        return _write(
            cli, "version.toml", body.replace("version = 2", f"version = {10**30}").encode()
        )
    if case == "huge_setting":
        return _write(
            cli,
            "setting.toml",
            body.replace("step_up_valid_minutes = 5", f"step_up_valid_minutes = {10**30}").encode(),
        )
    if case == "personal_key":
        return _write(cli, "key.toml", f'"{_seeded_phone(cli)}" = 1\n{body}'.encode())
    if case == "personal_role":
        name = str(cli.net.rows[0]["recipient"]["name"])
        return _write(cli, "role.toml", body.replace("[roles.admin]", f'[roles."{name}"]').encode())
    if case == "dev_zero":
        return Path("/dev/zero")
    raise AssertionError(case)


# name: (exit codes, text the message must contain)
POLICY_CASES: dict[str, tuple[set[int], str | None]] = {
    "fifty_mb": ({2}, "larger than 1 MB"),
    "binary": ({1, 2}, "policy.bin:"),
    "binary_ascii_controls": ({1, 2}, "controls.toml:"),
    "invalid_utf8": ({1, 2}, "bad-utf8.toml:"),
    "nul_bytes": ({1, 2}, "nul.toml:"),
    "nested_arrays": ({1, 2}, "arrays.toml:"),
    "nested_inline_tables": ({1, 2}, "inline.toml:"),
    "deep_table_header": ({1, 2}, "header.toml:"),
    "long_dotted_key": ({1, 2}, "dotted.toml:"),
    "huge_version": ({1, 2}, "version"),
    "huge_setting": ({1, 2}, "step_up_valid_minutes"),
    "personal_key": ({1, 2}, "key.toml:"),
    "personal_role": ({1, 2}, "role.toml:"),
    "dev_zero": ({1, 2}, "zero:"),
}


@pytest.mark.parametrize("case", sorted(POLICY_CASES))
def test_policy_apply_with_hostile_file(cli: Home, case: str) -> None:
    codes, names = POLICY_CASES[case]
    path = _policy_file(cli, case)
    before = _snapshot(cli.app)
    result = cli.run("policy", "apply", str(path), limited=True)
    _assert_clean(cli, result, codes, names)
    after = _snapshot(cli.app)
    assert after["policy_version"] == before["policy_version"] == 1
    assert after == before


# -- export trace ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["binary", "missing", "directory", "dev_zero"])
def test_export_trace_with_hostile_file(cli: Home, case: str) -> None:
    if case == "binary":
        path = _write(cli, "leak.bin", random.Random(5).randbytes(1024 * 1024))
    elif case == "missing":
        path = cli.files / "no-such-file.csv"
    elif case == "directory":
        path = cli.files
    else:
        path = Path("/dev/zero")
    result = cli.run("export", "trace", str(path), limited=True)
    _assert_clean(cli, result, {1, 2})
    assert path.name in result.stderr or "canary" in result.stdout + result.stderr


# -- approval ids ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "request_id"),
    [
        ("approve", "-1"),
        ("approve", "abc"),
        ("approve", "0"),
        ("approve", str(2**63 - 1)),
        ("approve", str(2**63)),
        ("approve", str(10**30)),
        ("deny", str(10**30)),
        ("show", str(10**30)),
        ("approve", "1e3"),
        ("approve", "１２"),  # full-width digits
    ],
)
def test_approvals_with_absurd_ids(cli: Home, command: str, request_id: str) -> None:
    before = _snapshot(cli.app)
    result = cli.run("approvals", command, request_id, token=cli.tokens["sec1"])
    _assert_clean(cli, result, {1, 2, REFUSED})
    assert "request" in (result.stdout + result.stderr).lower()
    assert _snapshot(cli.app) == before


@pytest.mark.parametrize(
    "args",
    [
        ("export", "approve", str(10**30)),
        ("export", "download", str(10**30), "--out", "{files}/x.csv"),
        ("alerts", "ack", str(10**30)),
    ],
    ids=["export_approve", "export_download", "alerts_ack"],
)
def test_other_ids_out_of_range(cli: Home, args: tuple[str, ...]) -> None:
    before = _snapshot(cli.app)
    result = cli.run(*(a.format(files=cli.files) for a in args), token=cli.tokens["sec1"])
    _assert_clean(cli, result, {1, 2, REFUSED})
    assert _snapshot(cli.app) == before
    assert not (cli.files / "x.csv").exists()


# -- the same through the services, on SQLite and PostgreSQL --------------------------------
@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def net(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Network]:
    root = tmp_path_factory.mktemp(f"hostile-{request.param}")
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_server").create_database()
    settings = make_settings(root / "home", url)
    initialise(settings)
    with open_app(settings) as app:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(credentials, "PASSWORD_HASHER", PasswordHasher(1, 1024, 1))
            network = build_network(app, root, count=20)
        yield network


@pytest.mark.parametrize(
    "name", sorted(n for n in HOSTILE_TOKENS if HOSTILE_TOKENS[n][1] == "auth.session_invalid")
)
def test_authenticate_refuses_hostile_tokens(net: Network, name: str) -> None:
    token = HOSTILE_TOKENS[name][0]
    with pytest.raises(auth.AuthError) as caught:
        auth.authenticate(net.app, token)
    assert caught.value.code == "session_invalid"
    assert not auth.logout(net.app, token)


@pytest.mark.parametrize(
    ("overrides", "field_name"),
    [
        ({"fields": "recipient.phone' OR '1'='1"}, "fields"),
        ({"fields": "x" * TEN_KB}, "fields"),
        ({"purpose": f"ticket:{INJECTION}"}, "purpose"),
        ({"purpose": "legal:" + "A" * TEN_KB}, "purpose"),
        ({"reason": "r" * TEN_KB}, "reason"),
        ({"reason": "parcel \x1b[31m"}, "reason"),
        ({"reason": "parcel \u202e"}, "reason"),
    ],
)
def test_reveal_service_refuses_hostile_arguments(
    net: Network, overrides: dict[str, str], field_name: str
) -> None:
    app = net.app
    args: dict[str, Any] = {
        "number": net.s1_numbers[0],
        "fields": "recipient.phone",
        "purpose": "return",
        "reason": "",
        **overrides,
    }
    before = _snapshot(app)
    with pytest.raises(FieldError) as caught:
        reveal.reveal(
            app,
            net.caller("clerk1"),
            args["number"],
            args["fields"],
            args["purpose"],
            reason=args["reason"],
        )
    assert caught.value.field == field_name
    assert len(str(caught.value)) < 200
    assert _snapshot(app) == before


@pytest.mark.parametrize("number", ["WG' OR '1'='1", "WG" + "9" * TEN_KB, "运单\u202e", ""])
def test_reveal_service_hostile_number_is_not_found(net: Network, number: str) -> None:
    before = _snapshot(net.app)
    got = reveal.reveal(net.app, net.caller("clerk1"), number, "recipient.phone", "return")
    assert got.decision.rule == "waybill.not_found" and not got.fields
    assert _snapshot(net.app) == before


@pytest.mark.parametrize("request_id", [-1, 0, 2**63 - 1, 2**63, 10**30, -(10**30)])
def test_vote_on_absurd_request_ids(net: Network, request_id: int) -> None:
    before = _snapshot(net.app)
    with pytest.raises(approvals.ApprovalError) as caught:
        approvals.vote(
            net.app, net.caller("sec1"), request_id, "approve", identities.get_principal_by_id
        )
    assert caught.value.code == "approval.unknown"
    assert _snapshot(net.app) == before


@pytest.mark.parametrize("request_id", [2**63, 10**30])
def test_reveal_with_absurd_approval_id_service(net: Network, request_id: int) -> None:
    ticket = f"H3-{len(str(request_id))}"  # the network is shared by the parameters
    net.open_ticket(ticket, net.numbers[0], "recipient")
    before = _snapshot(net.app)
    got = reveal.reveal(
        net.app,
        net.caller("cs1"),
        net.numbers[0],
        "recipient.phone",
        f"ticket:{ticket}",
        approval_id=request_id,
    )
    assert not got.allowed and got.decision.rule == "approval.unknown"
    assert _snapshot(net.app)["charged_records"] == before["charged_records"]


@pytest.mark.parametrize(
    "case", ["nested_arrays", "nested_inline_tables", "huge_version", "huge_setting"]
)
def test_policy_service_refuses_hostile_text(net: Network, case: str) -> None:
    body = policy_admin.text_in_force(net.app)[1].replace("version = 1", "version = 2")
    texts = {
        "nested_arrays": f"x = {'[' * 100_000}{']' * 100_000}\n",
        "nested_inline_tables": f"x = {'{a=' * 50_000}1{'}' * 50_000}\n",
        "huge_version": body.replace("version = 2", f"version = {10**30}"),
        "huge_setting": body.replace(
            "step_up_valid_minutes = 5", f"step_up_valid_minutes = {10**30}"
        ),
    }
    before = _snapshot(net.app)
    with pytest.raises(FieldError):
        policy_admin.apply(net.app, OPERATOR, texts[case])
    assert _snapshot(net.app) == before


def test_trace_service_on_binary_file(net: Network, tmp_path: Path) -> None:
    path = tmp_path / "leak.bin"
    path.write_bytes(random.Random(9).randbytes(512 * 1024) + b"\xff\xfe\x00")
    assert exports.trace(net.app, path) == []
