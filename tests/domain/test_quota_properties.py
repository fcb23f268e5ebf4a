"""Volume tiers: no sequence of requests gets past a tier or a ceiling (issue 3).

A principal's ledger of charges is modelled in memory, exactly as
``AccessStore.usage`` counts it: a charge made at ``at`` counts in the window of length
``L`` ending ``now`` when ``at > now - L``. Random sequences of requests are decided with
``decide_reveal`` against the current usage, and a charge is appended only when the
decision is ALLOW. Then, for every rolling window:

(a) the records charged never exceed the window's ceiling;
(b) a charge made without step-up (fresh TOTP + written reason) never takes the window
    beyond its allowance;
(c) a charge made with step-up but no approval never takes it beyond ``step_up``;
(d) without an approval by manager AND security nothing goes beyond ``manager``;
(e) LOCKED is returned exactly when some window would exceed its ceiling;
(f) no request charges more than ``max_batch`` records;
(g) and the policy is not vacuously strict: a request within what its credentials
    cover is allowed, and a refusal names the next step in the order step-up →
    approval → lock.

Plus unit tests for the validation of policy files (``parse_window_limits`` /
``parse_policy``): every error's ``field`` names the offending key path.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from waybillguard.domain.errors import FieldError
from waybillguard.domain.identity import Principal, PrincipalState, Role
from waybillguard.domain.lifecycle import Status
from waybillguard.domain.policy import (
    ApprovalFacts,
    Decision,
    Effect,
    Policy,
    RevealRequest,
    WaybillFacts,
    check_volume,
    decide_reveal,
    default_policy,
    default_policy_text,
    parse_policy,
)
from waybillguard.domain.purpose import parse_purpose
from waybillguard.domain.quota import (
    WINDOW_SECONDS,
    Band,
    Tier,
    Window,
    WindowLimits,
    check_tier,
    parse_window_limits,
)

POLICY: Final[Policy] = default_policy()
BASE: Final = datetime(2026, 1, 1, tzinfo=UTC)
HORIZON: Final = 40 * 86_400  # seconds: sequences span up to 40 days
STATION: Final = "ST-01"
FACTS: Final = WaybillFacts(
    tracking_number="WG20260101000001",
    status=Status.IN_TRANSIT,
    origin_station="ST-02",
    destination_station=STATION,
    merchant="M1",
)
FIELDS: Final = frozenset({"recipient.phone"})
PURPOSE: Final = parse_purpose("delivery")
GOOD_REASON: Final = "customer disputes the delivery address"
REASONS: Final = ("", "short", "   1234567   ", "12345678", GOOD_REASON)
CAPACITIES: Final = ("manager", "security")


def clerk(grade: int) -> Principal:
    """A station clerk revealing a waybill of their own station: access always allows,
    so every refusal in these tests comes from the volume tier."""
    return Principal(id=1, username="clerk-a", role=Role.STATION_CLERK, unit=STATION, grade=grade)


# -- the model ---------------------------------------------------------------------------
class Level(IntEnum):
    """How far a request's credentials reach."""

    ALLOWANCE = 0  # no step-up
    STEP_UP = 1  # fresh TOTP + reason
    MANAGER = 2  # + approval voted by the manager, asked for the manager band or above
    CEILING = 3  # + approval voted by manager and security, asked for the security band


def limit(limits: WindowLimits, level: Level) -> int:
    return (limits.allowance, limits.step_up, limits.manager, limits.ceiling)[level]


def stepped_up(request: RevealRequest) -> bool:
    return request.fresh_mfa and len(request.reason.strip()) >= POLICY.reason_min_length


def level_of(request: RevealRequest) -> Level:
    if not stepped_up(request):
        return Level.ALLOWANCE
    approval = request.approval
    if approval is None or "manager" not in approval.approved_by:
        return Level.STEP_UP
    if "security" in approval.approved_by and approval.band >= Band.SECURITY:
        return Level.CEILING
    if approval.band >= Band.MANAGER:
        return Level.MANAGER
    return Level.STEP_UP


@dataclass
class Charge:
    at: int  # seconds after BASE
    records: int
    level: Level
    stepped: bool
    approved_by: frozenset[str]


