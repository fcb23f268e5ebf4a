"""Validation errors that name a field and a reason, never the offending value.

The value is left out on purpose: a rejected phone number or address is still
personal data, and error messages end up in logs, error files and terminals.
"""

from __future__ import annotations


class FieldError(ValueError):
    """One field of one input row is unacceptable."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


MAX_ID = 2**63 - 1  # every id column is at most a signed 64-bit integer


def valid_id(value: object) -> bool:
    """Could a row have this id? Asked before a caller's id reaches the database driver,
    which fails with an overflow on what no row can have; such an id is simply unknown."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


class RowError(ValueError):
    """A row (1-based, as a person counts lines of data) was rejected."""

    def __init__(self, row: int, field: str, reason: str) -> None:
        super().__init__(f"row {row}: {field}: {reason}")
        self.row = row
        self.field = field
        self.reason = reason
