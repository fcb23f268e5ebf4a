"""`units`, `users`, `clients`, `login`, `logout`, `whoami` on the command line.

The commands live in `entrypoints/access_cli.py`; they are registered here on a local
Typer app exactly as cli.py registers them, and run in-process (CliRunner)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import orjson
import pyotp
import pytest
import typer
from argon2 import PasswordHasher
from typer.testing import CliRunner

from tests.conftest import make_settings, run_cli
from waybillguard.entrypoints import access_cli
from waybillguard.entrypoints.session_file import (
    SESSION_FILE,
    TOKEN_ENV,
    SessionFileError,
    clear_token,
    load_token,
    save_token,
)
from waybillguard.services import audit, auth
from waybillguard.services.app import initialise, open_app
from waybillguard.vault import credentials

PASSWORD = "correct horse battery staple"
AMY_PASSWORD = "amy's own passphrase 2026"

cli = typer.Typer()
cli.add_typer(access_cli.units_app, name="units")
cli.add_typer(access_cli.users_app, name="users")
cli.add_typer(access_cli.clients_app, name="clients")
cli.command("login")(access_cli.login)
cli.command("logout")(access_cli.logout)
cli.command("whoami")(access_cli.whoami)


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(credentials, "PASSWORD_HASHER", PasswordHasher(1, 1024, 1))
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    yield


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    initialise(make_settings(path))
    return path


class Run:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.outputs: list[str] = []

    def __call__(
        self,
        *args: str,
        stdin: str | bytes | None = None,
        env: dict[str, str | None] | None = None,
        code: int = 0,
    ):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(
            cli, [*args, "--home", str(self.home)], input=stdin, env=env or {TOKEN_ENV: None}
        )
        self.outputs.append(result.stdout + result.stderr)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr)
        assert "Traceback" not in result.stdout + result.stderr
        return result

    def json(self, *args: str, **kwargs: object):  # type: ignore[no-untyped-def]
        result = self(*args, "--json", **kwargs)  # type: ignore[arg-type]
        return orjson.loads(result.stdout)


@pytest.fixture
def run(home: Path) -> Run:
    return Run(home)


def _org(run: Run) -> None:
    run("units", "add", "HQ", "--kind", "hq", "--name", "总部")
    run("units", "add", "GD", "--kind", "region", "--name", "广东区域", "--parent", "HQ")
    result = run(
        "units", "add", "SZ-NS", "--kind", "station", "--name", "深圳南山网点",
        "--parent", "GD", "--covers", "440305,440304",
    )  # fmt: skip
    assert "已新增单位 / unit added: SZ-NS" in result.stdout
    run("units", "add", "SZ-FT", "--kind", "station", "--name", "福田加盟", "--parent", "GD",
        "--covers", "440303", "--franchise")  # fmt: skip


def _add_admin(run: Run) -> str:
    data = run.json(
        "users", "add", "admin1", "--role", "admin", "--unit", "HQ", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert set(data) == {"username", "totp_secret"} and data["username"] == "admin1"
    return str(data["totp_secret"])


def _login(run: Run, user: str, password: str, secret: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return run(
        "login", "--user", user, "--password-stdin", "--totp", pyotp.TOTP(secret).now(),
        stdin=password + "\n", **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


def test_bootstrap_then_act_as_logged_in_users(run: Run, home: Path) -> None:
    _org(run)
    units = run.json("units", "list")
    by_code = {u["code"]: u for u in units}
    assert by_code["SZ-NS"]["covers"] == ["440304", "440305"]
    assert by_code["SZ-FT"]["franchise"] and by_code["SZ-NS"]["parent"] == "GD"
    assert "SZ-NS" in run("units", "list").stdout

    # No session: the local operator bootstraps the first administrator.
    admin_secret = _add_admin(run)
    result = _login(run, "admin1", PASSWORD, admin_secret)
    assert "登录成功 / logged in: admin1" in result.stdout
    session = home / SESSION_FILE
    assert stat.S_IMODE(session.stat().st_mode) == 0o600
    token = session.read_text().strip()
    assert token.startswith("wg_") and token not in result.stdout + result.stderr
    who = run.json("whoami")
    assert (who["username"], who["role"], who["unit"]) == ("admin1", "admin", "HQ")
    assert who["mfa_at"] is not None and who["unit_path"] == []

    # The administrator's session now does the managing, and is audited as admin1.
    amy = run.json(
        "users", "add", "amy", "--role", "cs_agent", "--unit", "SZ-NS", "--password-stdin",
        stdin=AMY_PASSWORD,
    )  # fmt: skip
    assert len(amy["totp_secret"]) == 32
    carl = run.json(
        "users", "add", "carl", "--role", "courier", "--unit", "SZ-NS", "--password-stdin",
        "--device", "PDA-0001", stdin=PASSWORD,
    )  # fmt: skip
    assert carl == {"username": "carl", "totp_secret": None}
    text = run("users", "add", "cleo", "--role", "station_clerk", "--unit", "SZ-NS",
               "--grade", "3", "--password-stdin", stdin=PASSWORD).stdout  # fmt: skip
    assert "TOTP" in text and "otpauth://totp/waybillguard:cleo?secret=" in text
    users = {u["username"]: u for u in run.json("users", "list")}
    assert users["cleo"]["grade"] == 3 and users["carl"]["device_bound"] is True
    assert users["amy"]["unit_path"] == ["GD", "HQ"]
    assert [u["username"] for u in run.json("users", "list", "--role", "courier")] == ["carl"]
    with open_app(make_settings(home)) as app:
        actors = {e["actor"] for e in audit.by_actor(app, None) if e["action"] == "user.change"}
    assert "admin1" in actors and all(a == "admin1" or a.startswith("os:") for a in actors)

    # A customer-service agent may not manage anything.
    _login(run, "amy", AMY_PASSWORD, amy["totp_secret"])
    assert run.json("whoami")["username"] == "amy"
    with open_app(make_settings(home)) as app, pytest.raises(auth.AuthError) as caught:
        auth.authenticate(app, token)  # the admin session the file held was ended
    assert caught.value.code == "session_revoked"
    denied = run("users", "add", "eve", "--role", "admin", "--unit", "HQ", "--password-stdin",
                 stdin=PASSWORD, code=3)  # fmt: skip
    assert "not allowed" in denied.stderr
    run("units", "add", "X1", "--kind", "station", "--name", "x", "--parent", "GD", code=3)
    run("users", "set-grade", "amy", "9", code=3)

    out = run("logout")
    assert "已退出登录 / logged out" in out.stdout and not session.exists()
    gone = run("whoami", code=1)
    assert "未登录 / not logged in" in gone.stderr
    assert "no active session" in run("logout").stdout

    for output in run.outputs:
        assert PASSWORD not in output and AMY_PASSWORD not in output


def test_user_management_commands(run: Run) -> None:
    _org(run)
    _add_admin(run)
    run("users", "add", "dan", "--role", "courier", "--unit", "SZ-NS", "--password-stdin",
        stdin=PASSWORD)  # fmt: skip
    assert run.json("users", "set-grade", "dan", "4")["grade"] == 4
    assert run.json("users", "set-grade", "dan", "--grade", "2")["grade"] == 2
    run("users", "set-grade", "dan", code=2)
    run("users", "set-grade", "dan", "10", code=2)
    assert run.json("users", "bind-device", "dan", "PDA-7")["device_bound"] is True
    assert run.json("users", "bind-device", "dan", "--device", "PDA-8")["device_bound"] is True
    assert run.json("users", "disable", "dan", "--reason", "left")["state"] == "disabled"
    assert run.json("users", "enable", "dan")["state"] == "active"
    reset = run.json("users", "reset-password", "admin1", "--password-stdin", "--reset-totp",
                     stdin="a fresh passphrase here")  # fmt: skip
    assert reset["username"] == "admin1" and len(reset["totp_secret"]) == 32
    assert run.json("users", "reset-password", "dan", "--password-stdin",
                    stdin="a fresh passphrase here")["totp_secret"] is None  # fmt: skip
    run("users", "disable", "nobody", code=2)
    assert run.json("units", "disable", "SZ-FT") == {"code": "SZ-FT", "disabled": True}
    # Without --password-stdin and without a terminal there is no way to ask.
    missing = run("users", "add", "x-user", "--role", "cs_agent", "--unit", "SZ-NS", code=2)
    assert "--password-stdin" in missing.stderr


def test_partner_client_login(run: Run, home: Path) -> None:
    _org(run)
    created = run.json(
        "clients", "add", "shop-a", "--unit", "SZ-NS", "--merchant", "shop-0001",
        "--fields", "recipient.name,recipient.phone",
    )  # fmt: skip
    assert set(created) == {"client_id", "client_secret"} and created["client_id"] == "shop-a"
    listed = run.json("clients", "list")
    assert listed[0]["fields"] == ["recipient.name", "recipient.phone"]
    assert listed[0]["merchant"] == "shop-0001"
    run("clients", "add", "shop-b", "--unit", "SZ-NS", "--merchant", "m",
        "--fields", "recipient.iban", code=2)  # fmt: skip

    result = run("login", "--client", "shop-a", "--secret-stdin", stdin=created["client_secret"])
    assert created["client_secret"] not in result.stdout + result.stderr
    who = run.json("whoami")
    assert who["kind"] == "client" and who["role"] == "partner"
    assert who["scopes"] == ["reveal:recipient.name", "reveal:recipient.phone", "waybills:read"]
    # A partner session may not manage anything either.
    run("clients", "disable", "shop-a", code=3)
    run("logout")
    # Mixing the two login paths is refused before anything is checked.
    run("login", "--client", "shop-a", "--password-stdin", stdin="x", code=2)
    run("login", "--user", "shop-a", "--secret-stdin", stdin="x", code=2)
    run("login", code=2)
    # A client id on the staff path is just a wrong login.
    refused = run("login", "--user", "shop-a", "--password-stdin",
                  stdin=created["client_secret"], code=1)  # fmt: skip
    assert "用户名或密码错误" in refused.stderr
    assert run.json("clients", "disable", "shop-a")["state"] == "disabled"


def test_login_failures_and_lockout_messages(run: Run) -> None:
    _org(run)
    secret = _add_admin(run)
    for _ in range(4):
        wrong = run("login", "--user", "admin1", "--password-stdin", "--totp", "123456",
                    stdin="not my password!", code=1)  # fmt: skip
        assert "用户名或密码错误 / wrong username or password" in wrong.stderr
    fifth = run("login", "--user", "admin1", "--password-stdin", stdin="not my password!", code=1)
    assert "locked" in fifth.stderr
    locked = _login(run, "admin1", PASSWORD, secret, code=1)
    assert "暂时锁定" in locked.stderr and "try again in" in locked.stderr
    no_totp = run("login", "--user", "nobody", "--password-stdin", stdin=PASSWORD, code=1)
    assert "wrong username or password" in no_totp.stderr
    for output in run.outputs:
        assert "not my password!" not in output and PASSWORD not in output


def test_hostile_input_gives_clear_errors(run: Run) -> None:
    _org(run)
    bad_name = run("users", "add", "x'; DROP TABLE principals; --", "--role", "cs_agent",
                   "--unit", "SZ-NS", "--password-stdin", stdin=PASSWORD, code=2)  # fmt: skip
    assert "username:" in bad_name.stderr
    huge = "p" * 1_000_000
    too_long = run("users", "add", "big", "--role", "cs_agent", "--unit", "SZ-NS",
                   "--password-stdin", stdin=huge, code=2)  # fmt: skip
    assert "password: is longer than 1024 characters" in too_long.stderr
    not_utf8 = run("users", "add", "enc", "--role", "cs_agent", "--unit", "SZ-NS",
                   "--password-stdin", stdin=b"\xff\xfe bad bytes here!", code=2)  # fmt: skip
    assert "not valid UTF-8" in not_utf8.stderr
    short = run("users", "add", "shorty", "--role", "cs_agent", "--unit", "SZ-NS",
                "--password-stdin", stdin="short", code=2)  # fmt: skip
    assert "password: must be at least 12 characters" in short.stderr
    odd = run("users", "add", "odd", "--role", "cs_agent", "--unit", "SZ-NS",
              "--password-stdin", stdin="密码🚚 Zoë مرحبا 口令")  # fmt: skip
    assert "已新增用户" in odd.stdout
    run("units", "add", "Z1", "--kind", "station", "--name", "n", "--parent", "GD",
        "--covers", "440305;DROP", code=2)  # fmt: skip
    run("login", "--user", "odd", "--password-stdin", "--totp", "12345678", stdin="x", code=2)
    run("login", "--user", "ａｄｍｉｎ", "--password-stdin", stdin="x", code=2)
    assert run.json("users", "list", "--unit", "SZ-NS")[0]["username"] == "odd"
    for output in run.outputs:
        assert huge[:100] not in output and "密码🚚" not in output


def test_stale_or_unsafe_session_file(run: Run, home: Path) -> None:
    _org(run)
    secret = _add_admin(run)
    _login(run, "admin1", PASSWORD, secret)
    session = home / SESSION_FILE
    token = session.read_text().strip()
    # Another token in the environment wins over the file.
    env_run = run("whoami", env={TOKEN_ENV: "wg_not-a-real-token"}, code=1)
    assert "log in again" in env_run.stderr
    assert run.json("whoami", env={TOKEN_ENV: token})["username"] == "admin1"
    # A stored session that no longer works is an error, not a silent fall-back.
    session.write_text("wg_revoked-or-garbage\n")
    stale = run("units", "add", "X2", "--kind", "station", "--name", "n", "--parent", "GD",
                code=1)  # fmt: skip
    assert "logout" in stale.stderr
    session.write_text(token + "\n")
    session.chmod(0o644)
    assert "readable by others" in run("whoami", code=2).stderr
    run("logout")
    assert not session.exists()


def test_session_file_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(tmp_path / "h")
    assert load_token(settings) is None
    path = save_token(settings, "wg_first")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    save_token(settings, "wg_second")  # replaced, not appended
    assert load_token(settings) == "wg_second"
    assert [p.name for p in path.parent.iterdir()] == [SESSION_FILE]  # no temp files left
    monkeypatch.setenv(TOKEN_ENV, "wg_env")
    assert load_token(settings) == "wg_env"
    monkeypatch.delenv(TOKEN_ENV)
    path.write_bytes(b"\xff" * 10)
    with pytest.raises(SessionFileError):
        load_token(settings)
    path.write_bytes(b"wg_" + b"x" * 10_000)
    with pytest.raises(SessionFileError):
        load_token(settings)
    assert clear_token(settings) and not clear_token(settings)


def test_console_script_contract(tmp_path: Path) -> None:
    """The spellings of the issue, through the installed `waybillguard` entry point."""
    h = tmp_path / "h"
    run_cli("init", home=h, check=True)
    run_cli("units", "add", "HQ", "--kind", "hq", "--name", "总部", home=h, check=True)
    run_cli("units", "add", "ST-A", "--kind", "station", "--name", "网点", "--parent", "HQ",
            "--covers", "440305", home=h, check=True)  # fmt: skip
    added = run_cli("users", "add", "sec1", "--role", "security", "--unit", "HQ",
                    "--password-stdin", "--json",
                    home=h, input_text=PASSWORD, check=True)  # fmt: skip
    secret = orjson.loads(added.stdout)["totp_secret"]
    courier = run_cli("users", "add", "cour1", "--role", "courier", "--unit", "ST-A",
                      "--password-stdin", "--device", "PDA-1", "--json", home=h,
                      input_text=PASSWORD, check=True)  # fmt: skip
    assert orjson.loads(courier.stdout) == {"username": "cour1", "totp_secret": None}
    login = run_cli("login", "--user", "sec1", "--password-stdin", "--totp",
                    pyotp.TOTP(secret).now(), home=h, input_text=PASSWORD, check=True)  # fmt: skip
    assert "登录成功 / logged in" in login.stdout
    assert stat.S_IMODE((h / SESSION_FILE).stat().st_mode) == 0o600
    who = orjson.loads(run_cli("whoami", "--json", home=h, check=True).stdout)
    assert (who["username"], who["role"]) == ("sec1", "security")
    # security is not admin: managing is refused while that session is active.
    refused = run_cli("users", "add", "x1", "--role", "cs_agent", "--unit", "HQ",
                      "--password-stdin", home=h, input_text=PASSWORD)  # fmt: skip
    assert refused.returncode == 3
    run_cli("logout", home=h, check=True)
    assert run_cli("whoami", home=h).returncode == 1
    courier_login = run_cli("login", "--user", "cour1", "--password-stdin", "--device", "PDA-1",
                            home=h, input_text=PASSWORD, check=True)  # fmt: skip
    assert "cour1" in courier_login.stdout
    for result in (added, login, refused, courier_login):
        assert PASSWORD not in result.stdout + result.stderr
