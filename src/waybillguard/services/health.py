"""Readiness of a running service: can it do its work right now?

Checked on every `/readyz`: the database answers, its schema is at the head revision
this code was built for, and the keyring file is readable and parses. Each check says
only ok / not ok and a short stable reason — never a path, URL or exception text.
"""

from __future__ import annotations

from typing import Any

from waybillguard.adapters.db import schema
from waybillguard.services.app import App
from waybillguard.vault import Vault

_HEADS: dict[str, str | None] = {}  # the migration scripts do not change while running


def _head(app: App) -> str | None:
    key = str(app.engine.url)
    if key not in _HEADS:
        _HEADS[key] = schema.head_revision(app.engine)
    return _HEADS[key]


def readiness(app: App) -> dict[str, Any]:
    """{"ready": bool, "checks": {"database": …, "schema": …, "keyring": …}}."""
    checks: dict[str, str] = {}
    try:
        app.store.ping()
        checks["database"] = "ok"
    except Exception:
        checks["database"] = "unreachable"
    if checks["database"] == "ok":
        try:
            current = schema.current_revision(app.engine)
            head = _head(app)
            checks["schema"] = "ok" if current == head else "not_at_head"
        except Exception:
            checks["schema"] = "unknown"
    else:
        checks["schema"] = "unknown"
    try:
        Vault.from_keyring_file(app.settings.keyring_path)
        checks["keyring"] = "ok"
    except Exception:
        checks["keyring"] = "unreadable"
    return {"ready": all(v == "ok" for v in checks.values()), "checks": checks}
