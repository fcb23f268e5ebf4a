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


class RowError(ValueError):
    """A row (1-based, as a person counts lines of data) was rejected."""

    def __init__(self, row: int, field: str, reason: str) -> None:
        super().__init__(f"row {row}: {field}: {reason}")
        self.row = row
        self.field = field
        self.reason = reason
