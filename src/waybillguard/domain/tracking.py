"""Shape of waybillguard tracking numbers: a 2-letter prefix and 13 digits.

The 13 digits are a 7-digit body and a 6-digit keyed check (computed in the
vault). Only one body in 10^6 carries a correct check, so a guessed or altered
number passes verification with probability 10^-6; that same bound caps the
numbers one prefix can carry at 10^7 (see docs/tracking-numbers.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BODY_DIGITS = 7
CHECK_DIGITS = 6
BODY_SPACE = 10**BODY_DIGITS
CHECK_SPACE = 10**CHECK_DIGITS
FORGERY_PROBABILITY = 1 / CHECK_SPACE
DEFAULT_PREFIX = "WG"

_PREFIX = re.compile(r"[A-Z]{2}")
_NUMBER = re.compile(r"([A-Z]{2})([0-9]{7})([0-9]{6})")


class TrackingSpaceExhausted(RuntimeError):
    """A prefix has issued every body it can carry."""


@dataclass(frozen=True, slots=True)
class TrackingNumber:
    prefix: str
    body: str
    check: str

    def __str__(self) -> str:
        return self.prefix + self.body + self.check


def validate_prefix(prefix: str) -> str:
    if not _PREFIX.fullmatch(prefix):
        raise ValueError("tracking prefix must be two uppercase Latin letters")
    return prefix


def parse_tracking_number(text: str) -> TrackingNumber | None:
    """Split a well-shaped number into its parts; None when the shape is wrong."""
    match = _NUMBER.fullmatch(text.strip().upper()) if len(text) <= 40 else None
    if match is None:
        return None
    return TrackingNumber(match.group(1), match.group(2), match.group(3))
