"""What every command module shares: consoles, the --home and --json options, opening
a home, and failing or answering in the agreed formats."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer
from rich.console import Console

from waybillguard.config import ConfigError, Settings, load_settings
from waybillguard.services.app import App, NotInitialised, open_app
from waybillguard.vault import KeyringError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="Home directory (default $WAYBILLGUARD_HOME or ./.waybillguard)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

# The global `waybillguard --home DIR …` option, set by the top-level callback.
state: dict[str, Path | None] = {"home": None}


def fail(message: str, code: int = 1, *, as_json: bool = False) -> NoReturn:
    if as_json:
        sys.stdout.write(orjson.dumps({"error": message}).decode() + "\n")
    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def settings_for(home: Path | None) -> Settings:
    try:
        return load_settings(home or state["home"])
    except ConfigError as exc:
        fail(str(exc), 2)


def open_home(home: Path | None) -> App:
    try:
        return open_app(settings_for(home))
    except (NotInitialised, KeyringError) as exc:
        fail(str(exc), 2)


def emit_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def emit_result(data: dict[str, Any], as_json: bool) -> None:
    """A flat result (benchmarks): JSON, or one `key: value` line each."""
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        out.print(f"{key}: {value}")
