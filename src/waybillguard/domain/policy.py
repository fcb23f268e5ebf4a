"""Who may reveal what, as data: the access policy and the decisions it makes.

The policy is a TOML file an organisation reviews like code (see
``default_policy.toml`` beside this module and docs/access.md). ``parse_policy``
validates it completely before it can take effect; ``decide_reveal`` and
``decide_view`` are pure functions of the policy, the principal, the waybill's
routing facts and the request — no I/O, so every decision can be tested exhaustively
and explained without charging anything.

A decision names the rule that made it, so denials are actionable and the audit log
says why each reveal happened.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from importlib import resources
from typing import Any, Final

from waybillguard.domain.errors import FieldError
from waybillguard.domain.fields import PII_FIELDS, ROLES
from waybillguard.domain.identity import MAX_GRADE, Principal, PrincipalState, Role
from waybillguard.domain.lifecycle import Status
from waybillguard.domain.purpose import Purpose, PurposeKind
from waybillguard.domain.quota import Band, Tier, TierCheck, Window, check_tier, parse_window_limits


class Scope(StrEnum):
    """Which waybills a role's reveals may touch."""

    ASSIGNED = "assigned"  # waybills assigned to the courier
    STATION = "station"  # waybills originating at or destined to the principal's station
    TICKET = "ticket"  # the waybill and party of an open customer-service ticket
    MERCHANT = "merchant"  # the partner's own shipments
    NONE = "none"  # no reveals (break-glass may widen it)


class TicketOpening(StrEnum):
    """Which tickets a ticket-scoped role's reveals may cite."""

    # Only a ticket opened with the customer's phone, which matched the party's phone:
    # the agent cannot pick the party, the customer's own number names it.
    VERIFIED = "verified"
    # Also a new ticket id, bound to the waybill and party of its first reveal (for a
    # network whose ticketing system does not capture the customer's number).
    FIRST_REVEAL = "first_reveal"


