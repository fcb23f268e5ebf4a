"""Audit events: canonical encoding round trip, and refusal of anything that looks like PII."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waybillguard.domain.audit_event import (
    DECISIONS,
    AuditEvent,
    decode_event,
    encode_event,
    format_timestamp,
    validate_event,
)
from waybillguard.domain.errors import FieldError
from waybillguard.domain.fields import PII_FIELDS

BASE = AuditEvent(
    action="reveal",
    actor="agent-042",
    role="cs_agent",
    unit="SZ-NS",
    decision="allow",
    rule="cs.reveal.ticket",
    purpose="ticket:T123",
    waybills=("WG1234567890123",),
    fields=("recipient.phone",),
    subject_refs=("0123456789abcdef" * 2,),
    client="10.1.2.3 dev-7f3a",
    at="2024-05-01T12:00:00.123456Z",
    detail={"count": 1, "ticket": "T123"},
)


def canonical_json(obj: Any) -> bytes:
    """The documented encoding, with the standard library."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_encoding_is_canonical_json() -> None:
    data = encode_event(BASE)
    obj = json.loads(data)
    assert data == canonical_json(obj)
    assert obj["v"] == 1
    assert obj["waybills"] == ["WG1234567890123"]
    assert obj["detail"] == {"count": 1, "ticket": "T123"}
    assert b" " not in data.replace(b"10.1.2.3 dev", b"")
    assert decode_event(data) == BASE


def test_non_ascii_is_utf8_not_escaped() -> None:
    event = dataclasses.replace(BASE, unit="深圳南山", purpose="客户投诉:T9")
    data = encode_event(event)
    assert "深圳南山".encode() in data and b"\\u" not in data
    assert decode_event(data) == event


def test_lists_and_detail_are_frozen() -> None:
    event = AuditEvent(
        "waybill.list",
        "u",
        "admin",
        "",
        "allow",
        "",
        "",
        waybills=["WG1234567890123"],  # type: ignore[arg-type]
        detail={"rows": 2},
    )
    assert event.waybills == ("WG1234567890123",)
    with pytest.raises(TypeError):
        event.detail["rows"] = 3  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.actor = "other"  # type: ignore[misc]


def test_format_timestamp() -> None:
    moment = datetime(2024, 5, 1, 20, 0, 0, 5, tzinfo=timezone(timedelta(hours=8)))
    text = format_timestamp(moment)
    assert text == "2024-05-01T12:00:00.000005Z"
    validate_event(dataclasses.replace(BASE, at=text))
    with pytest.raises(ValueError):
        format_timestamp(datetime(2024, 5, 1))  # naive
    validate_event(dataclasses.replace(BASE, at=format_timestamp(datetime.now(UTC))))


# --- round trip of arbitrary valid events -------------------------------------------------

safe_text = st.text(
    alphabet=st.characters(
        whitelist_categories=("Lu", "Ll", "Lo", "Nd", "Pd", "Po", "Zs"),
        max_codepoint=0x9FFF,
    ),
    max_size=40,
).filter(lambda s: s.isprintable() and not re.search(r"\d[\d \-]{5,}", s))
names = st.from_regex(r"[a-z][a-z0-9_]{0,10}(\.[a-z][a-z0-9_]{0,10}){0,2}", fullmatch=True)
waybill = st.from_regex(r"[A-Z]{2}[0-9]{13}", fullmatch=True)
hex_ref = st.binary(min_size=16, max_size=16).map(bytes.hex)
timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
).map(format_timestamp)


@st.composite
def events(draw: st.DrawFn) -> AuditEvent:
    return AuditEvent(
        action=draw(names),
        actor=draw(safe_text.filter(bool)),
        role=draw(st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)),
        unit=draw(safe_text),
        decision=draw(st.sampled_from(sorted(DECISIONS))),
        rule=draw(safe_text),
        purpose=draw(safe_text),
        waybills=tuple(draw(st.lists(waybill, max_size=5))),
        fields=tuple(draw(st.lists(st.sampled_from(PII_FIELDS), unique=True))),
        subject_refs=tuple(draw(st.lists(hex_ref, max_size=3))),
        client=draw(safe_text),
        at=draw(st.one_of(st.just(""), timestamps)),
        detail=draw(
            st.dictionaries(
                names,
                st.one_of(st.integers(-(10**9) + 1, 10**9 - 1), safe_text),
                max_size=5,
            )
        ),
    )


