"""Audit events: what one entry of the tamper-evident audit log says, and its canonical bytes.

An event records who did what to which waybills, which fields, why, what was decided and
by which rule. It never holds personal data: waybills appear as tracking numbers, fields
by name (``recipient.phone``), data subjects by blind-index reference (hex), so shredding
a waybill never needs to touch the log.

``encode_event`` gives the canonical encoding that is the leaf data of the Merkle tree:
JSON with keys sorted (at every level), no insignificant whitespace, UTF-8 (non-ASCII
characters unescaped), integers only, plus a format version ``"v": 1``. It equals
``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, so anyone
can recompute a leaf with a stock JSON library.

``validate_event`` is the last guard against personal data reaching the log: it refuses
digit runs that look like phone or identity numbers, unknown field names, malformed
tracking numbers and blind-index references, over-long text and control characters.
Its messages name the attribute and the reason, never the value.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

import orjson

from waybillguard.domain.errors import FieldError
from waybillguard.domain.fields import PII_FIELDS
from waybillguard.domain.identity import Role
from waybillguard.domain.tracking import parse_tracking_number

__all__ = [
    "DECISIONS",
    "FORMAT_VERSION",
    "KNOWN_ACTIONS",
    "AuditEvent",
    "decode_event",
    "encode_event",
    "format_timestamp",
    "validate_event",
]

FORMAT_VERSION: Final = 1
DECISIONS: Final = frozenset({"allow", "deny", "step_up", "approval_required", "locked", "n/a"})
# The actions the vault emits today; others are accepted if they have the same shape.
KNOWN_ACTIONS: Final = (
    "import",
    "search",
    "waybill.show",
    "waybill.list",
    "reveal",
    "export.request",
    "export.approve",
    "export.download",
    "login",
    "user.change",
    "policy.change",
    "key.rotate",
    "shred",
    "event",
)

MAX_TEXT: Final = 128  # actor, unit, rule, client
MAX_LONG_TEXT: Final = 256  # purpose, detail values
MAX_NAME: Final = 64  # action, role, detail keys
MAX_WAYBILLS: Final = 10_000
MAX_SUBJECT_REFS: Final = 1_000
MAX_DETAIL: Final = 32
MAX_DETAIL_INT: Final = 10**9  # |value| below this: counts and ids, never a phone number

_NAME = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")
_ROLE = re.compile(r"[a-z][a-z0-9_]*")
_HEX_REF = re.compile(r"(?:[0-9a-f]{32}|[0-9a-f]{64})")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z")
# A mainland mobile number, possibly written with spaces or hyphens (138 1234 5678).
# \d matches every Unicode decimal digit, so full-width digits are caught as well.
_MOBILE = re.compile(r"1[3-9]\d(?:[ \-]?\d){8}")
_DIGIT_RUN = re.compile(r"\d{7,}")
_SUSPECT = re.compile(r"\d{7}|1[3-9]\d(?:[ \-]?\d){8}")  # either of the two above
_PII_FIELD_SET: Final = frozenset(PII_FIELDS)
# Whole lists in one match for the common, clean event (items joined by ","; the
# caller also checks the comma count, so no item can hide a comma). Same rules as the
# per-item checks below: a canonical tracking number (what parse_tracking_number
# accepts and prints back unchanged), a lowercase hex blind index.
_WAYBILL_LIST = re.compile(r"[A-Z]{2}[0-9]{13}(?:,[A-Z]{2}[0-9]{13})*")
_REF_LIST = re.compile(r"(?:[0-9a-f]{32}|[0-9a-f]{64})(?:,(?:[0-9a-f]{32}|[0-9a-f]{64}))*")

# Names the vault itself writes on every event (actions, roles, the reveal's detail
# keys). Each passes the same check as any other name (enforced just below), so a set
# lookup stands in for the regular expression on the common event; any other value,
# and any value that is not exactly `str`, still goes through the expression.
_KNOWN_DOTTED: Final = frozenset(KNOWN_ACTIONS) | frozenset(
    {
        "records",
        "band",
        "reason_ref",
        "approval",
        "review_request",
        "approval_request",
        "policy",
    }
)
_KNOWN_ROLES: Final = frozenset(r.value for r in Role) | frozenset({"operator", "system"})
if not all(len(n) <= MAX_NAME and _NAME.fullmatch(n) for n in _KNOWN_DOTTED) or not all(
    len(n) <= MAX_NAME and _ROLE.fullmatch(n) for n in _KNOWN_ROLES
):  # not an assert: it must hold under `python -O` too
    raise RuntimeError("a known audit name fails its own pattern")

_KEYS: Final = frozenset(
    {
        "v",
        "action",
        "actor",
        "role",
        "unit",
        "decision",
        "rule",
        "purpose",
        "waybills",
        "fields",
        "subject_refs",
        "client",
        "at",
        "detail",
    }
)
_TEXT_KEYS: Final = (
    "action",
    "actor",
    "role",
    "unit",
    "decision",
    "rule",
    "purpose",
    "client",
    "at",
)
_LIST_KEYS: Final = ("waybills", "fields", "subject_refs")


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audited action. Lists become tuples and ``detail`` a read-only mapping."""

    action: str
    actor: str
    role: str
    unit: str
    decision: str
    rule: str
    purpose: str
    waybills: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    subject_refs: tuple[str, ...] = ()
    client: str = ""
    at: str = ""
    detail: Mapping[str, str | int] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        for name in _LIST_KEYS:
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        if not isinstance(self.detail, MappingProxyType):
            object.__setattr__(self, "detail", MappingProxyType(dict(self.detail)))


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds and ``Z``: the form ``AuditEvent.at`` expects."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _as_dict(event: AuditEvent) -> dict[str, Any]:
    # Keys in sorted order, so orjson needs no sorting pass except inside `detail`
    # (whose values are text or integers: one level deep).
    detail = event.detail
    return {
        "action": event.action,
        "actor": event.actor,
        "at": event.at,
        "client": event.client,
        "decision": event.decision,
        "detail": dict(sorted(detail.items())) if len(detail) > 1 else dict(detail),
        "fields": event.fields,
        "purpose": event.purpose,
        "role": event.role,
        "rule": event.rule,
        "subject_refs": event.subject_refs,
        "unit": event.unit,
        "v": FORMAT_VERSION,
        "waybills": event.waybills,
    }