@dataclass
class Ledger:
    charges: list[Charge] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    prefix: list[int] = field(default_factory=lambda: [0])

    def used(self, now: int) -> dict[Window, int]:
        """Records charged in each rolling window ending `now` (`at > now - window`)."""
        total = self.prefix[-1]
        return {
            w: total - self.prefix[bisect_right(self.times, now - seconds)]
            for w, seconds in WINDOW_SECONDS.items()
        }

    def charge(self, charge: Charge) -> None:
        assert not self.times or charge.at >= self.times[-1]
        self.charges.append(charge)
        self.times.append(charge.at)
        self.prefix.append(self.prefix[-1] + charge.records)

    def window_sum_through(self, index: int, window: Window) -> int:
        """Records in the window ending at charge `index`, up to and including it."""
        start = bisect_right(self.times, self.times[index] - WINDOW_SECONDS[window])
        return self.prefix[index + 1] - self.prefix[start]

    def window_sum_at(self, now: int, window: Window) -> int:
        """Records in the window ending `now`, every charge made at `now` included."""
        end = bisect_right(self.times, now)
        start = bisect_right(self.times, now - WINDOW_SECONDS[window])
        return self.prefix[end] - self.prefix[start]


@dataclass(frozen=True)
class Step:
    gap: int  # seconds before each repetition
    records: int
    fresh_mfa: bool
    reason: str
    approval: ApprovalFacts | None
    repeat: int


@dataclass
class Outcome:
    ledger: Ledger
    decisions: list[Decision]


def run(policy: Policy, grade: int, steps: list[Step], reviewer_unlocks: bool) -> Outcome:
    """Replay the steps; check (e), (f) and (g) per request; return the ledger."""
    tier = policy.tier(grade)
    principal = clerk(grade)
    ledger = Ledger()
    decisions: list[Decision] = []
    now = 0
    for step in steps:
        for _ in range(step.repeat):
            now += step.gap
            if now > HORIZON:
                return Outcome(ledger, decisions)
            used = ledger.used(now)
            request = RevealRequest(
                fields=FIELDS,
                purpose=PURPOSE,
                records=step.records,
                reason=step.reason,
                fresh_mfa=step.fresh_mfa,
                approval=step.approval,
            )
            decision = decide_reveal(
                policy, principal, FACTS, request, BASE + timedelta(seconds=now), used=used
            )
            decisions.append(decision)
            check_one(tier, principal, request, used, decision)
            if decision.allowed:
                ledger.charge(
                    Charge(
                        at=now,
                        records=request.records,
                        level=level_of(request),
                        stepped=stepped_up(request),
                        approved_by=(
                            request.approval.approved_by if request.approval else frozenset()
                        ),
                    )
                )
            elif decision.effect is Effect.LOCKED and not reviewer_unlocks:
                principal = replace(principal, state=PrincipalState.LOCKED)
    return Outcome(ledger, decisions)


def check_one(
    tier: Tier,
    principal: Principal,
    request: RevealRequest,
    used: dict[Window, int],
    decision: Decision,
) -> None:
    n = request.records
    if principal.state is PrincipalState.LOCKED:
        # Locked pending review: nothing more, whatever the request.
        assert (decision.effect, decision.rule) == (Effect.LOCKED, "account.locked")
        return
    if tier.reveals_nothing:
        assert (decision.effect, decision.rule) == (Effect.DENY, "tier.none")
        return
    if n > tier.max_batch:
        # (f) an oversized batch is refused outright, never charged, never locks.
        assert (decision.effect, decision.rule) == (Effect.DENY, "tier.max_batch")
        return
    exceeds = any(used[w] + n > tier.windows[w].ceiling for w in Window)
    # (e) LOCKED exactly when some window would exceed its ceiling.
    assert (decision.effect is Effect.LOCKED) == exceeds, (used, n, decision)
    level = level_of(request)
    fits = all(used[w] + n <= limit(tier.windows[w], level) for w in Window)
    # (g) allowed exactly when the credentials cover every window.
    assert decision.allowed == fits, (used, n, level, decision)
    if decision.allowed:
        assert decision.band is not None
        assert decision.band == check_tier(tier, used, n).band
        return
    if exceeds:
        assert decision.rule.startswith("tier.") and decision.rule.endswith(".ceiling")
    elif not stepped_up(request):
        assert decision.effect is Effect.STEP_UP, decision
    else:
        assert decision.effect is Effect.APPROVAL_REQUIRED, decision
        assert decision.band in (Band.MANAGER, Band.SECURITY)
        assert decision.needs
        assert set(decision.needs) <= set(CAPACITIES)
        if decision.band is Band.MANAGER:
            assert decision.needs == ("manager",)


