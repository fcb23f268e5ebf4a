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
who is a party to which waybill. Nor in bulk: a masked phone still hides six digits, so
trying a million numbers would find one. After `MAX_MISMATCHES` refusals within an hour
the agent may open no ticket with a phone until the hour has passed, and security is
alerted once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NoReturn

from waybillguard.domain.errors import FieldError
from waybillguard.domain.fields import ROLES
from waybillguard.domain.phone import parse_phone
from waybillguard.domain.purpose import PurposeKind, parse_purpose
from waybillguard.domain.tracking import TrackingNumber, parse_tracking_number
from waybillguard.services import alerts, audit, policy_admin
from waybillguard.services.activity import Actor, emit, emit_in
from waybillguard.services.app import App

# Phones that did not match, per agent and rolling hour, before opening with a phone stops.
MAX_MISMATCHES = 5
MISMATCH_WINDOW = timedelta(hours=1)


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
    earlier = 0 if contact is None else _mismatches(app, actor)
    if earlier >= MAX_MISMATCHES:
        _refuse_for_mismatches(app, actor, parsed, ticket)
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
    if earlier + 1 == MAX_MISMATCHES:
        alerts.raise_alert(
            app,
            "ticket.contact_mismatches",
            "high",
            f"{actor.name}：一小时内 {MAX_MISMATCHES} 次来电号码与运单不符，已暂停以号码开单"
            f" / {actor.name}: {MAX_MISMATCHES} phones that did not match a waybill's party "
            "within an hour; opening tickets with a phone is paused for the hour",
        )
    raise TicketError(
        "ticket.contact_mismatch",
        "来电号码与该方电话不符 / the customer's phone is not this party's phone",
    )


def _mismatches(app: App, actor: Actor) -> int:
    since = datetime.now(UTC) - MISMATCH_WINDOW
    return audit.denied_since(app, actor.name, "ticket.open", since)


def _refuse_for_mismatches(
    app: App, actor: Actor, number: TrackingNumber | None, ticket: str
) -> NoReturn:
    emit(
        app,
        actor,
        "ticket.open",
        waybills=[str(number)] if number is not None else [],
        purpose=f"ticket:{ticket}",
        decision="deny",
        rule="ticket.contact_attempts",
    )
    raise TicketError(
        "ticket.contact_attempts",
        f"一小时内来电号码不符已达 {MAX_MISMATCHES} 次，请稍后再试"
        f" / {MAX_MISMATCHES} phones did not match within the hour; try again later",
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