class Effect(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    STEP_UP = "step_up"
    APPROVAL_REQUIRED = "approval_required"
    LOCKED = "locked"


@dataclass(frozen=True, slots=True)
class RolePolicy:
    role: Role
    scope: Scope
    purposes: frozenset[PurposeKind]
    fields: frozenset[str]
    view: Scope | None  # which waybills' masked views; None: any
    statuses: frozenset[Status] = frozenset()  # empty: any status
    grace: timedelta = timedelta(0)
    break_glass: bool = False
    # How long after a waybill closed (delivered, returned, cancelled) it may still be
    # revealed; None: no limit. Closed waybills are what insiders harvest in bulk.
    closed_limit: timedelta | None = None
    tickets: TicketOpening = TicketOpening.VERIFIED


@dataclass(frozen=True, slots=True)
class Policy:
    version: int
    sha256: str
    roles: Mapping[Role, RolePolicy]
    tiers: Mapping[int, Tier]
    step_up_valid: timedelta
    approval_valid: timedelta
    break_glass_max: timedelta
    reason_min_length: int

    def tier(self, grade: int) -> Tier:
        # parse_policy guarantees every grade 0..MAX_GRADE has a tier
        return self.tiers[grade]


@dataclass(frozen=True, slots=True)
class WaybillFacts:
    """What a decision may know about a waybill: routing fields only, never PII."""

    tracking_number: str
    status: Status
    origin_station: str | None
    destination_station: str | None
    merchant: str
    assigned_courier: int | None = None  # principal id
    # When the waybill last left out_for_delivery (None while still out or never out).
    delivery_ended_at: datetime | None = None
    shredded: bool = False
    # When it reached a final status (None while open, or when not looked up).
    closed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TicketFacts:
    ticket_id: str
    tracking_number: str
    party: str  # sender | recipient
    closed: bool = False
    verified: bool = False  # opened with the customer's phone, which matched the party's


@dataclass(frozen=True, slots=True)
class RevealRequest:
    fields: frozenset[str]
    purpose: Purpose | None  # None only when explaining without a purpose
    records: int = 1  # records in this request (batch size)
    reason: str = ""
    fresh_mfa: bool = False  # a TOTP shown within the policy's step-up window
    approval: ApprovalFacts | None = None
    break_glass: bool = False  # an unexpired break-glass grant is active


@dataclass(frozen=True, slots=True)
class ApprovalFacts:
    """An approval request as the policy sees it (already matched to this request)."""

    request_id: int
    approved_by: frozenset[str]  # capacities that voted approve: manager, security
    band: Band  # the band the approval was asked for


@dataclass(frozen=True, slots=True)
class Decision:
    effect: Effect
    rule: str
    message: str
    band: Band | None = None
    needs: tuple[str, ...] = ()  # for approval_required: capacities still missing
    opens_ticket: bool = False  # a new ticket would be bound to this waybill and party
    check: TierCheck | None = field(default=None, compare=False)

    @property
    def allowed(self) -> bool:
        return self.effect is Effect.ALLOW


def _deny(rule: str, message: str) -> Decision:
    return Decision(Effect.DENY, rule, message)


# -- decisions ---------------------------------------------------------------------------
def decide_reveal(
    policy: Policy,
    principal: Principal,
    facts: WaybillFacts,
    request: RevealRequest,
    now: datetime,
    *,
    ticket: TicketFacts | None = None,
    used: Mapping[Window, int] | None = None,
) -> Decision:
    """The decision on one reveal. `used` is what the principal's windows were already
    charged; None means "do not check volume" (the caller checks it separately)."""
    access = check_access(policy, principal, facts, request, now, ticket=ticket)
    if not access.allowed or used is None:
        return access
    return check_volume(policy, principal, request, used, access)


def check_account(principal: Principal) -> Decision | None:
    if principal.state is PrincipalState.LOCKED:
        return Decision(
            Effect.LOCKED,
            "account.locked",
            "账户已锁定，等待复核 / account locked pending review",
        )
    if principal.state is PrincipalState.DISABLED:
        return _deny("account.disabled", "账户已停用 / account disabled")
    return None


def check_access(
    policy: Policy,
    principal: Principal,
    facts: WaybillFacts,
    request: RevealRequest,
    now: datetime,
    *,
    ticket: TicketFacts | None = None,
) -> Decision:
    """Everything but volume: account, role, purpose, fields, scope, status."""
    account = check_account(principal)
    if account is not None:
        return account
    if facts.shredded:
        return _deny("waybill.shredded", "个人信息已销毁 / personal data shredded")
    role = policy.roles[principal.role]
    unknown = sorted(request.fields - set(PII_FIELDS))
    if unknown or not request.fields:
        return _deny("request.fields", "请求的字段无效 / no valid personal field requested")
    if request.break_glass and role.break_glass:
        purpose_check = _check_purpose(role, request.purpose)
        return purpose_check or _break_glass_access(policy, request)
    if role.scope is Scope.NONE:
        return _deny(
            f"{role.role.value}.no_reveal",
            "该角色无权查看明文 / this role reveals nothing (break-glass only)",
        )
    purpose_check = _check_purpose(role, request.purpose)
    if purpose_check is not None:
        return purpose_check
    not_allowed = sorted(request.fields - role.fields)
    if not_allowed:
        return _deny(
            f"{role.role.value}.field.{not_allowed[0]}",
            f"该角色不可查看 {not_allowed[0]} / this role may not reveal {not_allowed[0]}",
        )
    return _check_scope(role, principal, facts, request, now, ticket)


def _break_glass_access(policy: Policy, request: RevealRequest) -> Decision:
    if len(request.reason.strip()) < policy.reason_min_length:
        return Decision(
            Effect.STEP_UP,
            "break_glass.reason",
            "紧急授权须填写理由 / break-glass reveals need a written reason",
        )
    return Decision(Effect.ALLOW, "break_glass.active", "紧急授权生效中 / break-glass active")


def _check_purpose(role: RolePolicy, purpose: Purpose | None) -> Decision | None:
    if purpose is None:
        return None  # explaining without a purpose: judge the rest
    if purpose.kind not in role.purposes:
        allowed = ", ".join(sorted(p.value for p in role.purposes))
        return _deny(
            f"{role.role.value}.purpose",
            f"该角色的用途须为 {allowed} / purpose must be one of: {allowed}",
        )
    return None


def _check_scope(
    role: RolePolicy,
    principal: Principal,
    facts: WaybillFacts,
    request: RevealRequest,
    now: datetime,
    ticket: TicketFacts | None,
) -> Decision:
    name = role.role.value
    if role.scope is Scope.ASSIGNED:
        if facts.assigned_courier != principal.id:
            return _deny(f"{name}.not_assigned", "运单未分配给你 / waybill not assigned to you")
        if not _in_delivery_window(role, facts, now):
            return _deny(
                f"{name}.status",
                "仅在派送中（及宽限期内）可查看 / only while out for delivery (plus grace)",
            )
        return Decision(Effect.ALLOW, f"{name}.assigned", "派送中的指派运单 / assigned delivery")
    if role.scope is Scope.STATION:
        if principal.unit not in (facts.origin_station, facts.destination_station):
            return _deny(
                f"{name}.not_own_station",
                "运单不属于本网点 / waybill neither originates at nor is destined to your station",
            )
        refused = _check_status(role, facts) or _check_closed(role, facts, now)
        return refused or Decision(Effect.ALLOW, f"{name}.own_station", "本网点运单 / own station")
    if role.scope is Scope.TICKET:
        return _check_ticket(name, role.tickets, facts, request, ticket)
    if role.scope is Scope.MERCHANT:
        if principal.merchant is None or principal.merchant != facts.merchant:
            return _deny(f"{name}.not_own_shipment", "非本商户运单 / not your shipment")
        outside = sorted(request.fields - principal.contract_fields)
        if outside:
            return _deny(
                f"{name}.contract.{outside[0]}",
                f"合同未包含 {outside[0]} / your contract does not list {outside[0]}",
            )
        closed = _check_closed(role, facts, now)
        return closed or Decision(Effect.ALLOW, f"{name}.own_shipment", "本商户运单 / own shipment")
    return _deny(f"{name}.no_reveal", "该角色无权查看明文 / this role reveals nothing")


def _check_status(role: RolePolicy, facts: WaybillFacts) -> Decision | None:
    if role.statuses and facts.status not in role.statuses:
        return _deny(f"{role.role.value}.status", "运单状态不允许查看 / not in an allowed status")
    return None


def _check_closed(role: RolePolicy, facts: WaybillFacts, now: datetime) -> Decision | None:
    limit, closed = role.closed_limit, facts.closed_at
    if limit is None or closed is None or now - closed <= limit:
        return None
    days = limit.days
    return _deny(
        f"{role.role.value}.closed",
        f"运单已完结超过 {days} 天 / the waybill closed more than {days} days ago",
    )


def _in_delivery_window(role: RolePolicy, facts: WaybillFacts, now: datetime) -> bool:
    if not role.statuses or facts.status in role.statuses:
        return True
    ended = facts.delivery_ended_at
    # A delivery end in the future is bad data or clock skew, never a reason to allow.
    return ended is not None and timedelta(0) <= now - ended <= role.grace


def _party_of(fields: frozenset[str]) -> str | None:
    parties = {f.split(".", 1)[0] for f in fields}
    return parties.pop() if len(parties) == 1 else None


def _check_ticket(
    name: str,
    opening: TicketOpening,
    facts: WaybillFacts,
    request: RevealRequest,
    ticket: TicketFacts | None,
) -> Decision:
    party = _party_of(request.fields)
    if party is None:
        return _deny(
            f"{name}.ticket_one_party",
            "一个工单只涉及一方（寄件人或收件人）/ a ticket covers one party only",
        )
    if request.purpose is not None and request.purpose.kind is not PurposeKind.TICKET:
        return _deny(f"{name}.purpose", "客服查看须附工单号 / reveals need ticket:ID")
    verified_only = opening is TicketOpening.VERIFIED
    if ticket is None and verified_only:
        return _deny(
            f"{name}.ticket_not_open",
            "工单未开：请以客户来电号码开单 / open the ticket with the customer's phone first",
        )
    if ticket is None:
        return Decision(
            Effect.ALLOW,
            f"{name}.ticket",
            "新工单将绑定此运单及该方 / a new ticket is bound to this waybill and party",
            opens_ticket=request.purpose is not None,
        )
    if ticket.closed:
        return _deny(f"{name}.ticket_closed", "工单已关闭 / the ticket is closed")
    if ticket.tracking_number != facts.tracking_number:
        return _deny(f"{name}.ticket_waybill", "工单属于另一运单 / ticket is for another waybill")
    if ticket.party != party:
        return _deny(
            f"{name}.ticket_party",
            f"工单只涉及{_party_label(ticket.party)} / the ticket concerns the {ticket.party} only",
        )
    if verified_only and not ticket.verified:
        return _deny(
            f"{name}.ticket_unverified",
            "工单未经客户号码核验 / the ticket's party was not verified by the customer's phone",
        )
    return Decision(Effect.ALLOW, f"{name}.ticket", "工单范围内 / within the ticket")


def _party_label(party: str) -> str:
    return "寄件人" if party == "sender" else "收件人"


def check_volume(
    policy: Policy,
    principal: Principal,
    request: RevealRequest,
    used: Mapping[Window, int],
    access: Decision,
) -> Decision:
    """Apply the grade's tier to an access decision that allowed the request."""
    tier = policy.tier(principal.grade)
    if tier.reveals_nothing:
        return _deny("tier.none", "该等级不可查看明文 / this grade reveals nothing")
    if request.records > tier.max_batch:
        return _deny(
            "tier.max_batch",
            f"单次最多 {tier.max_batch} 条；批量请走导出审批 / at most {tier.max_batch} "
            "records per request; use a bulk export",
        )
    check = check_tier(tier, used, request.records)
    band = check.band
    if band is Band.CEILING:
        return Decision(
            Effect.LOCKED,
            check.rule,
            "已达上限，账户锁定待复核并已告警 / ceiling reached: account locked pending "
            "review, security alerted",
            band=band,
            check=check,
        )
    if band is Band.ALLOW:
        return _with(access, band, check)
    step_up = _check_step_up(policy, request, check)
    if step_up is not None:
        return step_up
    if band is Band.STEP_UP:
        return _with(access, band, check, suffix="+step_up")
    needs = ("manager",) if band is Band.MANAGER else ("manager", "security")
    approval = request.approval
    missing = tuple(n for n in needs if approval is None or n not in approval.approved_by)
    if approval is not None and approval.band >= band and not missing:
        return _with(access, band, check, suffix=f"+approval:{approval.request_id}")
    return Decision(
        Effect.APPROVAL_REQUIRED,
        check.rule,
        "超出额度，需" + "、".join(_CAPACITY_LABELS[n] for n in needs) + "审批 / beyond the "
        "allowance: needs approval by " + " then ".join(needs),
        band=band,
        needs=missing or needs,
        check=check,
    )


_CAPACITY_LABELS: Final = {"manager": "主管", "security": "安全"}


def _check_step_up(policy: Policy, request: RevealRequest, check: TierCheck) -> Decision | None:
    if request.fresh_mfa and len(request.reason.strip()) >= policy.reason_min_length:
        return None
    return Decision(
        Effect.STEP_UP,
        check.rule,
        "超出常规额度：需新的动态码（--totp）和书面理由（--reason）/ beyond the allowance: "
        "a fresh TOTP code (--totp) and a written reason (--reason) are required",
        band=check.band,
        check=check,
    )


def _with(access: Decision, band: Band, check: TierCheck, suffix: str = "") -> Decision:
    return Decision(
        Effect.ALLOW,
        access.rule + suffix,
        access.message,
        band=band,
        opens_ticket=access.opens_ticket,
        check=check,
    )


def decide_view(policy: Policy, principal: Principal, facts: WaybillFacts) -> Decision:
    """May the principal see the masked view of this waybill? Masked views carry no
    personal data, but tracking numbers and routes feed "brushing" fraud, so views are
    scoped too."""
    account = check_account(principal)
    if account is not None:
        return account
    role = policy.roles[principal.role]
    name = role.role.value
    if role.view is None:
        return Decision(Effect.ALLOW, f"{name}.view_any", "可查看脱敏运单 / masked view")
    if role.view is Scope.ASSIGNED and facts.assigned_courier == principal.id:
        return Decision(Effect.ALLOW, f"{name}.view_assigned", "指派运单 / assigned waybill")
    if role.view is Scope.STATION and principal.unit in (
        facts.origin_station,
        facts.destination_station,
    ):
        return Decision(Effect.ALLOW, f"{name}.view_own_station", "本网点运单 / own station")
    if role.view is Scope.MERCHANT and principal.merchant == facts.merchant:
        return Decision(Effect.ALLOW, f"{name}.view_own_shipment", "本商户运单 / own shipment")
    return _deny(f"{name}.view_scope", "无权查看该运单 / this waybill is outside your scope")


# -- parsing -----------------------------------------------------------------------------
_TOP_KEYS: Final = frozenset({"version", "settings", "roles", "grades"})
_ROLE_KEYS: Final = frozenset(
    {
        "scope",
        "purposes",
        "fields",
        "view",
        "statuses",
        "grace_minutes",
        "break_glass",
        "closed_days",
        "tickets",
    }
)
_SETTING_MAX: Final = {
    "step_up_valid_minutes": 24 * 60,
    "approval_valid_minutes": 7 * 24 * 60,
    "break_glass_max_minutes": 7 * 24 * 60,
    "reason_min_length": 200,
}
_SETTINGS: Final = {
    "step_up_valid_minutes": 5,
    "approval_valid_minutes": 60,
    "break_glass_max_minutes": 240,
    "reason_min_length": 8,
}


def default_policy_text() -> str:
    return resources.files("waybillguard.domain").joinpath("default_policy.toml").read_text("utf-8")


def default_policy() -> Policy:
    return parse_policy(default_policy_text())


MAX_POLICY_BYTES: Final = 64 * 1024
MAX_POLICY_LINES: Final = 2000
MAX_POLICY_LINE: Final = 400
_SAFE_KEY = re.compile(r"[A-Za-z0-9_]{1,32}")
_KEY_DIGITS = re.compile(r"\d{5,}")


def safe_key(key: object) -> str:
    """A key from the file as it may appear in a message: messages end up in terminals and
    logs, and a key could be anything — a customer's name or phone number. Keys that are
    not short identifiers are not repeated."""
    text = str(key)
    if _SAFE_KEY.fullmatch(text) and not _KEY_DIGITS.search(text):
        return text
    return "<unprintable key>"


def _check_shape(text: str) -> None:
    """Bounds checked before the TOML parser runs: its work grows quadratically with a
    dotted key's length and it recurses on nesting, so a small hostile file could exhaust
    memory or the stack. A real policy is a few kilobytes of short lines."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        raise FieldError("policy", f"larger than {MAX_POLICY_BYTES // 1024} KiB")
    lines = text.splitlines()
    if len(lines) > MAX_POLICY_LINES:
        raise FieldError("policy", f"more than {MAX_POLICY_LINES} lines")
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_POLICY_LINE:
            raise FieldError("policy", f"line {number} is longer than {MAX_POLICY_LINE} characters")


def parse_policy(text: str) -> Policy:
    """Parse and validate a policy file completely; raise FieldError naming the key."""
    _check_shape(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = str(exc).rpartition("(")[2].rstrip(")") if "(at line" in str(exc) else ""
        raise FieldError("policy", f"not valid TOML {where}".strip()) from None
    except RecursionError:
        raise FieldError("policy", "nested too deeply") from None
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise FieldError(safe_key(sorted(unknown)[0]), "unknown top-level key")
    version = _whole(data.get("version"), "version", 1, 2**31 - 1)
    settings = _parse_settings(data.get("settings", {}))
    roles = _parse_roles(data.get("roles"))
    tiers = _parse_grades(data.get("grades"))
    return Policy(
        version=version,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        roles=roles,
        tiers=tiers,
        step_up_valid=timedelta(minutes=settings["step_up_valid_minutes"]),
        approval_valid=timedelta(minutes=settings["approval_valid_minutes"]),
        break_glass_max=timedelta(minutes=settings["break_glass_max_minutes"]),
        reason_min_length=settings["reason_min_length"],
    )


def _whole(value: object, where: str, minimum: int = 0, maximum: int = 10**9) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise FieldError(where, f"must be a whole number from {minimum} to {maximum}")
    return value


def _parse_settings(data: object) -> dict[str, int]:
    if not isinstance(data, Mapping):
        raise FieldError("settings", "must be a table")
    unknown = set(data) - set(_SETTINGS)
    if unknown:
        raise FieldError(f"settings.{safe_key(sorted(unknown)[0])}", "unknown setting")
    return {
        k: _whole(data.get(k, d), f"settings.{k}", 1, _SETTING_MAX[k]) for k, d in _SETTINGS.items()
    }


def _string_list(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FieldError(where, "must be a list of strings")
    return list(value)


def _parse_roles(data: object) -> dict[Role, RolePolicy]:
    if not isinstance(data, Mapping):
        raise FieldError("roles", "must be a table with one entry per role")
    for name in data:
        if name not in Role.__members__.values():
            raise FieldError(f"roles.{safe_key(name)}", "unknown role")
    missing = [r.value for r in Role if r.value not in data]
    if missing:
        raise FieldError(f"roles.{missing[0]}", "every role must be listed (deny explicitly)")
    return {r: _parse_role(r, data[r.value]) for r in Role}


def _parse_scope(value: object, where: str) -> Scope:
    try:
        return Scope(str(value))
    except ValueError:
        raise FieldError(where, f"must be one of {', '.join(Scope)}") from None


def _parse_role(role: Role, data: object) -> RolePolicy:
    where = f"roles.{role.value}"
    if not isinstance(data, Mapping):
        raise FieldError(where, "must be a table")
    unknown = set(data) - _ROLE_KEYS
    if unknown:
        raise FieldError(f"{where}.{safe_key(sorted(unknown)[0])}", "unknown key")
    scope = _parse_scope(data.get("scope"), f"{where}.scope")
    view_raw = data.get("view", "any")
    view = None if view_raw == "any" else _parse_scope(view_raw, f"{where}.view")
    purposes = _parse_enum_list(PurposeKind, data.get("purposes", []), f"{where}.purposes")
    fields = _string_list(data.get("fields", []), f"{where}.fields")
    bad = [f for f in fields if f not in PII_FIELDS]
    if bad:
        raise FieldError(f"{where}.fields", f"unknown field {bad[0]}")
    statuses = _parse_enum_list(Status, data.get("statuses", []), f"{where}.statuses")
    grace = _whole(data.get("grace_minutes", 0), f"{where}.grace_minutes", 0, 7 * 24 * 60)
    closed_days = data.get("closed_days")
    closed_limit = (
        None
        if closed_days is None
        else timedelta(days=_whole(closed_days, f"{where}.closed_days", 1, 3650))
    )
    break_glass = data.get("break_glass", False)
    if not isinstance(break_glass, bool):
        raise FieldError(f"{where}.break_glass", "must be true or false")
    if scope is not Scope.NONE and (not purposes or not fields):
        raise FieldError(where, "a role that reveals needs purposes and fields")
    if role is Role.COURIER and "sender.phone" in fields:
        raise FieldError(f"{where}.fields", "a courier never reveals the sender's phone")
    if scope is Scope.TICKET and PurposeKind.TICKET not in purposes:
        raise FieldError(f"{where}.purposes", "ticket scope needs the ticket purpose")
    tickets_raw = data.get("tickets", TicketOpening.VERIFIED.value)
    if tickets_raw not in TicketOpening.__members__.values():
        raise FieldError(f"{where}.tickets", f"must be one of {', '.join(TicketOpening)}")
    if "tickets" in data and scope is not Scope.TICKET:
        raise FieldError(f"{where}.tickets", "only for a role with ticket scope")
    return RolePolicy(
        role=role,
        scope=scope,
        purposes=frozenset(purposes),
        fields=frozenset(fields),
        view=view,
        statuses=frozenset(statuses),
        grace=timedelta(minutes=grace),
        break_glass=break_glass,
        closed_limit=closed_limit,
        tickets=TicketOpening(tickets_raw),
    )


def _parse_enum_list(enum: Any, value: object, where: str) -> list[Any]:
    out = []
    for item in _string_list(value, where):
        try:
            out.append(enum(item))
        except ValueError:
            raise FieldError(where, f"unknown value {safe_key(item)}") from None
    return out


def _parse_grades(data: object) -> dict[int, Tier]:
    if not isinstance(data, Mapping):
        raise FieldError("grades", "must be a table with one entry per grade 0-9")
    tiers: dict[int, Tier] = {}
    names = {str(g) for g in range(MAX_GRADE + 1)}
    for key, value in data.items():
        # Exactly "0".."9": "03" or other digit forms would silently replace a reviewed grade.
        if key not in names:
            raise FieldError(f"grades.{safe_key(key)}", f"grades are written 0-{MAX_GRADE}")
        tiers[int(key)] = _parse_tier(int(key), value)
    missing = [g for g in range(MAX_GRADE + 1) if g not in tiers]
    if missing:
        raise FieldError(f"grades.{missing[0]}", "every grade 0-9 must be defined")
    return tiers


def _parse_tier(grade: int, data: object) -> Tier:
    where = f"grades.{grade}"
    if not isinstance(data, Mapping):
        raise FieldError(where, "must be a table")
    unknown = set(data) - {"max_batch", *(w.value for w in Window)}
    if unknown:
        raise FieldError(f"{where}.{safe_key(sorted(unknown)[0])}", "unknown key")
    max_batch = _whole(data.get("max_batch"), f"{where}.max_batch", 0, 1_000_000)
    windows = {}
    for w in Window:
        if w.value not in data:
            raise FieldError(f"{where}.{w.value}", "every window (hour, day, month) is required")
        windows[w] = parse_window_limits(data[w.value], f"{where}.{w.value}")
    hour, day, month = windows[Window.HOUR], windows[Window.DAY], windows[Window.MONTH]
    if not hour.ceiling <= day.ceiling <= month.ceiling:
        raise FieldError(where, "ceilings must not shrink from hour to day to month")
    return Tier(grade=grade, max_batch=max_batch, windows=windows)


def role_fields(policy: Policy, role: Role) -> Sequence[str]:
    return sorted(policy.roles[role].fields)


PARTIES: Final = ROLES