def check_ledger(tier: Tier, ledger: Ledger) -> None:
    for i, charge in enumerate(ledger.charges):
        # (f) never more than a batch at once
        assert 1 <= charge.records <= tier.max_batch
        for w in Window:
            limits = tier.windows[w]
            # (a) every rolling window ending at a charge, all charges at that instant in
            # (the sum over any window is largest when it ends at a charge).
            assert ledger.window_sum_at(charge.at, w) <= limits.ceiling, (w, charge)
            through = ledger.window_sum_through(i, w)
            if not charge.stepped:
                # (b) without step-up, never beyond the allowance
                assert through <= limits.allowance, (w, charge, through)
            if charge.stepped and not charge.approved_by:
                # (c) step-up without approval: never beyond the step-up threshold
                assert through <= limits.step_up, (w, charge, through)
            if not {"manager", "security"} <= charge.approved_by:
                # (d) without manager + security approval: never beyond the manager band
                assert through <= limits.manager, (w, charge, through)
            assert through <= limit(limits, charge.level)


# -- strategies --------------------------------------------------------------------------
approvals = st.none() | st.builds(
    ApprovalFacts,
    request_id=st.integers(1, 10**6),
    approved_by=st.frozensets(st.sampled_from(CAPACITIES)),
    band=st.sampled_from(list(Band)),
)
gaps = st.one_of(
    st.just(0),
    st.integers(1, 120),
    st.integers(121, 3600),
    st.integers(3601, 3 * 86_400),
)


@st.composite
def steps_for(draw: st.DrawFn, max_batch: int, max_repeat: int = 40) -> list[Step]:
    top = max(1, max_batch)
    # Mostly full batches, sometimes smaller, now and then too large.
    records = st.one_of(
        st.just(top),
        st.just(top),
        st.integers(1, top),
        st.integers(1, top),
        st.integers(max_batch + 1, max_batch + 3),
    )
    step = st.builds(
        Step,
        gap=gaps,
        records=records,
        fresh_mfa=st.booleans(),
        reason=st.sampled_from((*REASONS, GOOD_REASON, GOOD_REASON)),
        approval=approvals,
        repeat=st.integers(1, max_repeat),
    )
    return draw(st.lists(step, min_size=1, max_size=30))


@st.composite
def window_values(draw: st.DrawFn, top: int, min_ceiling: int) -> tuple[int, int, int, int]:
    a, s, m, c = sorted(draw(st.lists(st.integers(0, top), min_size=4, max_size=4)))
    return a, s, m, max(c, min_ceiling)


@st.composite
def random_tiers(draw: st.DrawFn) -> tuple[int, dict[Window, tuple[int, int, int, int]]]:
    # Now and then a tier that reveals nothing (max_batch 0 or a zero ceiling).
    nothing = draw(st.integers(0, 9)) == 0
    max_batch = 0 if nothing and draw(st.booleans()) else draw(st.integers(1, 8))
    hour = draw(window_values(20, 0 if nothing else 1))
    day = draw(window_values(40, hour[3]))
    month = draw(window_values(80, day[3]))
    return max_batch, {Window.HOUR: hour, Window.DAY: day, Window.MONTH: month}


def policy_with_grade_9(max_batch: int, windows: dict[Window, tuple[int, int, int, int]]) -> str:
    text = default_policy_text()
    head = text[: text.index("[grades.9]")]
    lines = [head + "[grades.9]", f"max_batch = {max_batch}"]
    for w, (a, s, m, c) in windows.items():
        lines.append(
            f"{w.value} = {{ allowance = {a}, step_up = {s}, manager = {m}, ceiling = {c} }}"
        )
    return "\n".join(lines) + "\n"


def warm_up(tier: Tier, hours: int, slowdown: int) -> list[Step]:
    """Fully authorised full batches, evenly spread so the hourly window stays within its
    allowance: it fills the day window of the large default tiers, so the random steps
    after it reach the day's approval bands in a few hundred requests."""
    per_hour = tier.windows[Window.HOUR].allowance // tier.max_batch // slowdown
    if hours == 0 or per_hour == 0:
        return []
    return [
        Step(
            gap=-(-3600 // per_hour),
            records=tier.max_batch,
            fresh_mfa=True,
            reason=GOOD_REASON,
            approval=ApprovalFacts(1, frozenset(CAPACITIES), Band.SECURITY),
            repeat=hours * per_hour,
        )
    ]


# -- properties --------------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), grade=st.sampled_from(range(1, 10)), reviewer_unlocks=st.booleans())
def test_default_grades_never_exceed_a_tier_or_ceiling(
    data: st.DataObject, grade: int, reviewer_unlocks: bool
) -> None:
    tier = POLICY.tier(grade)
    steps = warm_up(tier, data.draw(st.integers(0, 30)), data.draw(st.integers(1, 4)))
    steps += data.draw(steps_for(tier.max_batch))
    outcome = run(POLICY, grade, steps, reviewer_unlocks)
    check_ledger(tier, outcome.ledger)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), shape=random_tiers(), reviewer_unlocks=st.booleans())
