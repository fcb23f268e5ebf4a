"""The exhaustive authorisation matrix of the default policy (issue 3).

Every role x every action x own/other waybill x every waybill status, with the expected
decision WRITTEN OUT below as data — never computed by re-implementing the policy.

Reading a row of ``EXPECTED``::

    ("reveal recipient.address", OWN): ("DDDADDD", "courier.assigned", "courier.status"),
     ^ action                    ^ relation  ^ one letter per status      ^ rule when   ^ rule when
                                                                            allowed       denied

The seven letters follow ``STATUS_ORDER`` (created, picked_up, in_transit,
out_for_delivery, delivered, returned, cancelled); ``A`` = allow, ``D`` = deny.

Relations:

* ``own``   — the waybill is destined to the principal's station (it originates at a third
  station, so "own" never comes from the origin); for the courier it is also assigned to
  them; for the partner it is the partner's merchant's shipment; for the customer-service
  agent the ticket named by the purpose is bound to this waybill and to the party of the
  requested field, and was verified by the customer's phone.
* ``other`` — another station (neither origin nor destination), assigned to another
  courier, another merchant's shipment; for the customer-service agent the ticket is bound
  to a different waybill.

Volume never interferes: `used` is empty (all windows at zero), one record per request,
no step-up, and each principal has its role's default grade.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Final

import pytest

from waybillguard.domain.errors import FieldError
from waybillguard.domain.identity import (
    DEFAULT_GRADES,
    Principal,
    PrincipalKind,
    PrincipalState,
    Role,
)
from waybillguard.domain.lifecycle import Status
from waybillguard.domain.policy import (
    Decision,
    Effect,
    Policy,
    RevealRequest,
    TicketFacts,
    WaybillFacts,
    decide_reveal,
    decide_view,
    default_policy,
    default_policy_text,
    parse_policy,
)
from waybillguard.domain.purpose import Purpose, PurposeKind, parse_purpose
from waybillguard.domain.quota import Window

POLICY: Final[Policy] = default_policy()
NOW: Final = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)

STATUS_ORDER: Final = (
    Status.CREATED,
    Status.PICKED_UP,
    Status.IN_TRANSIT,
    Status.OUT_FOR_DELIVERY,
    Status.DELIVERED,
    Status.RETURNED,
    Status.CANCELLED,
)

OWN: Final = "own"
OTHER: Final = "other"
RELATIONS: Final = (OWN, OTHER)

VIEW: Final = "view"
REVEAL_FIELDS: Final = (
    "recipient.address",
    "recipient.phone",
    "recipient.name",
    "sender.phone",
    "sender.address",
)
ACTIONS: Final = (VIEW, *(f"reveal {f}" for f in REVEAL_FIELDS))

OWN_STATION: Final = "ST-OWN"
ORIGIN_STATION: Final = "ST-ORIGIN"  # a third station the "own" waybills come from
FAR_STATION: Final = "ST-FAR"
PRINCIPAL_ID: Final = 7
OTHER_COURIER_ID: Final = 8
OWN_NUMBER: Final = "WG20260314000001"
OTHER_NUMBER: Final = "WG20260314000002"
OWN_MERCHANT: Final = "M1"
OTHER_MERCHANT: Final = "M2"
PARTNER_CONTRACT: Final = frozenset({"recipient.name", "recipient.address"})

# The purpose each role names in its reveals.
PURPOSES: Final[dict[Role, str]] = {
    Role.COURIER: "delivery",
    Role.STATION_CLERK: "delivery",
    Role.STATION_MANAGER: "delivery",
    Role.CS_AGENT: "ticket:T1",
    Role.SECURITY: "legal:L1",
    Role.ADMIN: "delivery",
    Role.DATA_ENTRY: "delivery",
    Role.PARTNER: "delivery",
}

Row = tuple[str, str | None, str | None]  # (pattern, rule when allowed, rule when denied)

ALL_ALLOW: Final = "AAAAAAA"
ALL_DENY: Final = "DDDDDDD"

# fmt: off
EXPECTED: Final[dict[Role, dict[tuple[str, str], Row]]] = {
    Role.COURIER: {
        # The masked view of a waybill assigned to the courier, whatever its status.
        (VIEW, OWN): (ALL_ALLOW, "courier.view_assigned", None),
        # Not assigned to them (and another station): no view at all.
        (VIEW, OTHER): (ALL_DENY, None, "courier.view_scope"),
        # Navigation address only while out for delivery (no grace: delivery_ended_at is
        # None in the matrix; the grace period is tested separately below).
        ("reveal recipient.address", OWN): ("DDDADDD", "courier.assigned", "courier.status"),
        # Someone else's delivery: never, whatever the status.
        ("reveal recipient.address", OTHER): (ALL_DENY, None, "courier.not_assigned"),
        # The recipient's phone goes through the virtual number (call-through), never plain.
        ("reveal recipient.phone", OWN): (ALL_DENY, None, "courier.field.recipient.phone"),
        ("reveal recipient.phone", OTHER): (ALL_DENY, None, "courier.field.recipient.phone"),
        # The name is printed on the parcel; the courier's policy does not list it.
        ("reveal recipient.name", OWN): (ALL_DENY, None, "courier.field.recipient.name"),
        ("reveal recipient.name", OTHER): (ALL_DENY, None, "courier.field.recipient.name"),
        # Never the sender's phone (issue 3, and parse_policy refuses to grant it).
        ("reveal sender.phone", OWN): (ALL_DENY, None, "courier.field.sender.phone"),
        ("reveal sender.phone", OTHER): (ALL_DENY, None, "courier.field.sender.phone"),
        # Nor the sender's address.
        ("reveal sender.address", OWN): (ALL_DENY, None, "courier.field.sender.address"),
        ("reveal sender.address", OTHER): (ALL_DENY, None, "courier.field.sender.address"),
    },
    Role.STATION_CLERK: {
        # Own station's waybills are visible (masked) in every status.
        (VIEW, OWN): (ALL_ALLOW, "station_clerk.view_own_station", None),
        # Another station's waybill: the YTO franchise-account case — no view.
        (VIEW, OTHER): (ALL_DENY, None, "station_clerk.view_scope"),
        # Station staff may reveal every field of their station's waybills; the default
        # policy sets no status restriction for them.
        ("reveal recipient.address", OWN): (ALL_ALLOW, "station_clerk.own_station", None),
        ("reveal recipient.address", OTHER): (ALL_DENY, None, "station_clerk.not_own_station"),
        ("reveal recipient.phone", OWN): (ALL_ALLOW, "station_clerk.own_station", None),
        ("reveal recipient.phone", OTHER): (ALL_DENY, None, "station_clerk.not_own_station"),
        ("reveal recipient.name", OWN): (ALL_ALLOW, "station_clerk.own_station", None),
        ("reveal recipient.name", OTHER): (ALL_DENY, None, "station_clerk.not_own_station"),
        ("reveal sender.phone", OWN): (ALL_ALLOW, "station_clerk.own_station", None),
        ("reveal sender.phone", OTHER): (ALL_DENY, None, "station_clerk.not_own_station"),
        ("reveal sender.address", OWN): (ALL_ALLOW, "station_clerk.own_station", None),
        ("reveal sender.address", OTHER): (ALL_DENY, None, "station_clerk.not_own_station"),
    },
    Role.STATION_MANAGER: {
        # Same scope as the clerk (the manager differs in grade and break-glass).
        (VIEW, OWN): (ALL_ALLOW, "station_manager.view_own_station", None),
        (VIEW, OTHER): (ALL_DENY, None, "station_manager.view_scope"),
        ("reveal recipient.address", OWN): (ALL_ALLOW, "station_manager.own_station", None),
        ("reveal recipient.address", OTHER): (ALL_DENY, None, "station_manager.not_own_station"),
        ("reveal recipient.phone", OWN): (ALL_ALLOW, "station_manager.own_station", None),
        ("reveal recipient.phone", OTHER): (ALL_DENY, None, "station_manager.not_own_station"),
        ("reveal recipient.name", OWN): (ALL_ALLOW, "station_manager.own_station", None),
        ("reveal recipient.name", OTHER): (ALL_DENY, None, "station_manager.not_own_station"),
        ("reveal sender.phone", OWN): (ALL_ALLOW, "station_manager.own_station", None),
        ("reveal sender.phone", OTHER): (ALL_DENY, None, "station_manager.not_own_station"),
        ("reveal sender.address", OWN): (ALL_ALLOW, "station_manager.own_station", None),
        ("reveal sender.address", OTHER): (ALL_DENY, None, "station_manager.not_own_station"),
    },
    Role.CS_AGENT: {
        # Customer service answers about any parcel: masked view of any waybill.
        (VIEW, OWN): (ALL_ALLOW, "cs_agent.view_any", None),
        (VIEW, OTHER): (ALL_ALLOW, "cs_agent.view_any", None),
        # With a ticket bound to this waybill and to the field's party: allowed, any status.
        ("reveal recipient.address", OWN): (ALL_ALLOW, "cs_agent.ticket", None),
        # The ticket is bound to another waybill: denied.
        ("reveal recipient.address", OTHER): (ALL_DENY, None, "cs_agent.ticket_waybill"),
        ("reveal recipient.phone", OWN): (ALL_ALLOW, "cs_agent.ticket", None),
        ("reveal recipient.phone", OTHER): (ALL_DENY, None, "cs_agent.ticket_waybill"),
        ("reveal recipient.name", OWN): (ALL_ALLOW, "cs_agent.ticket", None),
        ("reveal recipient.name", OTHER): (ALL_DENY, None, "cs_agent.ticket_waybill"),
        ("reveal sender.phone", OWN): (ALL_ALLOW, "cs_agent.ticket", None),
        ("reveal sender.phone", OTHER): (ALL_DENY, None, "cs_agent.ticket_waybill"),
        ("reveal sender.address", OWN): (ALL_ALLOW, "cs_agent.ticket", None),
        ("reveal sender.address", OTHER): (ALL_DENY, None, "cs_agent.ticket_waybill"),
    },
    Role.SECURITY: {
        # Security investigates through masked views and the audit log.
        (VIEW, OWN): (ALL_ALLOW, "security.view_any", None),
        (VIEW, OTHER): (ALL_ALLOW, "security.view_any", None),
        # Plaintext only under break-glass (tested separately): scope "none".
        ("reveal recipient.address", OWN): (ALL_DENY, None, "security.no_reveal"),
        ("reveal recipient.address", OTHER): (ALL_DENY, None, "security.no_reveal"),
        ("reveal recipient.phone", OWN): (ALL_DENY, None, "security.no_reveal"),
        ("reveal recipient.phone", OTHER): (ALL_DENY, None, "security.no_reveal"),
        ("reveal recipient.name", OWN): (ALL_DENY, None, "security.no_reveal"),
        ("reveal recipient.name", OTHER): (ALL_DENY, None, "security.no_reveal"),
        ("reveal sender.phone", OWN): (ALL_DENY, None, "security.no_reveal"),
        ("reveal sender.phone", OTHER): (ALL_DENY, None, "security.no_reveal"),
        ("reveal sender.address", OWN): (ALL_DENY, None, "security.no_reveal"),
        ("reveal sender.address", OTHER): (ALL_DENY, None, "security.no_reveal"),
    },
    Role.ADMIN: {
        # Administrators run the system; they see masked waybills only.
        (VIEW, OWN): (ALL_ALLOW, "admin.view_any", None),
        (VIEW, OTHER): (ALL_ALLOW, "admin.view_any", None),
        # No plaintext, and (unlike security) no break-glass either.
        ("reveal recipient.address", OWN): (ALL_DENY, None, "admin.no_reveal"),
        ("reveal recipient.address", OTHER): (ALL_DENY, None, "admin.no_reveal"),
        ("reveal recipient.phone", OWN): (ALL_DENY, None, "admin.no_reveal"),
        ("reveal recipient.phone", OTHER): (ALL_DENY, None, "admin.no_reveal"),
        ("reveal recipient.name", OWN): (ALL_DENY, None, "admin.no_reveal"),
        ("reveal recipient.name", OTHER): (ALL_DENY, None, "admin.no_reveal"),
        ("reveal sender.phone", OWN): (ALL_DENY, None, "admin.no_reveal"),
        ("reveal sender.phone", OTHER): (ALL_DENY, None, "admin.no_reveal"),
        ("reveal sender.address", OWN): (ALL_DENY, None, "admin.no_reveal"),
        ("reveal sender.address", OTHER): (ALL_DENY, None, "admin.no_reveal"),
    },
    Role.DATA_ENTRY: {
        # Outsourced data entry creates waybills and never reads them back, not even masked.
        (VIEW, OWN): (ALL_DENY, None, "data_entry.view_scope"),
        (VIEW, OTHER): (ALL_DENY, None, "data_entry.view_scope"),
        # Scope "none" (and grade 0): the role check denies before the grade is consulted.
        ("reveal recipient.address", OWN): (ALL_DENY, None, "data_entry.no_reveal"),
        ("reveal recipient.address", OTHER): (ALL_DENY, None, "data_entry.no_reveal"),
        ("reveal recipient.phone", OWN): (ALL_DENY, None, "data_entry.no_reveal"),
        ("reveal recipient.phone", OTHER): (ALL_DENY, None, "data_entry.no_reveal"),
        ("reveal recipient.name", OWN): (ALL_DENY, None, "data_entry.no_reveal"),
        ("reveal recipient.name", OTHER): (ALL_DENY, None, "data_entry.no_reveal"),
        ("reveal sender.phone", OWN): (ALL_DENY, None, "data_entry.no_reveal"),
        ("reveal sender.phone", OTHER): (ALL_DENY, None, "data_entry.no_reveal"),
        ("reveal sender.address", OWN): (ALL_DENY, None, "data_entry.no_reveal"),
        ("reveal sender.address", OTHER): (ALL_DENY, None, "data_entry.no_reveal"),
    },
    Role.PARTNER: {
        # A merchant sees its own shipments (masked), in every status.
        (VIEW, OWN): (ALL_ALLOW, "partner.view_own_shipment", None),
        (VIEW, OTHER): (ALL_DENY, None, "partner.view_scope"),
        # The contract lists recipient.name and recipient.address only.
        ("reveal recipient.address", OWN): (ALL_ALLOW, "partner.own_shipment", None),
        ("reveal recipient.address", OTHER): (ALL_DENY, None, "partner.not_own_shipment"),
        # Outside the contract even on its own shipment.
        ("reveal recipient.phone", OWN): (ALL_DENY, None, "partner.contract.recipient.phone"),
        ("reveal recipient.phone", OTHER): (ALL_DENY, None, "partner.not_own_shipment"),
        ("reveal recipient.name", OWN): (ALL_ALLOW, "partner.own_shipment", None),
        ("reveal recipient.name", OTHER): (ALL_DENY, None, "partner.not_own_shipment"),
        ("reveal sender.phone", OWN): (ALL_DENY, None, "partner.contract.sender.phone"),
        ("reveal sender.phone", OTHER): (ALL_DENY, None, "partner.not_own_shipment"),
        ("reveal sender.address", OWN): (ALL_DENY, None, "partner.contract.sender.address"),
        ("reveal sender.address", OTHER): (ALL_DENY, None, "partner.not_own_shipment"),
    },
}
# fmt: on


# -- building the cases ------------------------------------------------------------------
def principal_for(role: Role, *, state: PrincipalState = PrincipalState.ACTIVE) -> Principal:
    if role is Role.PARTNER:
        return Principal(
            id=PRINCIPAL_ID,
            username="partner-m1",
            role=role,
            unit=OWN_STATION,
            grade=DEFAULT_GRADES[role],
            kind=PrincipalKind.CLIENT,
            state=state,
            merchant=OWN_MERCHANT,
            contract_fields=PARTNER_CONTRACT,
        )
    return Principal(
        id=PRINCIPAL_ID,
        username=f"{role.value.replace('_', '-')}-1",
        role=role,
        unit=OWN_STATION,
        grade=DEFAULT_GRADES[role],
        state=state,
        device_id="dev-1" if role is Role.COURIER else None,
    )


def facts_for(
    relation: str, status: Status, *, delivery_ended_at: datetime | None = None
) -> WaybillFacts:
    if relation == OWN:
        return WaybillFacts(
            tracking_number=OWN_NUMBER,
            status=status,
            origin_station=ORIGIN_STATION,
            destination_station=OWN_STATION,
            merchant=OWN_MERCHANT,
            assigned_courier=PRINCIPAL_ID,
            delivery_ended_at=delivery_ended_at,
        )
    return WaybillFacts(
        tracking_number=OWN_NUMBER,
        status=status,
        origin_station=ORIGIN_STATION,
        destination_station=FAR_STATION,
        merchant=OTHER_MERCHANT,
        assigned_courier=OTHER_COURIER_ID,
        delivery_ended_at=delivery_ended_at,
    )


def ticket_for(role: Role, relation: str, field: str) -> TicketFacts | None:
    if role is not Role.CS_AGENT:
        return None
    party = field.split(".", 1)[0]
    number = OWN_NUMBER if relation == OWN else OTHER_NUMBER
    return TicketFacts(ticket_id="T1", tracking_number=number, party=party, verified=True)


def facts_with(facts: WaybillFacts, **changes: object) -> WaybillFacts:
    return replace(facts, **changes)  # type: ignore[arg-type]


def request_for(role: Role, fields: frozenset[str], **kwargs: object) -> RevealRequest:
    return RevealRequest(fields=fields, purpose=parse_purpose(PURPOSES[role]), **kwargs)  # type: ignore[arg-type]


def decide(role: Role, action: str, relation: str, status: Status) -> Decision:
    principal = principal_for(role)
    facts = facts_for(relation, status)
    if action == VIEW:
        return decide_view(POLICY, principal, facts)
    field = action.removeprefix("reveal ")
    return decide_reveal(
        POLICY,
        principal,
        facts,
        request_for(role, frozenset({field})),
        NOW,
        ticket=ticket_for(role, relation, field),
        used={},
    )


CASES: Final = [
    pytest.param(
        role,
        action,
        relation,
        status,
        id=f"{role.value}-{action.replace(' ', '_')}-{relation}-{status.value}",
    )
    for role in Role
    for action in ACTIONS
    for relation in RELATIONS
    for status in STATUS_ORDER
]


# -- the table itself --------------------------------------------------------------------
def test_status_order_is_every_status_in_declaration_order() -> None:
    assert tuple(Status) == STATUS_ORDER


def test_table_is_complete_and_well_formed() -> None:
    assert set(EXPECTED) == set(Role)
    for role, rows in EXPECTED.items():
        assert set(rows) == {(a, r) for a in ACTIONS for r in RELATIONS}, role
        for key, (pattern, allow_rule, deny_rule) in rows.items():
            assert len(pattern) == len(STATUS_ORDER), (role, key)
            assert set(pattern) <= {"A", "D"}, (role, key)
            assert ("A" in pattern) == (allow_rule is not None), (role, key)
            assert ("D" in pattern) == (deny_rule is not None), (role, key)
    assert len(CASES) == 8 * 6 * 2 * 7 == 672


@pytest.mark.parametrize(("role", "action", "relation", "status"), CASES)
def test_matrix(role: Role, action: str, relation: str, status: Status) -> None:
    pattern, allow_rule, deny_rule = EXPECTED[role][(action, relation)]
    expected = pattern[STATUS_ORDER.index(status)]
    decision = decide(role, action, relation, status)
    if expected == "A":
        assert decision.effect is Effect.ALLOW, decision
        assert decision.rule == allow_rule
        assert decision.allowed
    else:
        assert decision.effect is Effect.DENY, decision
        assert decision.rule == deny_rule
        assert not decision.allowed


# -- key denials, named -------------------------------------------------------------------
def test_second_courier_of_the_same_station_is_denied() -> None:
    # The acceptance check of issue 3: same station, out for delivery, assigned to another.
    facts = WaybillFacts(
        tracking_number=OWN_NUMBER,
        status=Status.OUT_FOR_DELIVERY,
        origin_station=ORIGIN_STATION,
        destination_station=OWN_STATION,
        merchant=OWN_MERCHANT,
        assigned_courier=OTHER_COURIER_ID,
    )
    courier = principal_for(Role.COURIER)
    request = request_for(Role.COURIER, frozenset({"recipient.address"}))
    decision = decide_reveal(POLICY, courier, facts, request, NOW, used={})
    assert (decision.effect, decision.rule) == (Effect.DENY, "courier.not_assigned")
    unassigned = decide_reveal(
        POLICY, courier, facts_with(facts, assigned_courier=None), request, NOW, used={}
    )
    assert (unassigned.effect, unassigned.rule) == (Effect.DENY, "courier.not_assigned")


def test_courier_never_gets_the_sender_phone_even_with_the_address() -> None:
    request = request_for(Role.COURIER, frozenset({"recipient.address", "sender.phone"}))
    decision = decide_reveal(
        POLICY,
        principal_for(Role.COURIER),
        facts_for(OWN, Status.OUT_FOR_DELIVERY),
        request,
        NOW,
        used={},
    )
    assert (decision.effect, decision.rule) == (Effect.DENY, "courier.field.sender.phone")


def test_station_clerk_denied_other_station_even_out_for_delivery() -> None:
    decision = decide(Role.STATION_CLERK, "reveal recipient.phone", OTHER, Status.OUT_FOR_DELIVERY)
    assert (decision.effect, decision.rule) == (Effect.DENY, "station_clerk.not_own_station")


def test_station_clerk_origin_station_counts_as_own() -> None:
    facts = WaybillFacts(
        tracking_number=OWN_NUMBER,
        status=Status.PICKED_UP,
        origin_station=OWN_STATION,
        destination_station=FAR_STATION,
        merchant=OWN_MERCHANT,
    )
    request = request_for(Role.STATION_CLERK, frozenset({"sender.phone"}))
    decision = decide_reveal(
        POLICY, principal_for(Role.STATION_CLERK), facts, request, NOW, used={}
    )
    assert (decision.effect, decision.rule) == (Effect.ALLOW, "station_clerk.own_station")


def test_cs_agent_ticket_covers_one_party_only() -> None:
    ticket = TicketFacts(ticket_id="T1", tracking_number=OWN_NUMBER, party="recipient")
    agent = principal_for(Role.CS_AGENT)
    facts = facts_for(OWN, Status.IN_TRANSIT)
    sender = decide_reveal(
        POLICY,
        agent,
        facts,
        request_for(Role.CS_AGENT, frozenset({"sender.phone"})),
        NOW,
        ticket=ticket,
        used={},
    )
    assert (sender.effect, sender.rule) == (Effect.DENY, "cs_agent.ticket_party")
    both = decide_reveal(
        POLICY,
        agent,
        facts,
        request_for(Role.CS_AGENT, frozenset({"recipient.phone", "sender.phone"})),
        NOW,
        ticket=ticket,
        used={},
    )
    assert (both.effect, both.rule) == (Effect.DENY, "cs_agent.ticket_one_party")


def test_cs_agent_closed_ticket_is_denied() -> None:
    ticket = TicketFacts("T1", OWN_NUMBER, "recipient", closed=True)
    decision = decide_reveal(
        POLICY,
        principal_for(Role.CS_AGENT),
        facts_for(OWN, Status.DELIVERED),
        request_for(Role.CS_AGENT, frozenset({"recipient.phone"})),
        NOW,
        ticket=ticket,
        used={},
    )
    assert (decision.effect, decision.rule) == (Effect.DENY, "cs_agent.ticket_closed")


@pytest.mark.parametrize("purpose", ["delivery", "claim", "legal:L1"])
def test_cs_agent_needs_the_ticket_purpose(purpose: str) -> None:
    request = RevealRequest(frozenset({"recipient.phone"}), parse_purpose(purpose))
    decision = decide_reveal(
        POLICY,
        principal_for(Role.CS_AGENT),
        facts_for(OWN, Status.IN_TRANSIT),
        request,
        NOW,
        used={},
    )
    assert (decision.effect, decision.rule) == (Effect.DENY, "cs_agent.purpose")


def _cs_decision(policy: Policy, ticket: TicketFacts | None) -> Decision:
    return decide_reveal(
        policy,
        principal_for(Role.CS_AGENT),
        facts_for(OTHER, Status.DELIVERED),
        request_for(Role.CS_AGENT, frozenset({"recipient.phone"})),
        NOW,
        ticket=ticket,
        used={},
    )


def test_cs_agent_unknown_ticket_is_denied_by_default() -> None:
    # The default policy accepts only tickets opened with the customer's phone: an agent
    # cannot make up a ticket id and read any waybill's party with it.
    decision = _cs_decision(POLICY, None)
    assert (decision.effect, decision.rule) == (Effect.DENY, "cs_agent.ticket_not_open")
    assert not decision.opens_ticket


def test_cs_agent_unverified_ticket_is_denied_by_default() -> None:
    number = facts_for(OTHER, Status.DELIVERED).tracking_number
    ticket = TicketFacts("T1", number, "recipient", verified=False)
    decision = _cs_decision(POLICY, ticket)
    assert (decision.effect, decision.rule) == (Effect.DENY, "cs_agent.ticket_unverified")
    verified = _cs_decision(POLICY, replace(ticket, verified=True))
    assert (verified.effect, verified.rule) == (Effect.ALLOW, "cs_agent.ticket")


def test_cs_agent_first_reveal_policy_binds_an_unknown_ticket() -> None:
    # A network whose ticketing system does not capture the customer's number may opt in:
    # an unknown ticket id is then allowed and flagged `opens_ticket`, for a waybill of any
    # station, and unverified tickets are accepted.
    text = default_policy_text().replace('tickets = "verified"', 'tickets = "first_reveal"')
    first_reveal = parse_policy(text)
    decision = _cs_decision(first_reveal, None)
    assert (decision.effect, decision.rule) == (Effect.ALLOW, "cs_agent.ticket")
    assert decision.opens_ticket
    number = facts_for(OTHER, Status.DELIVERED).tracking_number
    unverified = TicketFacts("T1", number, "recipient", verified=False)
    assert _cs_decision(first_reveal, unverified).allowed


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('\ntickets = "verified"\n', '\ntickets = "sometimes"\n'),
        (
            'scope = "station"\nview = "station"',
            'scope = "station"\nview = "station"\ntickets = "verified"',
        ),
    ],
)
def test_tickets_setting_is_validated(text: str, where: str) -> None:
    with pytest.raises(FieldError) as failed:
        parse_policy(default_policy_text().replace(text, where, 1))
    assert failed.value.field.endswith(".tickets")


@pytest.mark.parametrize(
    ("field", "rule"),
    [
        ("recipient.phone", "partner.contract.recipient.phone"),
        ("sender.name", "partner.contract.sender.name"),
        ("sender.phone", "partner.contract.sender.phone"),
        ("sender.address", "partner.contract.sender.address"),
    ],
)
def test_partner_contract_narrows_fields(field: str, rule: str) -> None:
    decision = decide_reveal(
        POLICY,
        principal_for(Role.PARTNER),
        facts_for(OWN, Status.IN_TRANSIT),
        request_for(Role.PARTNER, frozenset({"recipient.address", field})),
        NOW,
        used={},
    )
    assert (decision.effect, decision.rule) == (Effect.DENY, rule)


def test_partner_without_merchant_sees_nothing() -> None:
    orphan = replace(principal_for(Role.PARTNER), merchant=None)
    decision = decide_reveal(
        POLICY,
        orphan,
        facts_for(OWN, Status.IN_TRANSIT),
        request_for(Role.PARTNER, frozenset({"recipient.address"})),
        NOW,
        used={},
    )
    assert (decision.effect, decision.rule) == (Effect.DENY, "partner.not_own_shipment")


def test_data_entry_reveals_nothing_and_its_grade_reveals_nothing() -> None:
    decision = decide(Role.DATA_ENTRY, "reveal recipient.address", OWN, Status.CREATED)
    assert (decision.effect, decision.rule) == (Effect.DENY, "data_entry.no_reveal")
    assert DEFAULT_GRADES[Role.DATA_ENTRY] == 0
    assert POLICY.tier(0).reveals_nothing


@pytest.mark.parametrize("role", list(Role))
def test_locked_and_disabled_accounts(role: Role) -> None:
    facts = facts_for(OWN, Status.OUT_FOR_DELIVERY)
    field = "recipient.address"
    for state, effect, rule in (
        (PrincipalState.LOCKED, Effect.LOCKED, "account.locked"),
        (PrincipalState.DISABLED, Effect.DENY, "account.disabled"),
    ):
        principal = principal_for(role, state=state)
        view = decide_view(POLICY, principal, facts)
        reveal = decide_reveal(
            POLICY,
            principal,
            facts,
            request_for(role, frozenset({field})),
            NOW,
            ticket=ticket_for(role, OWN, field),
            used={},
        )
        assert (view.effect, view.rule) == (effect, rule)
        assert (reveal.effect, reveal.rule) == (effect, rule)


def test_shredded_waybill_reveals_nothing_to_anyone() -> None:
    facts = facts_with(facts_for(OWN, Status.DELIVERED), shredded=True)
    for role in (Role.STATION_MANAGER, Role.CS_AGENT, Role.PARTNER):
        decision = decide_reveal(
            POLICY,
            principal_for(role),
            facts,
            request_for(role, frozenset({"recipient.address"})),
            NOW,
            ticket=ticket_for(role, OWN, "recipient.address"),
            used={},
        )
        assert (decision.effect, decision.rule) == (Effect.DENY, "waybill.shredded")


@pytest.mark.parametrize("fields", [frozenset(), frozenset({"recipient.email"})])
def test_no_valid_field_is_denied(fields: frozenset[str]) -> None:
    decision = decide_reveal(
        POLICY,
        principal_for(Role.STATION_CLERK),
        facts_for(OWN, Status.IN_TRANSIT),
        request_for(Role.STATION_CLERK, fields),
        NOW,
        used={},
    )
    assert (decision.effect, decision.rule) == (Effect.DENY, "request.fields")


# -- the courier's grace period ----------------------------------------------------------
GRACE: Final = timedelta(minutes=120)


@pytest.mark.parametrize(
    ("status", "minutes_ago", "effect", "rule"),
    [
        (Status.DELIVERED, 119, Effect.ALLOW, "courier.assigned"),
        (Status.DELIVERED, 120, Effect.ALLOW, "courier.assigned"),  # the bound is inclusive
        (Status.DELIVERED, 121, Effect.DENY, "courier.status"),
        (Status.RETURNED, 119, Effect.ALLOW, "courier.assigned"),
        (Status.RETURNED, 121, Effect.DENY, "courier.status"),
        # A failed delivery goes back to the station (in_transit): the same grace applies.
        (Status.IN_TRANSIT, 119, Effect.ALLOW, "courier.assigned"),
        (Status.IN_TRANSIT, 121, Effect.DENY, "courier.status"),
    ],
)
def test_courier_grace_period(status: Status, minutes_ago: int, effect: Effect, rule: str) -> None:
    assert POLICY.roles[Role.COURIER].grace == GRACE
    facts = facts_for(OWN, status, delivery_ended_at=NOW - timedelta(minutes=minutes_ago))
    decision = decide_reveal(
        POLICY,
        principal_for(Role.COURIER),
        facts,
        request_for(Role.COURIER, frozenset({"recipient.address"})),
        NOW,
        used={},
    )
    assert (decision.effect, decision.rule) == (effect, rule)


def test_grace_period_does_not_help_a_courier_it_is_not_assigned_to() -> None:
    facts = facts_for(OTHER, Status.DELIVERED, delivery_ended_at=NOW - timedelta(minutes=5))
    decision = decide_reveal(
        POLICY,
        principal_for(Role.COURIER),
        facts,
        request_for(Role.COURIER, frozenset({"recipient.address"})),
        NOW,
        used={},
    )
    assert (decision.effect, decision.rule) == (Effect.DENY, "courier.not_assigned")


def test_grace_period_never_extends_to_the_sender_phone() -> None:
    facts = facts_for(OWN, Status.DELIVERED, delivery_ended_at=NOW - timedelta(minutes=5))
    decision = decide_reveal(
        POLICY,
        principal_for(Role.COURIER),
        facts,
        request_for(Role.COURIER, frozenset({"sender.phone"})),
        NOW,
        used={},
    )
    assert (decision.effect, decision.rule) == (Effect.DENY, "courier.field.sender.phone")


# -- break-glass -------------------------------------------------------------------------
REASON: Final = "court order 2026/17 fraud investigation"


def break_glass_request(role: Role, reason: str, fields: frozenset[str]) -> RevealRequest:
    return RevealRequest(
        fields=fields,
        purpose=parse_purpose(PURPOSES[role]),
        reason=reason,
        break_glass=True,
    )


ALL_FIELDS: Final = frozenset({"sender.name", "sender.phone", "sender.address", *REVEAL_FIELDS})


@pytest.mark.parametrize("relation", RELATIONS)
@pytest.mark.parametrize("status", STATUS_ORDER, ids=[s.value for s in STATUS_ORDER])
def test_security_break_glass_with_reason_allows_any_waybill(relation: str, status: Status) -> None:
    decision = decide_reveal(
        POLICY,
        principal_for(Role.SECURITY),
        facts_for(relation, status),
        break_glass_request(Role.SECURITY, REASON, ALL_FIELDS),
        NOW,
        used={},
    )
    assert (decision.effect, decision.rule) == (Effect.ALLOW, "break_glass.active")


@pytest.mark.parametrize("reason", ["", "   ", "short", "  1234567  "])
def test_security_break_glass_without_reason_steps_up(reason: str) -> None:
    assert POLICY.reason_min_length == 8
    decision = decide_reveal(
        POLICY,
        principal_for(Role.SECURITY),
        facts_for(OTHER, Status.IN_TRANSIT),
        break_glass_request(Role.SECURITY, reason, frozenset({"recipient.phone"})),
        NOW,
        used={},
    )
    assert (decision.effect, decision.rule) == (Effect.STEP_UP, "break_glass.reason")


def test_security_break_glass_reason_of_exactly_eight_characters() -> None:
    decision = decide_reveal(
        POLICY,
        principal_for(Role.SECURITY),
        facts_for(OTHER, Status.IN_TRANSIT),
        break_glass_request(Role.SECURITY, "12345678", frozenset({"recipient.phone"})),
        NOW,
        used={},
    )
    assert decision.effect is Effect.ALLOW


@pytest.mark.parametrize(
    "role",
    [Role.ADMIN, Role.COURIER, Role.STATION_CLERK, Role.STATION_MANAGER, Role.CS_AGENT],
)
def test_break_glass_flag_is_ignored_for_roles_without_break_glass(role: Role) -> None:
    assert not POLICY.roles[role].break_glass
    expected_rule = {
        Role.ADMIN: "admin.no_reveal",
        Role.STATION_MANAGER: "station_manager.not_own_station",
        Role.COURIER: "courier.not_assigned",
        Role.STATION_CLERK: "station_clerk.not_own_station",
        Role.CS_AGENT: "cs_agent.ticket_waybill",
    }[role]
    decision = decide_reveal(
        POLICY,
        principal_for(role),
        facts_for(OTHER, Status.OUT_FOR_DELIVERY),
        break_glass_request(role, REASON, frozenset({"recipient.address"})),
        NOW,
        ticket=ticket_for(role, OTHER, "recipient.address"),
        used={},
    )
    assert (decision.effect, decision.rule) == (Effect.DENY, expected_rule)


def test_break_glass_keeps_the_roles_purposes() -> None:
    # Security's plaintext is for legal requests only, even under break-glass.
    request = RevealRequest(
        fields=frozenset({"recipient.phone"}),
        purpose=parse_purpose("delivery"),
        reason=REASON,
        break_glass=True,
    )
    decision = decide_reveal(
        POLICY,
        principal_for(Role.SECURITY),
        facts_for(OTHER, Status.DELIVERED),
        request,
        NOW,
        used={},
    )
    assert (decision.effect, decision.rule) == (Effect.DENY, "security.purpose")


def test_break_glass_still_obeys_volume_tiers() -> None:
    security = principal_for(Role.SECURITY)
    request = break_glass_request(Role.SECURITY, REASON, frozenset({"recipient.phone"}))
    hour = POLICY.tier(security.grade).windows[Window.HOUR]
    locked = decide_reveal(
        POLICY,
        security,
        facts_for(OTHER, Status.DELIVERED),
        request,
        NOW,
        used={Window.HOUR: hour.ceiling},
    )
    assert (locked.effect, locked.rule) == (Effect.LOCKED, "tier.hour.ceiling")
    stepped = decide_reveal(
        POLICY,
        security,
        facts_for(OTHER, Status.DELIVERED),
        request,
        NOW,
        used={Window.HOUR: hour.allowance},
    )
    assert (stepped.effect, stepped.rule) == (Effect.STEP_UP, "tier.hour.step_up")


def test_break_glass_does_not_reach_shredded_waybills() -> None:
    facts = facts_with(facts_for(OTHER, Status.DELIVERED), shredded=True)
    decision = decide_reveal(
        POLICY,
        principal_for(Role.SECURITY),
        facts,
        break_glass_request(Role.SECURITY, REASON, frozenset({"recipient.phone"})),
        NOW,
        used={},
    )
    assert (decision.effect, decision.rule) == (Effect.DENY, "waybill.shredded")


def test_purposes_parse() -> None:
    # Guard for the table: the purposes above are what parse_purpose makes of them.
    assert {str(parse_purpose(p)) for p in PURPOSES.values()} == {
        "delivery",
        "ticket:T1",
        "legal:L1",
    }
    assert parse_purpose("ticket:T1") == Purpose(PurposeKind.TICKET, "T1")


@pytest.mark.parametrize(
    ("role", "closed_ago", "expected"),
    [
        (Role.STATION_CLERK, None, Effect.ALLOW),  # still open: no limit
        (Role.STATION_CLERK, timedelta(days=30), Effect.ALLOW),
        (Role.STATION_CLERK, timedelta(days=30, seconds=1), Effect.DENY),
        (Role.STATION_MANAGER, timedelta(days=90), Effect.ALLOW),
        (Role.STATION_MANAGER, timedelta(days=90, seconds=1), Effect.DENY),
        (Role.PARTNER, timedelta(days=89), Effect.ALLOW),
        (Role.PARTNER, timedelta(days=400), Effect.DENY),
    ],
)
def test_closed_waybills_only_within_closed_days(
    role: Role, closed_ago: timedelta | None, expected: Effect
) -> None:
    facts = facts_with(
        facts_for(OWN, Status.DELIVERED if closed_ago else Status.IN_TRANSIT),
        closed_at=NOW - closed_ago if closed_ago else None,
    )
    field = "recipient.address"
    decision = decide_reveal(
        POLICY, principal_for(role), facts, request_for(role, frozenset({field})), NOW, used={}
    )
    assert decision.effect is expected
    if expected is Effect.DENY:
        assert decision.rule == f"{role.value}.closed"