def encode_event(event: AuditEvent, *, validate: bool = True) -> bytes:
    """The canonical bytes of ``event`` (the Merkle leaf data).

    Validates first (``validate_event``) unless ``validate=False``; raises ValueError on
    an event that cannot be encoded canonically.
    """
    if validate:
        validate_event(event)
    try:
        return orjson.dumps(_as_dict(event))
    except TypeError as error:  # orjson.JSONEncodeError: non-str keys, surrogates, big ints
        raise ValueError("event cannot be encoded canonically") from error


def decode_event(data: bytes) -> AuditEvent:
    """Parse the bytes of ``encode_event``; raises ValueError on any other shape.

    Decoding does not run ``validate_event`` and does not insist on canonical bytes: the
    log's hashes already bind the exact stored bytes.
    """
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise ValueError("audit event is not valid JSON") from error
    if not isinstance(obj, dict):
        raise ValueError("audit event is not a JSON object")
    if obj.keys() != _KEYS:
        raise ValueError("audit event has missing or unknown keys")
    if obj["v"] != FORMAT_VERSION or isinstance(obj["v"], bool):
        raise ValueError("unsupported audit event version")
    for key in _TEXT_KEYS:
        if not isinstance(obj[key], str):
            raise ValueError(f"audit event {key} is not text")
    for key in _LIST_KEYS:
        items = obj[key]
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise ValueError(f"audit event {key} is not a list of text")
    detail = obj["detail"]
    if not isinstance(detail, dict) or not all(
        isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
        for value in detail.values()
    ):
        raise ValueError("audit event detail holds values other than text and integers")
    return AuditEvent(
        action=obj["action"],
        actor=obj["actor"],
        role=obj["role"],
        unit=obj["unit"],
        decision=obj["decision"],
        rule=obj["rule"],
        purpose=obj["purpose"],
        waybills=tuple(obj["waybills"]),
        fields=tuple(obj["fields"]),
        subject_refs=tuple(obj["subject_refs"]),
        client=obj["client"],
        at=obj["at"],
        detail=detail,
    )