def test_random_tiers_never_exceed_a_tier_or_ceiling(
    data: st.DataObject,
    shape: tuple[int, dict[Window, tuple[int, int, int, int]]],
    reviewer_unlocks: bool,
) -> None:
    max_batch, windows = shape
    policy = parse_policy(policy_with_grade_9(max_batch, windows))
    tier = policy.tier(9)
    # The file says what the tier is: parsing round-trips the generated thresholds.
    assert tier.max_batch == max_batch
    assert {w: tuple(vars_of(tier.windows[w])) for w in Window} == windows
    steps = data.draw(steps_for(max_batch, max_repeat=12))
    outcome = run(policy, 9, steps, reviewer_unlocks)
    check_ledger(tier, outcome.ledger)


def vars_of(limits: WindowLimits) -> tuple[int, int, int, int]:
    return (limits.allowance, limits.step_up, limits.manager, limits.ceiling)


@settings(max_examples=200, deadline=None)
@given(
    shape=random_tiers(),
    used=st.fixed_dictionaries({w: st.integers(0, 100) for w in Window}),
    records=st.integers(1, 10),
    fresh_mfa=st.booleans(),
    reason=st.sampled_from(REASONS),
    approval=approvals,
)
def test_check_volume_single_request(
    shape: tuple[int, dict[Window, tuple[int, int, int, int]]],
    used: dict[Window, int],
    records: int,
    fresh_mfa: bool,
    reason: str,
    approval: ApprovalFacts | None,
) -> None:
    """The same invariants on arbitrary (not only reachable) usage, via check_volume."""
    max_batch, windows = shape
    tier = Tier(9, max_batch, {w: WindowLimits(*v) for w, v in windows.items()})
    policy = replace(POLICY, tiers={**POLICY.tiers, 9: tier})
    principal = clerk(9)
    request = RevealRequest(FIELDS, PURPOSE, records, reason, fresh_mfa, approval)
    access = Decision(Effect.ALLOW, "station_clerk.own_station", "own station")
    decision = check_volume(policy, principal, request, used, access)
    check_one(tier, principal, request, used, decision)
    if decision.allowed:
        for w in Window:
            assert used[w] + records <= tier.windows[w].ceiling


# -- written-out boundaries of the default grades ----------------------------------------
PLAIN: Final = RevealRequest(FIELDS, PURPOSE)
AUTHORISED: Final = RevealRequest(
    FIELDS,
    PURPOSE,
    reason=GOOD_REASON,
    fresh_mfa=True,
    approval=ApprovalFacts(41, frozenset(CAPACITIES), Band.SECURITY),
)
A, S, R, L = Effect.ALLOW, Effect.STEP_UP, Effect.APPROVAL_REQUIRED, Effect.LOCKED
H, D, M = Window.HOUR, Window.DAY, Window.MONTH

