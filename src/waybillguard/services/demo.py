"""`make demo`: set up the embedded home, import synthetic data, print a short tour."""

from __future__ import annotations

from rich.console import Console

from waybillguard.config import Settings
from waybillguard.services import audit, bench, tracking, waybills
from waybillguard.services.app import initialise, open_app
from waybillguard.services.importer import import_file
from waybillguard.services.synth import write_synth

DEMO_ROWS = 5000
DEMO_SEED = 7


# The synthetic orders the demo imports, kept in its home (synthetic data only).
SOURCE_NAME = "demo-waybills.jsonl"


def _alter(number: str) -> str:
    last = number[-1]
    return number[:-1] + ("0" if last != "0" else "1")


def run(
    settings: Settings,
    out: Console,
    *,
    bench_count: int,
    rows: int = DEMO_ROWS,
    network: bool = False,
) -> None:
    report = initialise(settings)
    out.rule("waybillguard demo 演示")
    out.print(
        f"home 主目录: {report.home}  (SQLite + keyring, keys "
        f"{'created' if report.created_keyring else 'kept'})"
    )
    source = settings.home / SOURCE_NAME
    write_synth(source, rows, DEMO_SEED)
    with open_app(settings) as app:
        imported = import_file(app, source, errors_path=settings.home / "demo-errors.csv")
        out.print(
            f"1. imported 导入 {imported.imported} new waybills "
            f"({imported.duplicates} already present, {imported.rejected} rejected) "
            "— personal data stored only as AES-256-GCM ciphertext"
        )
        first = waybills.list_waybills(app, 1)[0]
        out.print("2. masked view 脱敏视图 (GB/T 41833-2022, stricter by default):")
        out.print_json(
            data={
                k: first[k]
                for k in ("tracking_number", "status", "sender", "recipient", "destination_adcode")
            }
        )
        number = first["tracking_number"]
        good = tracking.verify(app, number)["valid"]
        forged = _alter(number)
        bad = tracking.verify(app, forged)["valid"]
        out.print(
            f"3. tracking check 运单号校验: {number} → {'valid' if good else 'INVALID'}; "
            f"altered {forged} → {'valid' if bad else 'INVALID'} "
            "(forgery probability 1e-6 per guess)"
        )
        signed = audit.checkpoint(app)
        verified = audit.verify(app, None)
        out.print(
            f"4. audit log 审计日志: {signed['tree_size']} events sealed into a Merkle tree, "
            f"checkpoint signed (Ed25519 key {signed['key_id']}); "
            f"verify → {'intact 完整' if verified.ok else 'TAMPERED'}"
        )
    out.print(f"5. benchmark 基准: ingesting {bench_count:,} rows in a scratch home …")
    result = bench.ingest(bench_count, log=lambda _m: None)
    out.print(
        f"   {result['waybills_per_s']:,} waybills/s end-to-end, raw limit "
        f"{result['limit_per_s']:,}/s (ratio {result['ratio_to_limit']}), "
        f"peak RSS ≤ {result['peak_rss_mb']} MB"
    )
    if network:
        _network(settings, out)
    out.print("Next: `waybillguard --help`, `waybillguard show NUMBER`, BENCHMARKS.md")


def _network(settings: Settings, out: Console) -> None:
    from waybillguard.services import demo_network

    home = settings.home
    with open_app(settings) as app:
        logins = demo_network.build(app, home / "demo-logins.json")
        demo_tickets = demo_network.open_demo_tickets(
            app, home / SOURCE_NAME, home / "demo-tickets.json"
        )
    out.print(
        f"6. demo network 演示网络: units HQ → EAST → S1, S2 (franchise); password for every "
        f"user: {demo_network.DEMO_PASSWORD}"
    )
    for login in logins:
        extra = f"TOTP secret {login.totp_secret}" if login.totp_secret else ""
        if login.device:
            extra = f"device {login.device}"
        if login.role == "partner":
            extra = f"client secret in {settings.home / 'demo-client-secret.txt'}"
        out.print(f"   {login.role:<16} {login.username:<9} @ {login.unit:<4} {extra}")
    out.print(
        "   TOTP codes: `oathtool --totp -b SECRET` or any authenticator app (RFC 6238, 30 s)"
    )
    out.print(
        "   客服 cs1: reveal the recipient's fields under a ticket opened (and verified) with "
        "the caller's phone: "
        + ", ".join(f"{ticket} → {number}" for ticket, number in demo_tickets.items())
    )