def _check_text(name: str, value: object, limit: int, *, required: bool = False) -> None:
    """Free text: bounded, printable, and no digit run that could be a phone or id number."""
    if not isinstance(value, str):
        raise FieldError(name, "must be text")
    if required and not value:
        raise FieldError(name, "is required")
    if len(value) > limit:
        raise FieldError(name, f"is longer than {limit} characters")
    if not value.isprintable():
        raise FieldError(name, "contains control or invisible characters")
    if _SUSPECT.search(value):
        if _MOBILE.search(value):
            raise FieldError(name, "looks like a phone number")
        raise FieldError(name, "contains a run of 7 or more digits (phone or id number?)")


_LETTER_NIBBLES: Final = str.maketrans("0123456789abcdef", "abcdefghijklmnop")


def letter_digest(data: bytes | str, length: int = 16) -> str:
    """A SHA-256 reference written with the letters a-p for the hex nibbles 0-f.

    Hashes go into the log as references (of a policy text, of a written reason). Plain
    hex can hold a run of seven digits, which the log refuses as a possible phone
    number; letters never can, and no value can be smuggled through an exemption.
    To compare: ``hashlib.sha256(x).hexdigest()[:length]`` mapped 0→a … f→p.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:length].translate(_LETTER_NIBBLES)


def check_free_text(name: str, value: str, limit: int = MAX_LONG_TEXT) -> None:
    """The same guard the log applies to its free text, for callers that want to refuse
    a value (a written reason, a note) before they keep it anywhere."""
    _check_text(name, value, limit)


def _check_name(
    name: str,
    value: object,
    pattern: re.Pattern[str],
    what: str,
    known: frozenset[str] = frozenset(),
) -> None:
    if type(value) is str and value in known:  # checked against `pattern` at import
        return
    if not isinstance(value, str) or len(value) > MAX_NAME or not pattern.fullmatch(value):
        raise FieldError(name, f"must be {what}")


def _check_list(name: str, value: object, limit: int) -> Sequence[object]:
    if not isinstance(value, tuple | list):
        raise FieldError(name, "must be a sequence")
    if len(value) > limit:
        raise FieldError(name, f"has more than {limit} entries")
    return value


def _all_match(pattern: re.Pattern[str], items: Sequence[object]) -> bool:
    """Every item is text matching `pattern`'s item rule (one match for the list)."""
    try:
        joined = ",".join(items)  # type: ignore[arg-type]  # TypeError: not all text
    except TypeError:
        return False
    return joined.count(",") == len(items) - 1 and pattern.fullmatch(joined) is not None


def _known_fields(names: Sequence[object]) -> bool:
    """Every name is a known personal field, none repeated."""
    try:
        unique = set(names)
    except TypeError:  # an unhashable item: not a field name
        return False
    return len(unique) == len(names) and unique <= _PII_FIELD_SET