# (grade, used before the request, effect + rule for a plain one-record request,
#  effect for a stepped-up request approved by manager and security)
BOUNDARIES: Final = [
    # grade 1 — hour 30/45/45/45 (a burst limit: step-up, then lock), day 150/200/250/300,
    # month 2500/3000/3500/4000.
    (1, {}, A, "station_clerk.own_station", A),
    (1, {H: 29, D: 29, M: 29}, A, "station_clerk.own_station", A),
    (1, {H: 30, D: 30, M: 30}, S, "tier.hour.step_up", A),
    (1, {H: 44, D: 44, M: 44}, S, "tier.hour.step_up", A),
    (1, {H: 45, D: 45, M: 45}, L, "tier.hour.ceiling", L),
    (1, {D: 149, M: 149}, A, "station_clerk.own_station", A),
    (1, {D: 150, M: 150}, S, "tier.day.step_up", A),
    (1, {D: 199, M: 199}, S, "tier.day.step_up", A),
    (1, {D: 200, M: 200}, S, "tier.day.manager", A),
    (1, {D: 249, M: 249}, S, "tier.day.manager", A),
    (1, {D: 250, M: 250}, S, "tier.day.security", A),
    (1, {D: 299, M: 299}, S, "tier.day.security", A),
    (1, {D: 300, M: 300}, L, "tier.day.ceiling", L),
    (1, {M: 2499}, A, "station_clerk.own_station", A),
    (1, {M: 2500}, S, "tier.month.step_up", A),
    (1, {M: 3000}, S, "tier.month.manager", A),
    (1, {M: 3500}, S, "tier.month.security", A),
    (1, {M: 3999}, S, "tier.month.security", A),
    (1, {M: 4000}, L, "tier.month.ceiling", L),
    # The highest band over the windows decides; a tie goes to the shortest window.
    (1, {H: 30, D: 200, M: 200}, S, "tier.day.manager", A),
    (1, {H: 30, D: 150, M: 150}, S, "tier.hour.step_up", A),
    (1, {H: 10, D: 10, M: 4000}, L, "tier.month.ceiling", L),
    # grade 2 (station manager, cs agent) — hour 20/30/30/30, day 100/150/200/250,
    # month 1500/2000/2500/3000.
    (2, {H: 19, D: 99, M: 1499}, A, "station_clerk.own_station", A),
    (2, {H: 20, D: 20, M: 20}, S, "tier.hour.step_up", A),
    (2, {H: 30, D: 30, M: 30}, L, "tier.hour.ceiling", L),
    (2, {D: 200, M: 200}, S, "tier.day.security", A),
    (2, {D: 250, M: 250}, L, "tier.day.ceiling", L),
    (2, {M: 2999}, S, "tier.month.security", A),
    (2, {M: 3000}, L, "tier.month.ceiling", L),
    # grade 9 — the largest: still capped at 2800 an hour and 256000 in 30 days.
    (9, {H: 2799, D: 2799, M: 2799}, S, "tier.hour.step_up", A),
    (9, {H: 2800, D: 2800, M: 2800}, L, "tier.hour.ceiling", L),
    (9, {M: 256_000}, L, "tier.month.ceiling", L),
]


@pytest.mark.parametrize(
    ("grade", "used", "plain", "plain_rule", "authorised"),
    BOUNDARIES,
    ids=[f"g{g}-{'-'.join(f'{w}{n}' for w, n in u.items()) or 'fresh'}" for g, u, *_ in BOUNDARIES],
)
def test_default_grade_boundaries(
    grade: int, used: dict[Window, int], plain: Effect, plain_rule: str, authorised: Effect
) -> None:
    principal = clerk(grade)
    now = BASE
    first = decide_reveal(POLICY, principal, FACTS, PLAIN, now, used=used)
    assert (first.effect, first.rule) == (plain, plain_rule)
    second = decide_reveal(POLICY, principal, FACTS, AUTHORISED, now, used=used)
    assert second.effect is authorised


def test_escalation_order_step_up_then_manager_then_security() -> None:
    principal = clerk(1)
    used = {D: 250, M: 250}  # the day window is in the security band
    stepped = RevealRequest(FIELDS, PURPOSE, reason=GOOD_REASON, fresh_mfa=True)
    d = decide_reveal(POLICY, principal, FACTS, stepped, BASE, used=used)
    assert (d.effect, d.needs) == (R, ("manager", "security"))
    manager_only = replace(
        stepped, approval=ApprovalFacts(7, frozenset({"manager"}), Band.SECURITY)
    )
    d = decide_reveal(POLICY, principal, FACTS, manager_only, BASE, used=used)
    assert (d.effect, d.needs) == (R, ("security",))
    # Approved for the manager band only: not enough for the security band.
    low = replace(stepped, approval=ApprovalFacts(7, frozenset(CAPACITIES), Band.MANAGER))
    d = decide_reveal(POLICY, principal, FACTS, low, BASE, used=used)
    assert (d.effect, d.needs) == (R, ("manager", "security"))
    both = replace(stepped, approval=ApprovalFacts(7, frozenset(CAPACITIES), Band.SECURITY))
    d = decide_reveal(POLICY, principal, FACTS, both, BASE, used=used)
    assert (d.effect, d.rule, d.band) == (A, "station_clerk.own_station+approval:7", Band.SECURITY)
    # Approval without a fresh step-up is not enough.
    no_mfa = replace(both, fresh_mfa=False)
    d = decide_reveal(POLICY, principal, FACTS, no_mfa, BASE, used=used)
    assert (d.effect, d.rule) == (S, "tier.day.security")


