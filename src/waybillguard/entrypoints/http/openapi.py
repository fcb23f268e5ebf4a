"""The OpenAPI document, checked in as docs/openapi.json.

    python -m waybillguard.entrypoints.http.openapi            # rewrite docs/openapi.json
    python -m waybillguard.entrypoints.http.openapi --check    # exit 1 if it is stale

The test suite compares the schema a running server serves with the committed file,
so CI fails when a route changes without the document being regenerated.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

from waybillguard.config import Settings

DEFAULT_PATH = Path(__file__).resolve().parents[4] / "docs" / "openapi.json"


def document() -> dict[str, Any]:
    """The schema of the app, built without opening any home."""
    from waybillguard.entrypoints.http.app import create_app

    placeholder = Settings(
        home=Path("/nonexistent"), database_url="sqlite://", tracking_prefix="WG"
    )
    return create_app(placeholder).openapi()


def render(schema: dict[str, Any]) -> bytes:
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def write(path: Path = DEFAULT_PATH) -> Path:
    path.write_bytes(render(document()))
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--check"]:
        current = DEFAULT_PATH.read_bytes() if DEFAULT_PATH.exists() else b""
        if current != render(document()):
            print(f"{DEFAULT_PATH} is stale; run python -m waybillguard.entrypoints.http.openapi")
            return 1
        return 0
    print(f"wrote {write()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
