"""Shared fixtures: a fresh home per test, seeded synthetic data, PII scanners."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from waybillguard.config import DATABASE_FILE, Settings
from waybillguard.services.app import App, initialise, open_app

CLI = [sys.executable, "-m", "waybillguard"]


def make_settings(home: Path, database_url: str | None = None) -> Settings:
    return Settings(
        home=home,
        database_url=database_url or f"sqlite:///{home / DATABASE_FILE}",
        tracking_prefix="WG",
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = make_settings(tmp_path / "home")
    initialise(s)
    return s


@pytest.fixture
def app(settings: Settings) -> Iterator[App]:
    with open_app(settings) as application:
        yield application


def run_cli(*args: str, home: Path | None = None, input_text: str | None = None,
            env_extra: dict[str, str] | None = None, check: bool = False,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILLGUARD_")}
    if home is not None:
        env["WAYBILLGUARD_HOME"] = str(home)
    env.update(env_extra or {})
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env,
                            input=input_text, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}: {result.stderr}")
    return result


def seeded_pii(jsonl: Path) -> set[str]:
    """Every personal value in a synthetic JSONL file, as people would search for it."""
    values: set[str] = set()
    with jsonl.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            for role in ("sender", "recipient"):
                party = row[role]
                values.add(party["name"])
                digits = "".join(ch for ch in party["phone"] if ch.isdigit())
                values.add(digits[-11:] if len(digits) >= 11 else digits)
                values.add(party["address"])
    return {v for v in values if len(v) >= 2}


def address_details(jsonl: Path) -> set[str]:
    """House-number parts of seeded addresses (e.g. '12号3栋502室')."""
    import re

    out: set[str] = set()
    with jsonl.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            for role in ("sender", "recipient"):
                m = re.search(r"\d+号.*$", row[role]["address"])
                if m:
                    out.add(m.group(0))
    return out


def scan_bytes(blob: bytes, needles: set[str]) -> list[str]:
    found = []
    for needle in needles:
        for encoding in ("utf-8", "gb18030", "utf-16-le"):
            try:
                pattern = needle.encode(encoding)
            except UnicodeEncodeError:
                continue
            if pattern in blob:
                found.append(needle)
                break
    return found


def database_files(home: Path) -> list[Path]:
    base = home / DATABASE_FILE
    return [p for p in (base, Path(f"{base}-wal"), Path(f"{base}-shm")) if p.exists()]