def test_step_up_allows_with_suffixed_rule() -> None:
    stepped = RevealRequest(FIELDS, PURPOSE, reason=GOOD_REASON, fresh_mfa=True)
    d = decide_reveal(POLICY, clerk(1), FACTS, stepped, BASE, used={H: 30, D: 30, M: 30})
    assert (d.effect, d.rule, d.band) == (A, "station_clerk.own_station+step_up", Band.STEP_UP)


@pytest.mark.parametrize("reason", ["", "short", "   1234567   "])
def test_step_up_needs_a_written_reason(reason: str) -> None:
    request = RevealRequest(FIELDS, PURPOSE, reason=reason, fresh_mfa=True)
    d = decide_reveal(POLICY, clerk(1), FACTS, request, BASE, used={H: 30, D: 30, M: 30})
    assert d.effect is S


def test_grade_zero_reveals_nothing() -> None:
    assert POLICY.tier(0).reveals_nothing
    d = decide_reveal(POLICY, clerk(0), FACTS, AUTHORISED, BASE, used={})
    assert (d.effect, d.rule) == (Effect.DENY, "tier.none")


@pytest.mark.parametrize("grade", range(1, 10))
def test_max_batch_of_every_default_grade(grade: int) -> None:
    tier = POLICY.tier(grade)
    within = replace(AUTHORISED, records=tier.max_batch)
    beyond = replace(AUTHORISED, records=tier.max_batch + 1)
    assert decide_reveal(POLICY, clerk(grade), FACTS, within, BASE, used={}).allowed
    d = decide_reveal(POLICY, clerk(grade), FACTS, beyond, BASE, used={})
    assert (d.effect, d.rule) == (Effect.DENY, "tier.max_batch")


def test_ledger_counts_like_the_access_store() -> None:
    # at > now - window: a charge exactly one window old no longer counts.
    ledger = Ledger()
    ledger.charge(Charge(0, 3, Level.ALLOWANCE, False, frozenset()))
    assert ledger.used(3599) == {H: 3, D: 3, M: 3}
    assert ledger.used(3600) == {H: 0, D: 3, M: 3}
    assert ledger.used(86_400) == {H: 0, D: 0, M: 3}
    assert ledger.used(30 * 86_400) == {H: 0, D: 0, M: 0}


def test_a_sequence_reaches_every_band() -> None:
    """The property runner is not vacuous: a scripted sequence walks a small tier through
    allow, step-up, approvals and the lock, and the ledger holds."""
    windows = {H: (2, 4, 6, 8), D: (2, 4, 6, 8), M: (2, 4, 6, 8)}
    policy = parse_policy(policy_with_grade_9(1, windows))
    plain = Step(60, 1, False, "", None, 1)
    stepped = Step(60, 1, True, GOOD_REASON, None, 1)
    manager = replace(stepped, approval=ApprovalFacts(1, frozenset({"manager"}), Band.MANAGER))
    both = replace(stepped, approval=ApprovalFacts(2, frozenset(CAPACITIES), Band.SECURITY))
    steps = [replace(plain, repeat=3), replace(stepped, repeat=3)]
    steps += [replace(manager, repeat=3), replace(both, repeat=3)]
    outcome = run(policy, 9, steps, reviewer_unlocks=False)
    effects = [d.effect for d in outcome.decisions]
    assert effects == [A, A, S, A, A, R, A, A, R, A, A, L]
    assert [d.band for d in outcome.decisions if d.allowed] == [
        Band.ALLOW, Band.ALLOW, Band.STEP_UP, Band.STEP_UP,
        Band.MANAGER, Band.MANAGER, Band.SECURITY, Band.SECURITY,
    ]  # fmt: skip
    check_ledger(policy.tier(9), outcome.ledger)


# -- policy validation: errors name the key ----------------------------------------------
TEXT: Final = default_policy_text()


def edited(old: str, new: str) -> str:
    assert TEXT.count(old) == 1, old
    return TEXT.replace(old, new)


GRADE_1_DAY: Final = "day   = { allowance = 150, step_up = 200, manager = 250, ceiling = 300 }"
GRADE_5_BLOCK: Final = TEXT[TEXT.index("[grades.5]") : TEXT.index("[grades.6]")]


COURIER_FIELDS: Final = 'fields = ["recipient.address"]'
CS_HEAD: Final = 'scope = "ticket"\nview = "any"\npurposes = '


