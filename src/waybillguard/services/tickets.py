"""Customer-service tickets: each binds one waybill and one party (sender or recipient).

A customer-service agent's reveals must cite a ticket and stay within its waybill and
party. A ticket is opened explicitly here (or by the customer-service system through
the API), or bound on its first reveal to that reveal's waybill and party.
"""

from __future__ import annotations

from datetime import UTC, datetime

from waybillguard.domain.errors import FieldError
from waybillguard.domain.fields import ROLES
from waybillguard.domain.purpose import PurposeKind, parse_purpose
from waybillguard.domain.tracking import parse_tracking_number
from waybillguard.services import policy_admin
from waybillguard.services.activity import Actor, emit_in
from waybillguard.services.app import App


class TicketError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _ticket_id(text: str) -> str:
    return parse_purpose(f"{PurposeKind.TICKET.value}:{text}", "ticket").ref


def open_ticket(app: App, actor: Actor, ticket_id: str, number: str, party: str) -> None:
    ticket = _ticket_id(ticket_id)
    if party not in ROLES:
        raise FieldError("party", "must be sender or recipient")
    parsed = parse_tracking_number(number)
    store = policy_admin.access_store(app)
    with store.write() as conn:
        if parsed is None or store.waybill_facts(conn, str(parsed)) is None:
            raise TicketError("waybill.not_found", "无此运单 / no such waybill")
        if store.ticket(conn, ticket) is not None:
            raise TicketError("ticket.exists", "工单已存在 / the ticket already exists")
        store.open_ticket(conn, ticket, str(parsed), party, actor.name, datetime.now(UTC))
        emit_in(
            app,
            conn,
            actor,
            "ticket.open",
            waybills=[str(parsed)],
            purpose=f"ticket:{ticket}",
            detail={"party": party},
        )


def close_ticket(app: App, actor: Actor, ticket_id: str) -> bool:
    ticket = _ticket_id(ticket_id)
    store = policy_admin.access_store(app)
    with store.write() as conn:
        closed = store.close_ticket(conn, ticket, datetime.now(UTC))
        emit_in(
            app,
            conn,
            actor,
            "ticket.close",
            purpose=f"ticket:{ticket}",
            detail={"closed": int(closed)},
        )
    return closed
