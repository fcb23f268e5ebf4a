"""The access-control scenario of issue 3 through the real console script, as an operator
would run it: units and users of each role, login, reveal, deny, step-up, lock, two-person
unlock, export with the two-person rule and tracing of a leaked export."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.conftest import row_pii, run_cli, scan_text, seeded_rows

PASSWORDS = {u: f"pass-phrase-of-{u}-2026" for u in (
    "courier1", "courier2", "clerk1", "manager1", "cs1", "sec1", "sec2", "admin1", "entry1",
)}  # fmt: skip


class Shell:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.totp: dict[str, str] = {}
        self.last_step: dict[str, int] = {}
        self.tokens: dict[str, str] = {}
        self.current: str | None = None
        self.outputs: list[str] = []

    def __call__(self, *args: str, code: int | None = 0, stdin: str | None = None) -> Any:
        env = {"WAYBILLGUARD_TOKEN": self.tokens[self.current]} if self.current else None
        result = run_cli(*args, home=self.home, input_text=stdin, env_extra=env)
        self.outputs.append(result.stdout + result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        if code is not None:
            assert result.returncode == code, (
                args,
                result.returncode,
                result.stdout,
                result.stderr,
            )
        return result

    def json(self, *args: str, code: int | None = 0, stdin: str | None = None) -> Any:
        return json.loads(self(*args, "--json", code=code, stdin=stdin).stdout)

    def switch(self, user: str) -> None:
        """Act as `user`, reusing their session (as a script would, with WAYBILLGUARD_TOKEN)."""
        if user in self.tokens:
            self.current = user
        else:
            self.login(user)

    def login(self, user: str, device: str | None = None) -> None:
        self.current = None
        args = ["login", "--user", user, "--password-stdin"]
        if user in self.totp:
            # A code is accepted once; a second login within the same 30 s uses the next
            # step's code, which the server accepts (±1 step) as a new one.
            totp = pyotp.TOTP(self.totp[user])
            step = max(int(time.time()) // 30, self.last_step.get(user, -1) + 1)
            self.last_step[user] = step
            args += ["--totp", totp.at(step * 30)]
        if device:
            args += ["--device", device]
        self(*args, stdin=PASSWORDS[user] + "\n")
        # Keep each user's session (a later login replaces and ends the file's session).
        session = self.home / "session"
        self.tokens[user] = session.read_text("ascii").strip()
        session.unlink()
        self.current = user


@pytest.fixture
def sh(tmp_path: Path) -> Shell:
    shell = Shell(tmp_path / "home")
    shell("init")
    data = tmp_path / "orders.jsonl"
    shell("synth", "--count", "120", "--seed", "9", "--out", str(data))
    shell("import", str(data))
    shell.rows = seeded_rows(data)  # type: ignore[attr-defined]
    return shell


def test_issue_3_scenario(sh: Shell, tmp_path: Path) -> None:
    first = sh.json("list", "--limit", "1")[0]
    number, district = first["tracking_number"], first["destination_adcode"]
    sh("units", "add", "HQ", "--kind", "hq", "--name", "总部")
    sh("units", "add", "S1", "--kind", "station", "--name", "一号网点", "--parent", "HQ",
       "--covers", district)  # fmt: skip
    roles = {
        "courier1": ("courier", "S1"), "courier2": ("courier", "S1"),
        "clerk1": ("station_clerk", "S1"), "manager1": ("station_manager", "HQ"),
        "cs1": ("cs_agent", "HQ"), "sec1": ("security", "HQ"), "sec2": ("security", "HQ"),
        "admin1": ("admin", "HQ"), "entry1": ("data_entry", "S1"),
    }  # fmt: skip
    for user, (role, unit) in roles.items():
        extra = ["--device", f"dev-{user}"] if role == "courier" else []
        out = sh.json("users", "add", user, "--role", role, "--unit", unit, "--password-stdin",
                      *extra, stdin=PASSWORDS[user] + "\n")  # fmt: skip
        assert out["username"] == user
        if out["totp_secret"]:
            sh.totp[user] = out["totp_secret"]
    assert set(sh.totp) == set(roles) - {"courier1", "courier2"}

    # A courier assigned to an out-for-delivery waybill reveals its recipient address.
    sh("assign", number, "--courier", "courier1")
    for status in ("picked_up", "in_transit", "out_for_delivery"):
        sh("event", number, status)
    sh.login("courier1", device="dev-courier1")
    allowed = sh.json("reveal", number, "--fields", "recipient.address", "--purpose", "delivery")
    assert allowed["decision"] == "allow"
    assert set(allowed["fields"]) == {"recipient.address"}
    assert allowed["fields"]["recipient.address"].endswith(sh.rows[0]["recipient"]["address"][-6:])
    sender = sh.json("reveal", number, "--fields", "sender.phone", "--purpose", "delivery", code=3)
    assert sender["decision"] == "deny" and "fields" not in sender
    sh.login("courier2", device="dev-courier2")
    other = sh.json("reveal", number, "--fields", "recipient.address", "--purpose", "delivery",
                    code=3)  # fmt: skip
    assert other == {**other, "decision": "deny", "rule": "courier.not_assigned"}

    explained = sh.json(
        "policy", "explain", "--user", "courier2", "--action", "reveal", "--waybill", number,
        "--fields", "recipient.address", code=None,
    )  # fmt: skip
    assert explained["decision"] == "deny" and explained["charged"] is False

    # Customer service: a ticket is opened with the customer's phone (on stdin), which
    # must be the party's; then reveals up to the allowance, then step-up, then locked.
    sh.login("cs1")
    made_up = sh.json("reveal", number, "--fields", "recipient.phone",
                      "--purpose", "ticket:T123", code=3)  # fmt: skip
    assert made_up["rule"] == "cs_agent.ticket_not_open"
    wrong = sh.json("tickets", "open", "T123", "--waybill", number, "--party", "recipient",
                    "--contact-stdin", stdin=sh.rows[1]["recipient"]["phone"] + "\n",
                    code=3)  # fmt: skip
    assert "not this party's phone" in wrong["error"]
    opened = sh.json("tickets", "open", "T123", "--waybill", number, "--party", "recipient",
                     "--contact-stdin", stdin=sh.rows[0]["recipient"]["phone"] + "\n")  # fmt: skip
    assert opened == {"ticket": "T123", "waybill": number, "party": "recipient", "verified": True}
    seen = []
    for _ in range(20):
        seen.append(sh.json("reveal", number, "--fields", "recipient.phone",
                            "--purpose", "ticket:T123")["decision"])  # fmt: skip
    assert seen == ["allow"] * 20
    step = sh.json("reveal", number, "--fields", "recipient.phone", "--purpose", "ticket:T123",
                   code=3)  # fmt: skip
    assert step["decision"] == "step_up"
    for _ in range(10):
        ok = sh.json("reveal", number, "--fields", "recipient.phone", "--purpose", "ticket:T123",
                     "--reason", "customer asks about delivery")  # fmt: skip
        assert ok["decision"] == "allow"
    locked = sh.json("reveal", number, "--fields", "recipient.phone", "--purpose", "ticket:T123",
                     "--reason", "customer asks about delivery", code=3)  # fmt: skip
    assert locked["decision"] == "locked" and "request_id" in locked

    # Security sees the alert; unlocking takes a manager and security (two people).
    sh.login("sec1")
    alerts = sh.json("alerts", "list")
    assert any(a["kind"] == "quota.ceiling" for a in alerts)
    review = locked["request_id"]
    wrong_order = sh("approvals", "approve", str(review), code=3)
    assert "manager" in wrong_order.stderr
    sh.login("manager1")
    assert sh.json("approvals", "approve", str(review))["state"] == "pending"
    sh.switch("sec1")
    assert sh.json("approvals", "approve", str(review))["state"] == "approved"

    # Bulk export: requested by one security auditor, never approved by the same person.
    export = sh.json("export", "request", "--fields", "recipient.name,recipient.phone",
                     "--purpose", "legal:CASE-7", "--reason", "court order for case 7",
                     "--limit", "50")  # fmt: skip
    export_id = str(export["export_id"])
    sh("export", "approve", export_id, code=3)
    sh("export", "download", export_id, "--out", str(tmp_path / "x.csv"), code=3)
    sh.login("sec2")
    assert sh.json("export", "approve", export_id)["state"] == "approved"
    sh.switch("sec1")
    out = tmp_path / "export.csv"
    got = sh.json("export", "download", export_id, "--out", str(out))
    assert got["rows"] == 50 and (out.stat().st_mode & 0o777) == 0o600
    traced = sh.json("export", "trace", str(out))
    assert [t["export_id"] for t in traced] == [int(export_id)]

    # Nothing personal in what the commands printed, except what reveals returned.
    needles = set().union(*(row_pii(r) for r in sh.rows))  # type: ignore[attr-defined]
    for text in sh.outputs:
        if '"decision": "allow"' in text or "已写入" in text or "rows" in text:
            continue
        assert scan_text(text, needles) == [], text


def test_reveal_requires_a_session(sh: Shell) -> None:
    number = sh.json("list", "--limit", "1")[0]["tracking_number"]
    refused = sh.json("reveal", number, "--fields", "recipient.phone", "--purpose", "delivery",
                      code=3)  # fmt: skip
    assert refused["decision"] == "deny" and refused["rule"] == "auth.required"
    bad = sh("reveal", number, "--fields", "recipient.ssn", "--purpose", "delivery", code=3)
    assert "Traceback" not in bad.stderr


def test_policy_check_and_apply(sh: Shell, tmp_path: Path) -> None:
    body = sh("policy", "show").stdout
    assert "version = 1" in body
    broken = tmp_path / "broken.toml"
    broken.write_text(body.replace('scope = "assigned"', 'scope = "everywhere"'), "utf-8")
    result = sh("policy", "check", str(broken), code=1)
    assert "roles.courier.scope" in result.stderr
    sh("policy", "apply", str(broken), code=1)
    bumped = tmp_path / "v2.toml"
    bumped.write_text(body.replace("version = 1", "version = 2"), "utf-8")
    assert sh.json("policy", "apply", str(bumped))["version"] == 2
    assert [h["version"] for h in sh.json("policy", "history")] == [1, 2]
    same = sh("policy", "apply", str(bumped), code=3)
    assert "version" in same.stderr