def grade_1_day(spec: str) -> str:
    return edited(GRADE_1_DAY, f"day   = {{ {spec} }}")


def field_of(text: str) -> str:
    with pytest.raises(FieldError) as info:
        parse_policy(text)
    return info.value.field


def test_default_policy_parses() -> None:
    assert POLICY.version == 1
    assert sorted(POLICY.tiers) == list(range(10))
    assert set(POLICY.roles) == set(Role)
    assert POLICY.tier(1).windows[H] == WindowLimits(30, 45, 45, 45)
    assert re.fullmatch(r"[0-9a-f]{64}", POLICY.sha256)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        pytest.param("version = 1\n[roles\n", "policy", id="bad-toml"),
        pytest.param("extra = 1\n" + TEXT, "extra", id="unknown-top-level-key"),
        pytest.param(edited("version = 1", "version = 0"), "version", id="version-zero"),
        pytest.param(edited("version = 1", "version = true"), "version", id="version-bool"),
        pytest.param(
            edited("reason_min_length = 8", "reason_min_length = 8\nreason_max = 9"),
            "settings.reason_max",
            id="unknown-setting",
        ),
        pytest.param(
            edited("reason_min_length = 8", "reason_min_length = 0"),
            "settings.reason_min_length",
            id="setting-below-one",
        ),
        pytest.param(
            edited("[roles.admin]", '[roles.auditor]\nscope = "none"\n\n[roles.admin]'),
            "roles.auditor",
            id="unknown-role",
        ),
        pytest.param(
            edited('[roles.admin]\nscope = "none"\nview = "any"\n', ""),
            "roles.admin",
            id="missing-role",
        ),
        pytest.param(
            edited('scope = "assigned"', 'scope = "assigned"\nscop = "station"'),
            "roles.courier.scop",
            id="unknown-role-key",
        ),
        pytest.param(
            edited('scope = "assigned"', 'scope = "nationwide"'),
            "roles.courier.scope",
            id="unknown-scope",
        ),
        pytest.param(
            edited('view = "assigned"', 'view = "everything"'),
            "roles.courier.view",
            id="unknown-view",
        ),
        pytest.param(
            edited(COURIER_FIELDS, 'fields = ["recipient.address", "sender.phone"]'),
            "roles.courier.fields",
            id="courier-given-sender-phone",
        ),
        pytest.param(
            edited(COURIER_FIELDS, 'fields = ["recipient.id_number"]'),
            "roles.courier.fields",
            id="unknown-field",
        ),
        pytest.param(
            edited(COURIER_FIELDS, "fields = []"),
            "roles.courier",
            id="revealing-role-without-fields",
        ),
        pytest.param(
            edited('purposes = ["delivery"]', 'purposes = ["curiosity"]'),
            "roles.courier.purposes",
            id="unknown-purpose",
        ),
        pytest.param(
            edited('statuses = ["out_for_delivery"]', 'statuses = ["lost"]'),
            "roles.courier.statuses",
            id="unknown-status",
        ),
        pytest.param(
            edited("grace_minutes = 120", "grace_minutes = -1"),
            "roles.courier.grace_minutes",
            id="negative-grace",
        ),
        pytest.param(
            edited("closed_days = 30", "closed_days = 0"),
            "roles.station_clerk.closed_days",
            id="closed-days-zero",
        ),
        pytest.param(
            edited("closed_days = 30", 'closed_days = "30"'),
            "roles.station_clerk.closed_days",
            id="closed-days-not-a-number",
        ),
        pytest.param(
            edited(
                'purposes = ["legal"]\nbreak_glass = true', 'purposes = ["legal"]\nbreak_glass = 1'
            ),
            "roles.security.break_glass",
            id="break-glass-not-bool",
        ),
        pytest.param(
            edited(CS_HEAD + '["ticket"]', CS_HEAD + '["claim"]'),
            "roles.cs_agent.purposes",
            id="ticket-scope-without-ticket-purpose",
        ),
        pytest.param(edited(GRADE_5_BLOCK, ""), "grades.5", id="missing-grade"),
        pytest.param(TEXT + "\n[grades.10]\nmax_batch = 1\n", "grades.10", id="grade-out-of-range"),
        pytest.param(
            edited("[grades.1]\nmax_batch = 1", "[grades.1]\nmax_bath = 1"),
            "grades.1.max_bath",
            id="unknown-tier-key",
        ),
        pytest.param(
            edited("[grades.1]\nmax_batch = 1", "[grades.1]\nmax_batch = -1"),
            "grades.1.max_batch",
            id="negative-max-batch",
        ),
        pytest.param(
            grade_1_day("allowance = 250, step_up = 200, manager = 250, ceiling = 300"),
            "grades.1.day",
            id="thresholds-out-of-order",
        ),
        pytest.param(
            grade_1_day("allowance = 150, step_up = 200, manager = 250, ceiling = 40"),
            "grades.1.day",
            id="thresholds-out-of-order-ceiling",
        ),
        pytest.param(
            grade_1_day("allowance = 15, step_up = 20, manager = 25, ceiling = 30"),
            "grades.1",
            id="ceiling-shrinks-from-hour-to-day",
        ),
        pytest.param(edited(GRADE_1_DAY, ""), "grades.1.day", id="missing-window"),
        pytest.param(
            grade_1_day("step_up = 200, manager = 250, ceiling = 300"),
            "grades.1.day.allowance",
            id="missing-allowance",
        ),
        pytest.param(
            grade_1_day("allowance = 150, step_up = true, manager = 250, ceiling = 300"),
            "grades.1.day.step_up",
            id="threshold-bool",
        ),
        pytest.param(
            grade_1_day("allowance = 150, allowence = 200, ceiling = 300"),
            "grades.1.day.allowence",
            id="unknown-window-key",
        ),
    ],
)
def test_parse_policy_errors_name_the_key(text: str, key: str) -> None:
    assert field_of(text) == key