@given(events())
@settings(max_examples=200, deadline=None)
def test_round_trip(event: AuditEvent) -> None:
    validate_event(event)
    data = encode_event(event)
    assert data == canonical_json(json.loads(data))
    decoded = decode_event(data)
    assert decoded == event
    assert encode_event(decoded) == data


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b'{"v":1}',
        encode_event(BASE).replace(b'"v":1', b'"v":2'),
        encode_event(BASE).replace(b'"v":1', b'"v":true'),
        encode_event(BASE).replace(b'"actor":"agent-042"', b'"actor":42'),
        encode_event(BASE).replace(b'"fields":["recipient.phone"]', b'"fields":"x"'),
        encode_event(BASE).replace(b'"count":1', b'"count":1.5'),
        encode_event(BASE).replace(b'"count":1', b'"count":true'),
        encode_event(BASE).replace(b'"v":1', b'"v":1,"extra":1'),
        b"\xff\xfe",
    ],
)
def test_decode_rejects_malformed(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_event(data)


# --- PII refusal ----------------------------------------------------------------------------

PHONES = [
    "13912345678",
    "139 1234 5678",
    "139-1234-5678",
    "+86 13912345678",
    "１３９１２３４５６７８",  # full-width digits
    "0755-26543210",
    "075526543210",
    "26543210",
    "110101199003071234",  # identity card number
]


def assert_refused(event: AuditEvent, secret: str, attribute: str) -> None:
    with pytest.raises(FieldError) as info:
        validate_event(event)
    message = str(info.value)
    assert info.value.field.startswith(attribute)
    assert secret not in message
    # No 4-digit piece of the value leaks either.
    digits = "".join(ch for ch in secret if ch.isdigit())
    for i in range(len(digits) - 3):
        assert digits[i : i + 4] not in message
    with pytest.raises(ValueError):
        encode_event(event)


@pytest.mark.parametrize("phone", PHONES)
@pytest.mark.parametrize("attribute", ["actor", "unit", "rule", "purpose", "client"])
def test_phone_like_text_is_refused(phone: str, attribute: str) -> None:
    for value in (phone, f"ticket about {phone} please", f"x{phone}y"):
        change: dict[str, Any] = {attribute: value}
        assert_refused(dataclasses.replace(BASE, **change), phone, attribute)


@pytest.mark.parametrize("phone", PHONES)
def test_phone_like_detail_is_refused(phone: str) -> None:
    assert_refused(dataclasses.replace(BASE, detail={"note": phone}), phone, "detail.note")


@pytest.mark.parametrize("number", [13912345678, 75526543210, -13912345678, 10**9])
def test_big_integers_in_detail_are_refused(number: int) -> None:
    assert_refused(dataclasses.replace(BASE, detail={"n": number}), str(abs(number)), "detail.n")


def test_values_in_place_of_field_names_are_refused() -> None:
    for value in ["欧阳娜娜", "13912345678", "科技园路12号3栋502室", "recipient.phone_number"]:
        event = dataclasses.replace(BASE, fields=("recipient.name", value))
        with pytest.raises(FieldError) as info:
            validate_event(event)
        assert info.value.field == "fields[1]"
        assert value not in str(info.value)
    with pytest.raises(FieldError):
        validate_event(dataclasses.replace(BASE, fields=("sender.name", "sender.name")))
    for name in PII_FIELDS:
        validate_event(dataclasses.replace(BASE, fields=(name,)))


def test_malformed_waybills_and_refs_are_refused() -> None:
    for bad in ["13912345678", "wg1234567890123", "WG123", "WG12345678901234", " WG1234567890123"]:
        with pytest.raises(FieldError) as info:
            validate_event(dataclasses.replace(BASE, waybills=("WG1234567890123", bad)))
        assert info.value.field == "waybills[1]"
        assert bad.strip() not in str(info.value)
    for bad in ["13912345678", "AB" * 16, "ab" * 15, "zz" * 16, "ab" * 20]:
        with pytest.raises(FieldError) as info:
            validate_event(dataclasses.replace(BASE, subject_refs=(bad,)))
        assert info.value.field == "subject_refs[0]"
        assert bad not in str(info.value)
    validate_event(dataclasses.replace(BASE, subject_refs=("ab" * 32,)))


def test_whole_list_checks_refuse_what_the_item_checks_refuse() -> None:
    """Lists are checked in one match when clean; nothing may slip through the join."""
    good = "WG1234567890123"
    for bad in [
        f"{good},WG1234567890124",  # two numbers in one item
        f"{good}\n",
        "WG１２３４５６７８９０１２３",  # full-width digits
        "",
        5,
    ]:
        with pytest.raises(FieldError) as info:
            validate_event(dataclasses.replace(BASE, waybills=(good, bad, good)))  # type: ignore[arg-type]
        assert info.value.field == "waybills[1]"
    for bad_ref in ["ab" * 16 + "," + "cd" * 16, "ab" * 16 + "\n", "", None]:
        with pytest.raises(FieldError) as info:
            validate_event(dataclasses.replace(BASE, subject_refs=("ab" * 32, bad_ref)))  # type: ignore[arg-type]
        assert info.value.field == "subject_refs[1]"
    with pytest.raises(FieldError) as info:
        validate_event(dataclasses.replace(BASE, fields=("recipient.phone", ["x"])))  # type: ignore[arg-type]
    assert info.value.field == "fields[1]"
    many = dataclasses.replace(
        BASE,
        waybills=tuple(f"WG{n:013d}" for n in range(50)),
        subject_refs=("ab" * 16, "cd" * 32, "ef" * 16),
        fields=tuple(PII_FIELDS),
    )
    validate_event(many)


@pytest.mark.parametrize(
    ("change", "attribute"),
    [
        ({"actor": "a" * 129}, "actor"),
        ({"purpose": "p" * 257}, "purpose"),
        ({"actor": ""}, "actor"),
        ({"purpose": "line\nbreak"}, "purpose"),
        ({"unit": "tab\there"}, "unit"),
        ({"client": "zero\u200bwidth"}, "client"),
        ({"rule": "bidi\u202eflip"}, "rule"),
        ({"rule": "nul\x00"}, "rule"),
        ({"action": "Reveal"}, "action"),
        ({"action": "reveal; drop"}, "action"),
        ({"role": "CS Agent"}, "role"),
        ({"decision": "maybe"}, "decision"),
        ({"at": "2024-05-01 12:00:00"}, "at"),
        ({"at": "2024-05-01T12:00:00+08:00"}, "at"),
        ({"at": "2024-02-30T12:00:00Z"}, "at"),
        ({"detail": {"Bad Key": 1}}, "detail key"),
        ({"detail": {"flag": True}}, "detail.flag"),
        ({"detail": {"ratio": 1.5}}, "detail.ratio"),
        ({"detail": {"note": "x" * 257}}, "detail.note"),
        ({"detail": {f"k{i}": i for i in range(33)}}, "detail"),
        ({"waybills": ("WG1234567890123",) * 10_001}, "waybills"),
    ],
)
def test_malformed_attributes_are_refused(change: dict[str, Any], attribute: str) -> None:
    with pytest.raises(FieldError) as info:
        validate_event(dataclasses.replace(BASE, **change))
    assert info.value.field.startswith(attribute)


def test_ordinary_values_pass() -> None:
    changes: list[dict[str, Any]] = [
        {"client": "2001:db8::1"},
        {"client": "192.168.100.200"},
        {"purpose": "delivery"},
        {"purpose": ""},
        {"rule": "", "decision": "n/a", "role": "system", "actor": "scheduler"},
        {"detail": {"rows": 999_999_999, "batch.id": "b-2024-05-01"}},
        {"at": ""},
        {"at": "2024-05-01T12:00:00Z"},
        {"unit": "深圳南山"},
    ]
    for change in changes:
        validate_event(dataclasses.replace(BASE, **change))


def test_encode_without_validation_still_encodes() -> None:
    event = dataclasses.replace(BASE, decision="maybe")
    assert decode_event(encode_event(event, validate=False)) == event
    with pytest.raises(ValueError):
        encode_event(dataclasses.replace(BASE, purpose="\ud800"), validate=False)
