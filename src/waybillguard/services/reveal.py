"""Reveal: the only way to plaintext.

    request → authenticate (entrypoint) → policy decision (domain)
            → charge quota + append audit event (one transaction, committed)
            → decrypt only the granted fields (vault) → caller

The decision, the quota charge, any side effect (a ticket bound, an account locked,
an alert, an approval request) and the audit event commit together. Only after that
commit does the vault receive a grant citing the audit event; if anything before it
fails, nothing is decrypted. Counting is exact under concurrency because every
reveal of a principal takes that principal's row lock (PostgreSQL) or the database's
write lock (SQLite) before reading its usage: charge first, then reveal.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from waybillguard.adapters.db.access_store import AccessStore, ApprovalRow, SealedParts
from waybillguard.adapters.divisions import load_divisions
from waybillguard.domain.address import full_address
from waybillguard.domain.audit_event import (
    AuditEvent,
    check_free_text,
    format_timestamp,
    letter_digest,
)
from waybillguard.domain.errors import FieldError, valid_id
from waybillguard.domain.fields import PII_FIELDS
from waybillguard.domain.identity import Principal, PrincipalState
from waybillguard.domain.person_name import parse_name
from waybillguard.domain.phone import parse_phone
from waybillguard.domain.policy import (
    ApprovalFacts,
    Decision,
    Effect,
    Policy,
    RevealRequest,
    Scope,
    WaybillFacts,
    check_access,
    check_volume,
)
from waybillguard.domain.purpose import Purpose, PurposeKind, parse_purpose
from waybillguard.domain.quota import Band
from waybillguard.domain.tracking import parse_tracking_number
from waybillguard.services import audit, policy_admin
from waybillguard.services.app import App
from waybillguard.services.caller import Caller
from waybillguard.vault import RevealGrant, SealedRecord

MAX_REASON = 200
REVIEW_VALID = timedelta(days=30)  # an account review stays open this long
MAX_PHONE_MATCHES = 200
_KNOWN_FIELDS = frozenset(PII_FIELDS)

# Verifies a fresh TOTP code for the caller's session and records it; returns the
# time the step-up was recorded, or None when the code is wrong or reused.
StepUp = Callable[[App, Caller, str], datetime | None]


class RevealFailed(RuntimeError):
    """The reveal was granted and audited, but the data could not be decrypted (e.g. the
    waybill was shredded meanwhile). No plaintext left the vault."""


@dataclass
class RevealOutcome:
    decision: Decision
    tracking_numbers: list[str]
    fields: dict[str, dict[str, str]] = field(default_factory=dict)  # number → field → value
    audit_event: int | None = None
    request_id: int | None = None

    @property
    def allowed(self) -> bool:
        return self.decision.effect is Effect.ALLOW

    def as_json(self, single: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "decision": self.decision.effect.value,
            "rule": self.decision.rule,
            "message": self.decision.message,
        }
        if self.allowed:
            if single and len(self.tracking_numbers) == 1:
                data["tracking_number"] = self.tracking_numbers[0]
                data["fields"] = self.fields.get(self.tracking_numbers[0], {})
            else:
                data["waybills"] = [
                    {"tracking_number": n, "fields": self.fields.get(n, {})}
                    for n in self.tracking_numbers
                ]
        if self.decision.needs:
            data["needs"] = list(self.decision.needs)
        if self.request_id is not None:
            data["request_id"] = self.request_id
        if self.audit_event is not None:
            data["audit_event"] = self.audit_event
        return data


# -- request parsing ------------------------------------------------------------------------
def parse_fields(fields: Sequence[str] | str) -> frozenset[str]:
    if type(fields) is str:
        return _parse_field_text(fields)
    return _parse_field_items(fields.split(",") if isinstance(fields, str) else list(fields))


# Requests name the same few field lists over and over; the result is immutable and a
# pure function of the text, and a list that fails raises (never cached).
@functools.lru_cache(maxsize=64)
def _parse_field_text(text: str) -> frozenset[str]:
    return _parse_field_items(text.split(","))


def _parse_field_items(items: list[str]) -> frozenset[str]:
    wanted = frozenset(f.strip() for f in items if f.strip())
    if not wanted:
        raise FieldError("fields", "name at least one field, e.g. recipient.address")
    unknown = sorted(wanted - _KNOWN_FIELDS)
    if unknown:
        raise FieldError("fields", f"unknown field; one of {', '.join(PII_FIELDS)}")
    return wanted


def check_reason(reason: str) -> str:
    """A written reason is stored with the charge (not in the audit log, which holds its
    hash). Refuse what looks like personal data so it is not kept at all."""
    text = reason.strip()
    if len(text) > MAX_REASON:
        raise FieldError("reason", f"at most {MAX_REASON} characters")
    if not text.isprintable():
        raise FieldError("reason", "contains control or invisible characters")
    try:
        check_free_text("reason", text, MAX_REASON)
    except FieldError:
        raise FieldError(
            "reason", "must not contain personal data (phone or identity numbers)"
        ) from None
    return text


def reason_ref(reason: str) -> str:
    """How the audit log refers to a written reason (kept with the charge, not in the log)."""
    return letter_digest(reason) if reason else ""


def _utcnow() -> datetime:
    return datetime.now(UTC)


# -- the reveal --------------------------------------------------------------------------------
def reveal(
    app: App,
    caller: Caller,
    number: str,
    fields: Sequence[str] | str,
    purpose: str,
    *,
    reason: str = "",
    totp: str | None = None,
    approval_id: int | None = None,
    step_up: StepUp | None = None,
    now: datetime | None = None,
) -> RevealOutcome:
    """Reveal fields of one waybill to the caller, if policy and volume allow."""
    decided = _decide(app, caller, number, fields, purpose, reason, totp, approval_id, step_up, now)
    return _finish(app, decided)


@dataclass(frozen=True, slots=True)
class RevealCall:
    """One request of `reveal_batch`: what `reveal` takes, without a step-up."""

    caller: Caller
    number: str
    fields: Sequence[str] | str
    purpose: str
    reason: str = ""
    approval_id: int | None = None


def reveal_batch(app: App, calls: Sequence[RevealCall]) -> list[RevealOutcome | Exception]:
    """Reveals of several requests (a server's burst), one result per call, in order: an
    outcome, or the exception that call raised on its own.

    Each call is decided, charged and audited exactly as by `reveal`, one after another
    under the same lock, so every call sees the charges of those before it. On SQLite
    they share one transaction (one savepoint each) and one synced commit; nothing is
    decrypted until that commit returned. If the commit fails, this raises and no call
    gets plaintext. Elsewhere each call commits on its own (`AccessStore.hot_group`).

    No TOTP step-up here: it records the session's second factor in a transaction of
    its own, which must not wait inside this one; such requests go through `reveal`."""
    store = policy_admin.access_store(app)
    decided: list[_Decided | Exception] = []
    with store.hot_group():
        for call in calls:
            try:
                decided.append(
                    _decide(
                        app,
                        call.caller,
                        call.number,
                        call.fields,
                        call.purpose,
                        call.reason,
                        None,
                        call.approval_id,
                        None,
                        None,
                    )
                )
            except Exception as exc:  # this call's own failure; its savepoint rolled back
                decided.append(exc)
    results: list[RevealOutcome | Exception] = []
    for item in decided:
        if isinstance(item, Exception):
            results.append(item)
            continue
        try:
            results.append(_finish(app, item))
        except Exception as exc:
            results.append(exc)
    return results


@dataclass(frozen=True, slots=True)
class _Decided:
    """A committed decision whose granted fields are not decrypted yet."""

    outcome: RevealOutcome
    wanted: frozenset[str]
    sealed: SealedParts | None


def _decide(
    app: App,
    caller: Caller,
    number: str,
    fields: Sequence[str] | str,
    purpose: str,
    reason: str,
    totp: str | None,
    approval_id: int | None,
    step_up: StepUp | None,
    now: datetime | None,
) -> _Decided:
    wanted = parse_fields(fields)
    parsed_purpose = parse_purpose(purpose)
    reason = check_reason(reason)
    parsed = parse_tracking_number(number)
    tracking_number = str(parsed) if parsed is not None else None
    policy = policy_admin.current(app)
    now, caller = _step_up_if_given(app, caller, totp, policy, step_up, now)
    request = RevealRequest(
        fields=wanted,
        purpose=parsed_purpose,
        records=1,
        reason=reason,
        fresh_mfa=caller.mfa_fresh(now, policy.step_up_valid),
    )
    store = policy_admin.access_store(app)
    role = policy.roles[caller.principal.role]
    courier_like = role.scope is Scope.ASSIGNED
    sealed: SealedParts | None = None
    with store.hot_write() as conn:
        if tracking_number is None:
            principal = _locked_principal(store, conn, caller.principal)
            facts = None
        else:
            context = store.reveal_context(
                conn,
                caller.principal.id,
                tracking_number,
                sorted(wanted),
                delivery_end=courier_like,
                closed_end=role.closed_limit is not None,
            )
            principal = _with_state(caller.principal, context.state)
            facts, sealed = context.facts, context.sealed
        if facts is None:
            decision = Decision(Effect.DENY, "waybill.not_found", "无此运单 / no such waybill")
            numbers: list[str] = []
        else:
            decision, request = _decide_one(
                store, conn, policy, principal, facts, request, now, approval_id
            )
            numbers = [facts.tracking_number]
        outcome = _commit(
            app,
            store,
            conn,
            policy,
            caller,
            principal,
            decision,
            request,
            numbers,
            now,
            approval_id,
        )
    return _Decided(outcome, wanted, sealed)


def _finish(app: App, decided: _Decided) -> RevealOutcome:
    """Decrypt what a committed decision granted."""
    if decided.outcome.allowed and decided.sealed is not None:
        return _open_sealed(app, decided.outcome, decided.wanted, decided.sealed)
    return _open(app, decided.outcome, decided.wanted)


def reveal_by_phone(
    app: App,
    caller: Caller,
    phone: str,
    fields: Sequence[str] | str,
    purpose: str,
    *,
    name: str | None = None,
    reason: str = "",
    totp: str | None = None,
    step_up: StepUp | None = None,
    now: datetime | None = None,
) -> RevealOutcome:
    """Reveal fields of every waybill where a party has this phone (and name), under the
    same rules as `reveal`: each waybill must pass the policy, and the whole batch is
    charged at once against the grade's largest batch and windows."""
    wanted = parse_fields(fields)
    parsed_purpose = parse_purpose(purpose)
    reason = check_reason(reason)
    e164 = parse_phone(phone, "phone").e164
    phone_index = app.vault.index_phone(e164)
    name_index = app.vault.index_name_phone(parse_name(name, "name").value, e164) if name else None
    matches = app.store.find_by_phone_index(phone_index, name_index, MAX_PHONE_MATCHES)
    subject = (name_index or phone_index).hex()
    policy = policy_admin.current(app)
    now, caller = _step_up_if_given(app, caller, totp, policy, step_up, now)
    request = RevealRequest(
        fields=wanted,
        purpose=parsed_purpose,
        reason=reason,
        fresh_mfa=caller.mfa_fresh(now, policy.step_up_valid),
    )
    store = policy_admin.access_store(app)
    with store.write() as conn:
        principal = _locked_principal(store, conn, caller.principal)
        request = replace(request, break_glass=_break_glass(store, conn, policy, principal, now))
        granted: list[str] = []
        last: Decision | None = None
        for w in matches:
            facts = store.waybill_facts(conn, w.tracking_number)
            if facts is None:
                continue
            ticket = _ticket(store, conn, parsed_purpose)
            last = check_access(policy, principal, facts, request, now, ticket=ticket)
            if last.allowed:
                granted.append(facts.tracking_number)
        if not granted:
            decision = (
                last
                if last is not None and not last.allowed
                else Decision(
                    Effect.DENY, "lookup.no_match", "无可查看的运单 / no waybill you may reveal"
                )
            )
        else:
            request = replace(request, records=len(granted))
            used = store.usage(conn, principal.id, now)
            decision = check_volume(
                policy, principal, request, used, last or Decision(Effect.ALLOW, "lookup", "")
            )
            if decision.effect is Effect.ALLOW:
                decision = replace(decision, rule=f"lookup:{decision.rule}")
        outcome = _commit(
            app,
            store,
            conn,
            policy,
            caller,
            principal,
            decision,
            request,
            granted if decision.allowed else [m.tracking_number for m in matches],
            now,
            None,
            subject_refs=[subject],
        )
    if outcome.allowed:
        outcome.tracking_numbers = granted
    return _open(app, outcome, wanted)


# -- steps ------------------------------------------------------------------------------------
def _step_up_if_given(
    app: App,
    caller: Caller,
    totp: str | None,
    policy: Policy,
    step_up: StepUp | None,
    now: datetime | None,
) -> tuple[datetime, Caller]:
    now = now or _utcnow()
    if totp and step_up is not None and not caller.mfa_fresh(now, policy.step_up_valid):
        proven = step_up(app, caller, totp)
        if proven is not None:
            caller = replace(caller, mfa_at=proven)
    return now, caller


def _locked_principal(store: AccessStore, conn: Connection, principal: Principal) -> Principal:
    """Take the principal's lock and re-read its state: a lock set by a concurrent
    request or a reviewer must apply to this one."""
    return _with_state(principal, store.lock_principal(conn, principal.id))


def _with_state(principal: Principal, state: str | None) -> Principal:
    if state is None:
        return replace(principal, state=PrincipalState.DISABLED)
    if state == principal.state.value:
        return principal
    return replace(principal, state=PrincipalState(state))


def _ticket(store: AccessStore, conn: Connection, purpose: Purpose | None) -> Any:
    if purpose is None or purpose.kind is not PurposeKind.TICKET:
        return None
    return store.ticket(conn, purpose.ref)


def _break_glass(
    store: AccessStore, conn: Connection, policy: Policy, principal: Principal, now: datetime
) -> bool:
    if not policy.roles[principal.role].break_glass:
        return False  # a grant the role may not hold is never looked up, let alone used
    return store.active_break_glass(conn, principal.id, now) is not None


def _decide_one(
    store: AccessStore,
    conn: Connection,
    policy: Policy,
    principal: Principal,
    facts: WaybillFacts,
    request: RevealRequest,
    now: datetime,
    approval_id: int | None,
) -> tuple[Decision, RevealRequest]:
    ticket = _ticket(store, conn, request.purpose)
    break_glass = _break_glass(store, conn, policy, principal, now)
    if break_glass != request.break_glass:  # copying the request costs more than the test
        request = replace(request, break_glass=break_glass)
    access = check_access(policy, principal, facts, request, now, ticket=ticket)
    if not access.allowed:
        return access, request
    if approval_id is not None:
        row = store.approval(conn, approval_id, lock=True) if valid_id(approval_id) else None
        problem = _approval_problem(row, principal, facts, request, now)
        if problem is not None:
            return problem, request
        assert row is not None
        request = replace(
            request,
            approval=ApprovalFacts(
                row.id, row.approved_by, Band.SECURITY if "security" in row.needs else Band.MANAGER
            ),
        )
    used = store.usage(conn, principal.id, now)
    return check_volume(policy, principal, request, used, access), request


def _approval_problem(
    row: ApprovalRow | None,
    principal: Principal,
    facts: WaybillFacts,
    request: RevealRequest,
    now: datetime,
) -> Decision | None:
    def deny(rule: str, message: str) -> Decision:
        return Decision(Effect.DENY, rule, message)

    if row is None or row.kind != "reveal" or row.requester_id != principal.id:
        return deny("approval.unknown", "无此审批单 / no such approval request of yours")
    if row.tracking_number != facts.tracking_number or not request.fields <= row.fields:
        return deny(
            "approval.mismatch", "审批单与本次请求不符 / the approval covers another request"
        )
    if request.purpose is not None and row.purpose != str(request.purpose):
        return deny(
            "approval.mismatch", "审批单与本次请求不符 / the approval covers another purpose"
        )
    if row.expires_at <= now:
        return deny("approval.expired", "审批单已过期 / the approval expired")
    if row.state != "approved":
        return deny(f"approval.{row.state}", f"审批单状态为 {row.state} / approval is {row.state}")
    return None


def _commit(
    app: App,
    store: AccessStore,
    conn: Connection,
    policy: Policy,
    caller: Caller,
    principal: Principal,
    decision: Decision,
    request: RevealRequest,
    numbers: list[str],
    now: datetime,
    approval_id: int | None,
    *,
    subject_refs: Sequence[str] = (),
) -> RevealOutcome:
    """Record the decision's side effects and its audit event in the caller's
    transaction; charge the quota if it allows."""
    request_id: int | None = None
    detail: dict[str, str | int] = {"records": request.records}
    if decision.band is not None:
        detail["band"] = decision.band.name.lower()
    if request.reason:
        detail["reason_ref"] = reason_ref(request.reason)
    if decision.effect is Effect.ALLOW:
        if decision.opens_ticket and request.purpose is not None and numbers:
            party = next(iter(request.fields)).split(".", 1)[0]
            store.open_ticket(conn, request.purpose.ref, numbers[0], party, principal.username, now)
        if request.approval is not None:
            store.set_approval_state(conn, request.approval.request_id, "used", now)
            detail["approval"] = request.approval.request_id
    elif decision.effect is Effect.LOCKED and decision.band is Band.CEILING:
        request_id = _lock_for_review(app, store, conn, policy, principal, decision, now)
        detail["review_request"] = request_id
    elif decision.effect is Effect.APPROVAL_REQUIRED and numbers:
        request_id = _approval_request(
            store, conn, policy, principal, decision, request, numbers[0], now
        )
        detail["approval_request"] = request_id
    detail["policy"] = policy.version
    actor = caller.actor  # built on each access
    event = AuditEvent(
        action="reveal",
        actor=actor.name,
        role=actor.role,
        unit=actor.unit,
        decision=decision.effect.value,
        rule=decision.rule[:128],
        purpose=str(request.purpose) if request.purpose else "",
        waybills=tuple(numbers),
        fields=tuple(sorted(request.fields)),
        subject_refs=tuple(subject_refs),
        client=actor.client,
        at=format_timestamp(now),
        detail=detail,
    )
    [event_id] = audit.record_in(app, conn, [event])
    if decision.effect is Effect.ALLOW:
        store.charge(conn, principal.id, request.records, now, event_id, request.reason)
    return RevealOutcome(decision, numbers, audit_event=event_id, request_id=request_id)


def _lock_for_review(
    app: App,
    store: AccessStore,
    conn: Connection,
    policy: Policy,
    principal: Principal,
    decision: Decision,
    now: datetime,
) -> int:
    """Ran into a ceiling: lock the account, alert security, open a two-person review."""
    store.set_principal_state(conn, principal.id, PrincipalState.LOCKED.value, decision.rule, now)
    store.add_alert(
        conn,
        "quota.ceiling",
        "high",
        f"{principal.username} ({principal.role.value}@{principal.unit}) hit {decision.rule}; "
        "account locked pending review",
        now,
        principal_id=principal.id,
        unit_code=principal.unit,
    )
    return store.create_approval(
        conn,
        kind="unlock",
        requester_id=principal.id,
        tracking_number=None,
        fields=(),
        purpose="",
        reason=decision.rule,
        records=0,
        needs=("manager", "security"),
        now=now,
        expires_at=now + REVIEW_VALID,
    )


def _approval_request(
    store: AccessStore,
    conn: Connection,
    policy: Policy,
    principal: Principal,
    decision: Decision,
    request: RevealRequest,
    number: str,
    now: datetime,
) -> int:
    purpose = str(request.purpose) if request.purpose else ""
    existing = store.pending_approval_for(
        conn, principal.id, number, sorted(request.fields), purpose, now
    )
    if existing is not None:
        return existing
    needs = ("manager",) if decision.band is Band.MANAGER else ("manager", "security")
    return store.create_approval(
        conn,
        kind="reveal",
        requester_id=principal.id,
        tracking_number=number,
        fields=sorted(request.fields),
        purpose=purpose,
        reason=request.reason,
        records=request.records,
        needs=needs,
        now=now,
        expires_at=now + policy.approval_valid,
    )


def _open_sealed(
    app: App, outcome: RevealOutcome, wanted: frozenset[str], sealed: SealedParts
) -> RevealOutcome:
    """Decrypt the granted fields read in the deciding transaction, citing its event."""
    assert outcome.audit_event is not None
    number = outcome.tracking_numbers[0]
    record = SealedRecord(number, sealed.uid, sealed.kek_id, sealed.wrapped_dek, sealed.ciphertexts)
    grant = RevealGrant(number, wanted, str(outcome.audit_event))
    try:
        values = app.vault.open_fields(record, grant)
    except Exception as exc:  # the vault's errors never carry plaintext
        raise RevealFailed(f"could not decrypt: {type(exc).__name__}") from None
    adcodes = {"sender": sealed.origin_adcode, "recipient": sealed.destination_adcode}
    outcome.fields[number] = _complete(values, adcodes)
    return outcome


def _open(app: App, outcome: RevealOutcome, wanted: frozenset[str]) -> RevealOutcome:
    """Decrypt the granted fields, citing the committed audit event."""
    if not outcome.allowed:
        return outcome
    assert outcome.audit_event is not None
    for number in outcome.tracking_numbers:
        sealed = app.store.sealed(number)
        if sealed is None:
            raise RevealFailed("the waybill disappeared after the reveal was granted")
        record = SealedRecord(
            number, sealed.uid, sealed.kek_id, sealed.wrapped_dek, sealed.ciphertexts
        )
        grant = RevealGrant(number, wanted, str(outcome.audit_event))
        try:
            values = app.vault.open_fields(record, grant)
        except Exception as exc:  # the vault's errors never carry plaintext
            raise RevealFailed(f"could not decrypt: {type(exc).__name__}") from None
        outcome.fields[number] = complete_addresses(app, number, values)
    return outcome


def complete_addresses(app: App, number: str, values: dict[str, str]) -> dict[str, str]:
    """Sealed addresses hold the detail part only; the divisions are routing fields kept
    clear. Put them back together, as the person wrote them."""
    if not any(f.endswith(".address") for f in values):
        return values
    stored = app.store.get(number)
    if stored is None:
        return values
    return _complete(
        values, {"sender": stored.origin_adcode, "recipient": stored.destination_adcode}
    )


def _complete(values: dict[str, str], adcodes: dict[str, str]) -> dict[str, str]:
    table = load_divisions()
    out = dict(values)
    for name, value in values.items():
        party, _, attribute = name.partition(".")
        if attribute == "address":
            province, city, district = (d.name for d in table.path(adcodes[party]))
            out[name] = full_address(province, city, district, value)
    return out


def explain(
    app: App,
    principal: Principal,
    number: str,
    fields: Sequence[str] | str,
    purpose: str | None = None,
    *,
    fresh_mfa: bool = False,
    reason: str = "",
    now: datetime | None = None,
) -> dict[str, Any]:
    """What a reveal by `principal` would get right now, and which rule decides it —
    without charging, binding a ticket, locking or decrypting anything."""
    wanted = parse_fields(fields)
    parsed_purpose = parse_purpose(purpose) if purpose else None
    parsed = parse_tracking_number(number)
    now = now or _utcnow()
    policy = policy_admin.current(app)
    store = policy_admin.access_store(app)
    request = RevealRequest(
        fields=wanted, purpose=parsed_purpose, reason=reason, fresh_mfa=fresh_mfa
    )
    with store.read() as conn:
        facts = store.waybill_facts(conn, str(parsed)) if parsed else None
        used = store.usage(conn, principal.id, now)
        if facts is None:
            decision = Decision(Effect.DENY, "waybill.not_found", "无此运单 / no such waybill")
        else:
            request = replace(
                request, break_glass=_break_glass(store, conn, policy, principal, now)
            )
            access = check_access(
                policy, principal, facts, request, now, ticket=_ticket(store, conn, parsed_purpose)
            )
            decision = (
                check_volume(policy, principal, request, used, access) if access.allowed else access
            )
    tier = policy.tier(principal.grade)
    return {
        "decision": decision.effect.value,
        "rule": decision.rule,
        "message": decision.message,
        "band": decision.band.name.lower() if decision.band is not None else None,
        "needs": list(decision.needs),
        "user": principal.username,
        "role": principal.role.value,
        "grade": principal.grade,
        "policy_version": policy.version,
        "usage": {w.value: used.get(w, 0) for w in tier.windows},
        "limits": {
            w.value: {
                "allowance": lim.allowance,
                "step_up": lim.step_up,
                "manager": lim.manager,
                "ceiling": lim.ceiling,
            }
            for w, lim in tier.windows.items()
        },
        "max_batch": tier.max_batch,
        "charged": False,
    }


def allowance(app: App, principal: Principal, now: datetime | None = None) -> dict[str, Any]:
    """What the principal has used and may still reveal in each window (for consoles)."""
    now = now or _utcnow()
    policy = policy_admin.current(app)
    tier = policy.tier(principal.grade)
    store = policy_admin.access_store(app)
    with store.read() as conn:
        used = store.usage(conn, principal.id, now)
    return {
        w.value: {
            "used": used.get(w, 0),
            "allowance": lim.allowance,
            "remaining": max(0, lim.allowance - used.get(w, 0)),
            "ceiling": lim.ceiling,
        }
        for w, lim in tier.windows.items()
    }