def test_grade_key_with_a_non_ascii_digit_is_a_field_error() -> None:
    # "²".isdigit() is True but int("²") raises: the parser must still answer FieldError.
    # The key is not repeated: messages never echo keys that are not plain identifiers
    # (a key could be a customer's name or phone number; see safe_key).
    text = edited("[grades.9]", '[grades."²"]')
    assert field_of(text) == "grades.<unprintable key>"


def test_a_grade_cannot_be_defined_twice() -> None:
    # TOML keys "3" and "03" differ, but both are grade 3: a reviewer reading [grades.3]
    # must not be overruled by a later [grades."03"].
    text = TEXT + (
        '\n[grades."03"]\nmax_batch = 200\n'
        "hour = { allowance = 99999 }\nday = { allowance = 99999 }\nmonth = { allowance = 99999 }\n"
    )
    assert field_of(text) == "grades.03"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        pytest.param(5, "w", id="not-a-table"),
        pytest.param({"allowance": 1, "bogus": 2}, "w.bogus", id="unknown-key"),
        pytest.param({}, "w.allowance", id="missing-allowance"),
        pytest.param({"allowance": -1}, "w.allowance", id="negative"),
        pytest.param({"allowance": True}, "w.allowance", id="bool"),
        pytest.param({"allowance": 1.5}, "w.allowance", id="float"),
        pytest.param({"allowance": 1, "step_up": "2"}, "w.step_up", id="string"),
        pytest.param({"allowance": 5, "step_up": 3}, "w", id="step-up-below-allowance"),
        pytest.param({"allowance": 1, "step_up": 5, "manager": 4}, "w", id="manager-below-step-up"),
        pytest.param(
            {"allowance": 1, "step_up": 2, "manager": 3, "ceiling": 2},
            "w",
            id="ceiling-below-manager",
        ),
    ],
)
def test_parse_window_limits_errors_name_the_key(data: object, key: str) -> None:
    with pytest.raises(FieldError) as info:
        parse_window_limits(data, "w")
    assert info.value.field == key


def test_parse_window_limits_defaults_each_threshold_to_the_previous() -> None:
    assert parse_window_limits({"allowance": 5}, "w") == WindowLimits(5, 5, 5, 5)
    assert parse_window_limits({"allowance": 5, "manager": 9}, "w") == WindowLimits(5, 5, 9, 9)
    assert parse_window_limits(
        {"allowance": 1, "step_up": 2, "manager": 3, "ceiling": 4}, "w"
    ) == WindowLimits(1, 2, 3, 4)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.integers(0, 50), min_size=4, max_size=4))
def test_parse_window_limits_accepts_exactly_ordered_thresholds(values: list[int]) -> None:
    data = dict(zip(("allowance", "step_up", "manager", "ceiling"), values, strict=True))
    if values == sorted(values):
        assert parse_window_limits(data, "w") == WindowLimits(*values)
    else:
        with pytest.raises(FieldError) as info:
            parse_window_limits(data, "w")
        assert info.value.field == "w"
