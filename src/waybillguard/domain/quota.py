"""Volume tiers: how many records a grade may reveal, and what it takes to go beyond.

Each grade has, per rolling window (hour, day, 30 days), four thresholds:

    allowance ≤ step_up ≤ manager ≤ ceiling

A request for `n` records when `used` were already charged in a window lands in the
highest band any window reaches:

* ``ALLOW``     used + n ≤ allowance in every window;
* ``STEP_UP``   ≤ step_up: a fresh TOTP and a written reason;
* ``MANAGER``   ≤ manager: step-up, then approval by the requester's manager;
* ``SECURITY``  ≤ ceiling: step-up, then approval by the manager, then by security;
* ``CEILING``   beyond the ceiling: refused, the account is locked pending review
  and security is alerted. The only sanctioned way to many records is a bulk export
  under the two-person rule.

A window whose thresholds are all equal skips the approval bands (the hourly window
of the default policy is a burst limit: step-up, then lock).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Final

from waybillguard.domain.errors import FieldError

MAX_RECORDS: Final = 10**9


class Window(StrEnum):
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"  # a rolling 30 days


WINDOW_SECONDS: Final[dict[Window, int]] = {
    Window.HOUR: 3600,
    Window.DAY: 86_400,
    Window.MONTH: 30 * 86_400,
}


class Band(IntEnum):
    ALLOW = 0
    STEP_UP = 1
    MANAGER = 2
    SECURITY = 3
    CEILING = 4


@dataclass(frozen=True, slots=True)
class WindowLimits:
    allowance: int
    step_up: int
    manager: int
    ceiling: int

    def band(self, used: int, records: int) -> Band:
        total = used + records
        if total <= self.allowance:
            return Band.ALLOW
        if total <= self.step_up:
            return Band.STEP_UP
        if total <= self.manager:
            return Band.MANAGER
        if total <= self.ceiling:
            return Band.SECURITY
        return Band.CEILING


@dataclass(frozen=True, slots=True)
class Tier:
    grade: int
    max_batch: int
    windows: Mapping[Window, WindowLimits]

    @property
    def reveals_nothing(self) -> bool:
        return self.max_batch == 0 or any(w.ceiling == 0 for w in self.windows.values())


@dataclass(frozen=True, slots=True)
class TierCheck:
    band: Band
    window: Window | None  # the window that set the band (None: all within allowance)
    used: Mapping[Window, int]

    @property
    def rule(self) -> str:
        if self.window is None:
            return "tier.within_allowance"
        return f"tier.{self.window.value}.{self.band.name.lower()}"


def check_tier(tier: Tier, used: Mapping[Window, int], records: int) -> TierCheck:
    """The band a request for `records` lands in, given what each window already used."""
    band, window = Band.ALLOW, None
    for w in Window:
        limits = tier.windows.get(w)
        if limits is None:
            continue
        b = limits.band(used.get(w, 0), records)
        if b > band:
            band, window = b, w
    return TierCheck(band, window, dict(used))


def parse_window_limits(data: object, where: str) -> WindowLimits:
    if not isinstance(data, Mapping):
        raise FieldError(where, "must be a table with allowance, step_up, manager, ceiling")
    unknown = set(data) - {"allowance", "step_up", "manager", "ceiling"}
    if unknown:
        key = str(sorted(unknown)[0])
        shown = key if key.isascii() and key.isidentifier() and len(key) <= 32 else "<key>"
        raise FieldError(f"{where}.{shown}", "unknown key")
    values: dict[str, int] = {}
    for key in ("allowance", "step_up", "manager", "ceiling"):
        value = data.get(key, values.get(_previous(key)) if key != "allowance" else None)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_RECORDS:
            raise FieldError(f"{where}.{key}", f"must be a whole number from 0 to {MAX_RECORDS}")
        values[key] = value
    if not values["allowance"] <= values["step_up"] <= values["manager"] <= values["ceiling"]:
        raise FieldError(where, "thresholds must satisfy allowance ≤ step_up ≤ manager ≤ ceiling")
    return WindowLimits(**values)


def _previous(key: str) -> str:
    order = ("allowance", "step_up", "manager", "ceiling")
    return order[order.index(key) - 1]
