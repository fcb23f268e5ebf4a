"""Virtual numbers (隐私号): the telecom "AXN with extension" model, pure.

A carrier leases the network a pool of **X numbers**. Each X number carries up to 9,000
four-digit **extensions** (1000-9999). A **binding** ties one (X, extension) to one
waybill: the label prints ``X转extension`` instead of the recipient's phone, and when
someone dials it the carrier asks waybillguard where the call should go (the call-routing
decision below). The recipient's real number never leaves the vault except to the
carrier, for a call the routing rules allow.

* **X numbers** are 11-digit national numbers that libphonenumber's metadata (the
  ``phonenumbers`` package) accepts as valid in region CN and classifies as MOBILE (the
  170/171/162/165/167 segments carriers lease for privacy numbers, or any other mobile
  segment a carrier hands out) or SHARED_COST (the 95xxx enterprise service range,
  e.g. 95013xxxxxx). Landlines, toll-free (400/800) and short codes are refused.
* **Bindings** are ``active`` until released (by hand, or because the waybill no
  longer needs them) or ``expired`` (their ``expires_at`` passed). A binding made for
  a waybill that is not delivered yet lives ``undelivered_ttl`` (30 days by default);
  delivery sets its expiry to delivery + ``grace`` (15 days by default).
* **Cool-down.** An (X, extension) that carried a binding is not handed out again for
  ``cooldown`` (30 days by default): someone who kept an old label and dials it must not
  reach the next parcel's recipient. Allocation picks the slot whose cool-down ended
  longest ago (never-used slots count from when they were added).
* **Pool level.** Free capacity is the share of slots allocatable now. The pool is *low*
  when fewer than ``max(ceil(total * low_percent / 100), low_free)`` are free; the
  service raises an alert once per crossing into low (and again only after it has
  recovered), so exhaustion is reported before a label fails.

Routing (``route``) decides over facts the store read — blind indexes, never phone
numbers — so no plaintext is needed to decide, and the decision is fast enough to
benchmark on its own (``route_decisions_per_s``).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

import phonenumbers
from phonenumbers import PhoneNumberType

from waybillguard.domain.errors import FieldError
from waybillguard.domain.lifecycle import Status

__all__ = [
    "DEFAULT_COOLDOWN",
    "DEFAULT_COURIER_GRACE",
    "DEFAULT_EXTENSIONS",
    "DEFAULT_GRACE",
    "DEFAULT_LOW_FREE",
    "DEFAULT_LOW_PERCENT",
    "DEFAULT_UNDELIVERED_TTL",
    "Binding",
    "BindingState",
    "PoolLevel",
    "PoolSettings",
    "PoolStatus",
    "RouteDecision",
    "RouteEffect",
    "RouteFacts",
    "SlotFacts",
    "Target",
    "choose_slot",
    "e164",
    "extensions_for",
    "format_line",
    "level_change",
    "parse_days",
    "parse_extension",
    "parse_virtual_number",
    "route",
]

DEFAULT_COOLDOWN: Final = timedelta(days=30)
DEFAULT_GRACE: Final = timedelta(days=15)
DEFAULT_UNDELIVERED_TTL: Final = timedelta(days=30)
DEFAULT_COURIER_GRACE: Final = timedelta(minutes=120)  # the default policy's courier grace
DEFAULT_EXTENSIONS: Final = 1000
DEFAULT_LOW_PERCENT: Final = 10
DEFAULT_LOW_FREE: Final = 100

FIRST_EXTENSION: Final = 1000
LAST_EXTENSION: Final = 9999
MAX_EXTENSIONS: Final = LAST_EXTENSION - FIRST_EXTENSION + 1
MAX_DAYS: Final = 3650
LINE_SEPARATOR: Final = "转"  # "17012345678转4821": how an extension is written in Chinese

_X_TYPES: Final = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.SHARED_COST})
_ELEVEN_DIGITS: Final = re.compile(r"[0-9]{11}")
_FOUR_DIGITS: Final = re.compile(r"[0-9]{4}")
_SEPARATORS: Final = str.maketrans("", "", " -")


# -- numbers and extensions -------------------------------------------------------------
def parse_virtual_number(text: str, field: str = "virtual_number") -> str:
    """An X number as 11 national digits. Accepts spaces, hyphens and a +86 / 0086 prefix.

    Raises FieldError naming `field` and a reason (the value is never repeated)."""
    if not isinstance(text, str) or len(text) > 24:
        raise FieldError(field, "is not an 11-digit virtual number")
    digits = text.strip().translate(_SEPARATORS)
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            digits = digits[len(prefix) :]
            break
    if not _ELEVEN_DIGITS.fullmatch(digits):
        raise FieldError(field, "is not an 11-digit virtual number")
    problem = _x_problem(digits)
    if problem is not None:
        raise FieldError(field, problem)
    return digits


@functools.lru_cache(maxsize=65536)
def _x_problem(digits: str) -> str | None:
    """Why 11 digits are not an X number (None: they are). Cached: phonenumbers costs
    tens of microseconds, and every routed call names a pool number."""
    try:
        parsed = phonenumbers.parse(digits, "CN")
    except phonenumbers.NumberParseException:
        return "is not an 11-digit virtual number"
    if not phonenumbers.is_valid_number(parsed):
        return "is not a valid mainland China number"
    if phonenumbers.number_type(parsed) not in _X_TYPES:
        return "must be a mobile-segment or 95xxx service number"
    return None


def parse_extension(text: str, field: str = "extension") -> str:
    """A four-digit extension, as text (leading zeros kept)."""
    value = text.strip() if isinstance(text, str) else ""
    if not _FOUR_DIGITS.fullmatch(value):
        raise FieldError(field, "an extension is 4 digits")
    return value


def extensions_for(count: int) -> list[str]:
    """The extensions of an X number carrying `count` of them: 1000, 1001, …"""
    if not 1 <= count <= MAX_EXTENSIONS:
        raise FieldError("extensions", f"between 1 and {MAX_EXTENSIONS} per number")
    return [str(FIRST_EXTENSION + i) for i in range(count)]


def format_line(virtual_number: str, extension: str) -> str:
    """How the line is printed and dialled: ``17012345678转4821``."""
    return f"{virtual_number}{LINE_SEPARATOR}{extension}"


def e164(virtual_number: str) -> str:
    return f"+86{virtual_number}"


# -- settings -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PoolSettings:
    cooldown: timedelta = DEFAULT_COOLDOWN
    grace: timedelta = DEFAULT_GRACE
    undelivered_ttl: timedelta = DEFAULT_UNDELIVERED_TTL
    low_percent: int = DEFAULT_LOW_PERCENT
    low_free: int = DEFAULT_LOW_FREE

    def __post_init__(self) -> None:
        for name in ("cooldown", "grace", "undelivered_ttl"):
            value: timedelta = getattr(self, name)
            if not timedelta(0) <= value <= timedelta(days=MAX_DAYS):
                raise FieldError(name, f"between 0 and {MAX_DAYS} days")
        if not 0 <= self.low_percent <= 100:
            raise FieldError("low_percent", "between 0 and 100")
        if not 0 <= self.low_free <= 10**6:
            raise FieldError("low_free", "between 0 and 1000000")

    def threshold(self, total: int) -> int:
        """Below this many free slots the pool is low."""
        return max(math.ceil(total * self.low_percent / 100), self.low_free)

    def expiry_after_delivery(self, delivered_at: datetime) -> datetime:
        return delivered_at + self.grace


def parse_days(value: int, field: str) -> timedelta:
    if not 0 <= value <= MAX_DAYS:
        raise FieldError(field, f"between 0 and {MAX_DAYS} days")
    return timedelta(days=value)


# -- bindings and slots ------------------------------------------------------------------------
class BindingState(StrEnum):
    ACTIVE = "active"
    RELEASED = "released"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Binding:
    """One (X, extension) bound to one waybill."""

    id: int
    virtual_number: str
    extension: str
    tracking_number: str
    state: BindingState
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None

    @property
    def line(self) -> str:
        return format_line(self.virtual_number, self.extension)

    def live(self, now: datetime) -> bool:
        return self.state is BindingState.ACTIVE and now < self.expires_at

    def as_json(self) -> dict[str, str | int | None]:
        return {
            "binding": self.id,
            "tracking_number": self.tracking_number,
            "virtual_number": self.virtual_number,
            "extension": self.extension,
            "line": self.line,
            "state": self.state.value,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
        }


@dataclass(frozen=True, slots=True)
class SlotFacts:
    """One (X, extension) as allocation sees it."""

    id: int
    bound: bool
    free_after: datetime  # end of its cool-down (or when it was added, if never used)


def choose_slot(slots: Iterable[SlotFacts], now: datetime) -> SlotFacts | None:
    """The slot allocation takes: unbound, cool-down over, and the one whose cool-down
    ended longest ago (ties: lowest id). The store's SQL implements exactly this
    (``WHERE binding_id IS NULL AND free_after <= now ORDER BY free_after, id``)."""
    best: SlotFacts | None = None
    for slot in slots:
        if slot.bound or slot.free_after > now:
            continue
        if best is None or (slot.free_after, slot.id) < (best.free_after, best.id):
            best = slot
    return best


# -- pool level ---------------------------------------------------------------------------------
class PoolLevel(StrEnum):
    OK = "ok"
    LOW = "low"
    EXHAUSTED = "exhausted"


@dataclass(frozen=True, slots=True)
class PoolStatus:
    numbers: int
    total: int  # slots of numbers in service
    bound: int  # carrying an active binding
    cooling: int  # unbound, cool-down not over
    threshold: int

    @property
    def free(self) -> int:
        return max(0, self.total - self.bound - self.cooling)

    @property
    def level(self) -> PoolLevel:
        if self.free == 0:
            return PoolLevel.EXHAUSTED
        if self.free < self.threshold:
            return PoolLevel.LOW
        return PoolLevel.OK

    def as_json(self) -> dict[str, str | int]:
        return {
            "numbers": self.numbers,
            "total": self.total,
            "bound": self.bound,
            "cooling": self.cooling,
            "free": self.free,
            "threshold": self.threshold,
            "level": self.level.value,
        }


def level_change(alerted: bool, level: PoolLevel) -> bool | None:
    """Once per crossing: the new value of the "low alert raised" latch, or None when it
    stays as it is. True means: raise the alert now."""
    if level is PoolLevel.OK:
        return False if alerted else None
    return None if alerted else True


# -- call routing ---------------------------------------------------------------------------
class RouteEffect(StrEnum):
    ALLOW = "allow"
    REFUSE = "refuse"


class Target(StrEnum):
    RECIPIENT = "recipient"
    COURIER = "courier"


@dataclass(frozen=True, slots=True)
class RouteFacts:
    """What the decision may know about the binding dialled: states, times and blind
    indexes (keyed HMACs of E.164 numbers). No phone number."""

    state: BindingState
    expires_at: datetime
    status: Status
    # When the waybill reached delivered / returned / cancelled (None while open).
    closed_at: datetime | None
    # When the waybill last left out_for_delivery (None while out, or never out).
    out_ended_at: datetime | None
    sender_index: bytes | None
    recipient_index: bytes | None
    # The assigned courier's registered phone (None: nobody assigned, no phone
    # registered, or the courier's account is not active).
    courier_index: bytes | None
    courier_grace: timedelta = DEFAULT_COURIER_GRACE
    closed_grace: timedelta = DEFAULT_GRACE

    def courier_window(self, now: datetime) -> bool:
        """The courier's call-through window: out for delivery, plus the grace the access
        policy gives couriers after the waybill left that state."""
        if self.status is Status.OUT_FOR_DELIVERY:
            return True
        return self.out_ended_at is not None and now < self.out_ended_at + self.courier_grace


@dataclass(frozen=True, slots=True)
class RouteDecision:
    effect: RouteEffect
    rule: str
    message: str
    target: Target | None = None

    @property
    def allowed(self) -> bool:
        return self.effect is RouteEffect.ALLOW


def _refuse(rule: str, message: str) -> RouteDecision:
    return RouteDecision(RouteEffect.REFUSE, rule, message)


UNKNOWN_LINE: Final = _refuse("route.unknown_line", "空号或未绑定 / no binding on this line")
RELEASED: Final = _refuse("route.released", "绑定已解除 / the binding was released")
EXPIRED: Final = _refuse("route.expired", "绑定已过期 / the binding has expired")
NO_CALLER_ID: Final = _refuse("route.no_caller_id", "无主叫号码 / the caller's number is withheld")
COURIER_WINDOW: Final = _refuse(
    "route.courier_window", "不在派送时段 / the courier may call only while delivering"
)
NO_COURIER: Final = _refuse(
    "route.recipient_no_courier", "暂无派送中的快递员 / no courier is delivering this parcel"
)
STRANGER: Final = _refuse("route.stranger", "此号码不可接通 / this caller may not use this line")
COURIER_CALLS: Final = RouteDecision(
    RouteEffect.ALLOW, "route.courier", "快递员呼叫收件人 / courier to recipient", Target.RECIPIENT
)
RECIPIENT_CALLS_BACK: Final = RouteDecision(
    RouteEffect.ALLOW,
    "route.recipient_callback",
    "收件人回拨快递员 / recipient calls the courier back",
    Target.COURIER,
)
SENDER_CALLS: Final = RouteDecision(
    RouteEffect.ALLOW, "route.sender", "寄件人呼叫收件人 / sender to recipient", Target.RECIPIENT
)


def route(facts: RouteFacts | None, caller: bytes | None, now: datetime) -> RouteDecision:
    """Where a call to a bound line goes, or why it is refused.

    `caller` is the blind index of the calling number (None: withheld or not a valid
    mainland number). In order:

    1. no binding on the line, a released one, an expired one (state, ``expires_at``, or
       the waybill closed longer than ``closed_grace`` ago): refused;
    2. the assigned courier's registered phone → the recipient, while the courier's
       window is open (out for delivery, plus the policy's courier grace);
    3. the recipient's phone → the assigned courier (call-back of a missed delivery
       call), only while that window is open;
    4. the waybill's sender's phone → the recipient;
    5. anyone else: refused. Nobody is ever connected to the sender: the courier policy
       never grants the sender's phone, and a recipient's business with a merchant goes
       through the merchant's own channels.
    """
    if facts is None:
        return UNKNOWN_LINE
    if facts.state is not BindingState.ACTIVE:
        return RELEASED if facts.state is BindingState.RELEASED else EXPIRED
    if now >= facts.expires_at:
        return EXPIRED
    if facts.closed_at is not None and now >= facts.closed_at + facts.closed_grace:
        return EXPIRED
    if caller is None:
        return NO_CALLER_ID
    if facts.courier_index is not None and caller == facts.courier_index:
        return COURIER_CALLS if facts.courier_window(now) else COURIER_WINDOW
    if facts.recipient_index is not None and caller == facts.recipient_index:
        if facts.courier_index is not None and facts.courier_window(now):
            return RECIPIENT_CALLS_BACK
        return NO_COURIER
    if facts.sender_index is not None and caller == facts.sender_index:
        return SENDER_CALLS
    return STRANGER
