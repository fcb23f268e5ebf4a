"""Tracking-number checks and the capacity left under the configured prefix."""

from __future__ import annotations

from typing import Any

from waybillguard.domain.tracking import BODY_SPACE, FORGERY_PROBABILITY, parse_tracking_number
from waybillguard.services.app import App


def verify(app: App, number: str) -> dict[str, Any]:
    parsed = parse_tracking_number(number)
    valid = parsed is not None and app.vault.verify_tracking_number(str(parsed))
    reason = None
    if parsed is None:
        reason = "not the shape of a tracking number (2 letters + 13 digits)"
    elif not valid:
        reason = "check digits do not match: generated or altered number"
    return {
        "tracking_number": str(parsed) if parsed else None,
        "valid": valid,
        "reason": reason,
        "forgery_probability": FORGERY_PROBABILITY,
    }


def capacity(app: App) -> dict[str, Any]:
    prefix = app.settings.tracking_prefix
    used = app.store.counters_used(prefix)
    return {
        "prefix": prefix,
        "issued": used,
        "capacity": BODY_SPACE,
        "remaining": BODY_SPACE - used,
        "used_fraction": used / BODY_SPACE,
    }
