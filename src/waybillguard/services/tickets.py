"""Customer-service tickets: each binds one waybill and one party (sender or recipient).

A customer-service agent's reveals must cite a ticket and stay within its waybill and
party. A ticket is opened here (by the agent or the customer-service system, through
the CLI or the API) with the phone number the customer called or wrote from: the
ticket is *verified* only if that number is the phone of the party it names, compared
by blind index (the vault keys it as at import; nothing is decrypted). The default
policy accepts only verified tickets, so an agent cannot choose whose data to read:
the customer's own number chooses. A policy with `tickets = "first_reveal"` also binds
an unknown ticket id on its first reveal.

A phone that does not match is refused and audited (decision deny): each try costs an
audit event that names the agent, so the check cannot be used quietly as an oracle of
who is a party to which waybill.
"""

from __future__ import annotations

from datetime import UTC, datetime

from waybillguard.domain.errors import FieldError
from waybillguard.domain.fields import ROLES
from waybillguard.domain.phone import parse_phone
from waybillguard.domain.purpose import PurposeKind, parse_purpose
from waybillguard.domain.tracking import parse_tracking_number
from waybillguard.services import policy_admin
from waybillguard.services.activity import Actor, emit, emit_in
from waybillguard.services.app import App


class TicketError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _ticket_id(text: str) -> str:
    return parse_purpose(f"{PurposeKind.TICKET.value}:{text}", "ticket").ref


def open_ticket(
    app: App,
    actor: Actor,
    ticket_id: str,
    number: str,
    party: str,
    contact_phone: str | None = None,
) -> bool:
    """Open a ticket; returns whether it is verified (see the module's docstring).
    Raises TicketError("ticket.contact_mismatch") after auditing a phone that is not
    the party's."""
    ticket = _ticket_id(ticket_id)
    if party not in ROLES:
        raise FieldError("party", "must be sender or recipient")
    contact = None if contact_phone is None else parse_phone(contact_phone, "contact_phone").e164
    parsed = parse_tracking_number(number)
    store = policy_admin.access_store(app)
    with store.write() as conn:
        if parsed is None or store.waybill_facts(conn, str(parsed)) is None:
            raise TicketError("waybill.not_found", "无此运单 / no such waybill")
        if store.ticket(conn, ticket) is not None:
            raise TicketError("ticket.exists", "工单已存在 / the ticket already exists")
        matched = contact is not None and app.vault.phone_matches(
            contact, store.party_phone_index(conn, str(parsed), party)
        )
        if contact is None or matched:
            verified_by = "phone" if matched else None
            store.open_ticket(
                conn, ticket, str(parsed), party, actor.name, datetime.now(UTC), verified_by
            )
            emit_in(
                app,
                conn,
                actor,
                "ticket.open",
                waybills=[str(parsed)],
                purpose=f"ticket:{ticket}",
                detail={"party": party, "verified": int(matched)},
            )
            return matched
    emit(
        app,
        actor,
        "ticket.open",
        waybills=[str(parsed)],
        purpose=f"ticket:{ticket}",
        decision="deny",
        rule="ticket.contact_mismatch",
        detail={"party": party, "verified": 0},
    )
    raise TicketError(
        "ticket.contact_mismatch",
        "来电号码与该方电话不符 / the customer's phone is not this party's phone",
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
