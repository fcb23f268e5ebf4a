"""Building frozen, slotted dataclasses on the import hot path.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``; setting
them through the slot descriptors is several times cheaper, and an import builds about
eight such objects per row. Callers keep a typed ``_make_…`` function that calls these
setters in field order; the check here keeps that order in step with the class."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any


def slot_setters(cls: type, names: tuple[str, ...]) -> list[Callable[[Any, Any], None]]:
    """The slot setters of `cls`'s fields, which must be exactly `names`, in order."""
    if tuple(f.name for f in fields(cls)) != names:  # pragma: no cover
        raise RuntimeError(f"field helpers are out of date with {cls.__name__}")
    return [getattr(cls, name).__set__ for name in names]
