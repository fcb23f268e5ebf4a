"""Waybill status and the transitions a parcel may make.

A transition table rather than scattered checks, so the rule "a cancelled
parcel is never delivered" is one line a reviewer can read.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    CREATED = "created"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    RETURNED = "returned"
    CANCELLED = "cancelled"


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.CREATED: frozenset({Status.PICKED_UP, Status.CANCELLED}),
    Status.PICKED_UP: frozenset({Status.IN_TRANSIT, Status.RETURNED}),
    # in_transit -> in_transit: each hub scan is an event of its own.
    Status.IN_TRANSIT: frozenset({Status.IN_TRANSIT, Status.OUT_FOR_DELIVERY, Status.RETURNED}),
    # A failed delivery goes back to the station (in_transit) or back to the sender.
    Status.OUT_FOR_DELIVERY: frozenset({Status.DELIVERED, Status.IN_TRANSIT, Status.RETURNED}),
    Status.DELIVERED: frozenset(),
    Status.RETURNED: frozenset(),
    Status.CANCELLED: frozenset(),
}

TERMINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


class IllegalTransition(ValueError):
    def __init__(self, current: Status, wanted: Status) -> None:
        super().__init__(f"a {current.value} waybill cannot become {wanted.value}")
        self.current = current
        self.wanted = wanted


def parse_status(text: str) -> Status:
    try:
        return Status(text.strip().lower())
    except ValueError:
        allowed = ", ".join(s.value for s in Status)
        raise ValueError(f"unknown status; expected one of: {allowed}") from None


def check_transition(current: Status, wanted: Status) -> Status:
    if wanted not in TRANSITIONS[current]:
        raise IllegalTransition(current, wanted)
    return wanted