def validate_event(event: AuditEvent) -> None:
    """Raise ``FieldError`` (a ValueError) if ``event`` is malformed or could carry PII.

    Messages say which attribute failed and why (e.g. ``purpose: looks like a phone
    number``); they never repeat the value.
    """
    _check_name(
        "action",
        event.action,
        _NAME,
        "a dotted lowercase name such as waybill.show",
        _KNOWN_DOTTED,
    )
    _check_name("role", event.role, _ROLE, "a lowercase role name such as cs_agent", _KNOWN_ROLES)
    if not isinstance(event.decision, str) or event.decision not in DECISIONS:
        raise FieldError("decision", "must be one of " + ", ".join(sorted(DECISIONS)))
    actor, unit, rule, purpose, client = (
        event.actor,
        event.unit,
        event.rule,
        event.purpose,
        event.client,
    )
    try:
        # Fast path for the common, clean event: one scan over the free text joined by a
        # character that cannot extend a digit run or a phone-number pattern.
        joined = "|".join((actor, unit, rule, purpose, client))
        clean = (
            bool(actor)
            and joined.isprintable()
            and _SUSPECT.search(joined) is None
            and max(len(actor), len(unit), len(rule), len(client)) <= MAX_TEXT
            and len(purpose) <= MAX_LONG_TEXT
        )
    except TypeError:
        clean = False
    if not clean:  # find the culprit and say what is wrong with it
        _check_text("actor", actor, MAX_TEXT, required=True)
        _check_text("unit", unit, MAX_TEXT)
        _check_text("rule", rule, MAX_TEXT)
        _check_text("purpose", purpose, MAX_LONG_TEXT)
        _check_text("client", client, MAX_TEXT)

    waybills = _check_list("waybills", event.waybills, MAX_WAYBILLS)
    if waybills and not _all_match(_WAYBILL_LIST, waybills):
        for position, number in enumerate(waybills):
            parsed = parse_tracking_number(number) if isinstance(number, str) else None
            if parsed is None or str(parsed) != number:
                raise FieldError(f"waybills[{position}]", "is not a tracking number")
    fields = _check_list("fields", event.fields, len(PII_FIELDS))
    if not _known_fields(fields):
        seen: set[object] = set()
        for position, name in enumerate(fields):
            if not isinstance(name, str) or name not in _PII_FIELD_SET:
                raise FieldError(f"fields[{position}]", "is not a known personal field name")
            if name in seen:
                raise FieldError(f"fields[{position}]", "is repeated")
            seen.add(name)
    refs = _check_list("subject_refs", event.subject_refs, MAX_SUBJECT_REFS)
    if refs and not _all_match(_REF_LIST, refs):
        for position, ref in enumerate(refs):
            if not isinstance(ref, str) or not _HEX_REF.fullmatch(ref):
                raise FieldError(f"subject_refs[{position}]", "is not a lowercase hex blind index")

    if not isinstance(event.at, str):
        raise FieldError("at", "must be text")
    if event.at:
        if not _TIMESTAMP.fullmatch(event.at):
            raise FieldError("at", "must be an RFC 3339 UTC timestamp ending in Z")
        try:
            datetime.fromisoformat(event.at[:19])  # calendar check: no 2024-02-30
        except ValueError:
            raise FieldError("at", "is not a real date and time") from None

    if type(event.detail) is not MappingProxyType and not isinstance(event.detail, Mapping):
        raise FieldError("detail", "must be a mapping")
    if len(event.detail) > MAX_DETAIL:
        raise FieldError("detail", f"has more than {MAX_DETAIL} entries")
    for position, (key, value) in enumerate(event.detail.items()):
        if type(key) is not str or key not in _KNOWN_DOTTED:
            _check_name(f"detail key #{position}", key, _NAME, "a dotted lowercase name")
        if type(value) is int:  # the common case, exactly the range test below
            if not -MAX_DETAIL_INT < value < MAX_DETAIL_INT:
                raise FieldError(f"detail.{key}", "integer has too many digits (phone number?)")
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise FieldError(f"detail.{key}", "must be text or an integer")
        if isinstance(value, int):
            if not -MAX_DETAIL_INT < value < MAX_DETAIL_INT:
                raise FieldError(f"detail.{key}", "integer has too many digits (phone number?)")
        else:
            _check_text(f"detail.{key}", value, MAX_LONG_TEXT)
