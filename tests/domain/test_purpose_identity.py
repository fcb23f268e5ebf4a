"""Purposes, usernames and unit codes: the identifiers written into every audit event.

None of them may smuggle personal data (a phone or identity number) or anything that is
not a plain identifier into the audit log, and every refusal is a FieldError naming the
field, never echoing the value.
"""

from __future__ import annotations

import re
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waybillguard.domain.errors import FieldError
from waybillguard.domain.identity import (
    Principal,
    Role,
    parse_grade,
    parse_role,
    parse_unit_code,
    parse_unit_kind,
    parse_username,
    requires_totp,
)
from waybillguard.domain.purpose import Purpose, PurposeKind, parse_purpose

INJECTIONS: Final = (
    "1;DROP TABLE waybills",
    "1' OR '1'='1",
    'x"; --',
    "T1 UNION SELECT * FROM users",
    "$(rm -rf /)",
    "`id`",
    "<script>alert(1)</script>",
    "T1\nrule=allow",
    "T1\r\nX-Injected: 1",
    "T1\x00",
    "../../etc/passwd",
    "T1%0aX",
    "{{7*7}}",
)


def refused(parse: object, text: str, field_name: str) -> FieldError:
    assert callable(parse)
    with pytest.raises(FieldError) as info:
        parse(text)
    error = info.value
    assert error.field == field_name
    return error


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (parse_purpose, "ticket:13812345678"),
        (parse_purpose, "legal:110101199003077777"),
        (parse_username, "u13812345678"),
        (parse_unit_code, "13812345678"),
    ],
)
def test_refusals_never_echo_the_value(parse: object, text: str) -> None:
    assert callable(parse)
    with pytest.raises(FieldError) as info:
        parse(text)
    assert not re.search(r"[0-9]{5,}", str(info.value))


# -- purposes -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "kind", "ref"),
    [
        ("delivery", PurposeKind.DELIVERY, ""),
        ("return", PurposeKind.RETURN, ""),
        ("claim", PurposeKind.CLAIM, ""),
        ("  delivery  ", PurposeKind.DELIVERY, ""),
        ("DELIVERY", PurposeKind.DELIVERY, ""),
        ("ticket:T-1", PurposeKind.TICKET, "T-1"),
        ("ticket:T123", PurposeKind.TICKET, "T123"),
        ("Ticket:t_9.2", PurposeKind.TICKET, "t_9.2"),
        ("ticket: T1 ", PurposeKind.TICKET, "T1"),
        ("ticket :T1", PurposeKind.TICKET, "T1"),
        ("legal:REF/2026", PurposeKind.LEGAL, "REF/2026"),
        ("legal:2026/PSB-0042", PurposeKind.LEGAL, "2026/PSB-0042"),
        ("ticket:123456", PurposeKind.TICKET, "123456"),  # six digits: a ticket number
        ("legal:CASE/2026/0017", PurposeKind.LEGAL, "CASE/2026/0017"),
        ("ticket:1", PurposeKind.TICKET, "1"),
        ("ticket:" + "A" * 48, PurposeKind.TICKET, "A" * 48),
    ],
)
def test_parse_purpose_accepts(text: str, kind: PurposeKind, ref: str) -> None:
    purpose = parse_purpose(text)
    assert purpose == Purpose(kind, ref)
    assert str(purpose) == (f"{kind.value}:{ref}" if ref else kind.value)
    # What str() writes into the audit log parses back to the same purpose.
    assert parse_purpose(str(purpose)) == purpose


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "curiosity",
        "deliver",
        "deliveries",
        "ticketT1",  # no separator
        "legal",  # no reference
        "ticket",
        "ticket:",
        "ticket:   ",
        "legal:",
        ":T1",
        "delivery:1",  # delivery takes no reference
        "return:R1",
        "claim:C1",
        "delivery:",
        "ticket:-T1",  # references start with a letter or digit
        "ticket:/T1",
        "ticket:.T1",
        "ticket:T 1",
        "ticket:T1:T2",
        "ticket:" + "A" * 49,  # 49 characters
        "ticket:Ｔ1",  # fullwidth letter
        "ticket:T１",  # fullwidth digit
        "ticket:工单1",
        "ticket:T1\u200b",  # zero-width space
        "délivery",
        "dElİvery",
    ],
)
def test_parse_purpose_refuses(text: str) -> None:
    refused(parse_purpose, text, "purpose")


@pytest.mark.parametrize(
    "ref",
    [
        "1234567",  # seven digits: the audit log's limit
        "12345678",
        "123456789",  # nine digits
        "138-1234-5678",  # a mobile number behind separators
        "138.1234.5678",
        "138/1234/5678",
        "13812345678",  # a mobile number
        "T13812345678",
        "110101199003077777",  # an identity-card number
        "11010119900307777X",
        "REF/2026/123456789",
        "A-000000000-B",
    ],
)
@pytest.mark.parametrize("kind", ["ticket", "legal"])
def test_parse_purpose_refuses_long_digit_runs(kind: str, ref: str) -> None:
    error = refused(parse_purpose, f"{kind}:{ref}", "purpose")
    assert "phone or identity number" in error.reason


@pytest.mark.parametrize("injection", INJECTIONS)
@pytest.mark.parametrize("kind", ["ticket", "legal"])
def test_parse_purpose_refuses_injection(kind: str, injection: str) -> None:
    refused(parse_purpose, f"{kind}:{injection}", "purpose")


def test_parse_purpose_names_the_given_field() -> None:
    with pytest.raises(FieldError) as info:
        parse_purpose("ticket:1;DROP TABLE", "--purpose")
    assert info.value.field == "--purpose"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_parse_purpose_accepts_only_plain_references(text: str) -> None:
    try:
        purpose = parse_purpose(text)
    except FieldError as error:
        assert error.field == "purpose"
        return
    assert purpose.kind in PurposeKind
    if purpose.kind in (PurposeKind.TICKET, PurposeKind.LEGAL):
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-/]{0,47}", purpose.ref)
        assert not re.search(r"[0-9]{9,}", purpose.ref)
    else:
        assert purpose.ref == ""
    assert parse_purpose(str(purpose)) == purpose


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-/]{0,47}", fullmatch=True))
def test_every_plain_reference_without_a_long_digit_run_is_accepted(ref: str) -> None:
    for kind in ("ticket", "legal"):
        if re.search(r"[0-9]{9,}", ref):
            refused(parse_purpose, f"{kind}:{ref}", "purpose")
        else:
            assert parse_purpose(f"{kind}:{ref}").ref == ref


# -- usernames ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alice", "alice"),
        ("ab", "ab"),
        ("  bob  ", "bob"),
        ("bob\n", "bob"),
        ("zhang.san", "zhang.san"),
        ("courier-01", "courier-01"),
        ("cs_agent_7", "cs_agent_7"),
        ("a1234", "a1234"),  # four digits in a row
        ("a1234b5678", "a1234b5678"),
        ("a" + "b" * 31, "a" + "b" * 31),  # 32 characters
    ],
)
def test_parse_username_accepts(text: str, expected: str) -> None:
    assert parse_username(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a",  # too short
        "a" + "b" * 32,  # 33 characters
        "Alice",  # uppercase is refused, not folded
        "1alice",  # must start with a letter
        "_alice",
        ".alice",
        "-alice",
        "al ice",
        "alice@example",
        "ali\tce",
        "zhang三",
        "jöhn",
        "ａdmin",  # fullwidth a
        "admın",  # dotless i
        "admin\u200b",  # zero-width space
        "admin\u0000",
        "admin\u202e",  # right-to-left override
        "a12345",  # five digits in a row
        "u13812345678",  # a phone number
        "id110101199003077777",
        "a１２３４５",  # fullwidth digits
        "admin'--",
        "admin' OR '1'='1",
        "robert'); DROP TABLE users;--",
        "x;DROP TABLE users",
        "admin/*",
        "$(whoami)",
    ],
)
def test_parse_username_refuses(text: str) -> None:
    refused(parse_username, text, "username")


def test_parse_username_digit_run_message() -> None:
    with pytest.raises(FieldError) as info:
        parse_username("courier12345")
    assert "five or more digits" in info.value.reason


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_accepted_usernames_are_plain_ascii(text: str) -> None:
    try:
        name = parse_username(text)
    except FieldError as error:
        assert error.field == "username"
        return
    assert re.fullmatch(r"[a-z][a-z0-9._-]{1,31}", name)
    assert not re.search(r"[0-9]{5,}", name)
    assert parse_username(name) == name


# -- unit codes ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("st01", "ST01"),  # unit codes are upper-cased
        ("  sh-pudong-01  ", "SH-PUDONG-01"),
        ("Hq", "HQ"),
        ("hq", "HQ"),
        ("R_EAST", "R_EAST"),
        ("0A", "0A"),  # may start with a digit
        ("ST1234", "ST1234"),  # four digits in a row
        ("ST-12-345", "ST-12-345"),
        ("a" * 32, "A" * 32),
    ],
)
def test_parse_unit_code_accepts(text: str, expected: str) -> None:
    assert parse_unit_code(text) == expected
    assert parse_unit_code(expected) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "A",  # too short
        "A" * 33,
        "-ST01",
        "_ST01",
        "ST 01",
        "ST.01",
        "ST/01",
        "ST12345",  # five digits in a row
        "st12345",
        "13812345678",
        "ST１２３４５",  # fullwidth digits
        "网点01",
        "ÄB01",
        "ST01\u200b",
        "ST01'; DROP TABLE units;--",
        "ST01' OR '1'='1",
        "ST01;--",
        "ST01\nHQ",
    ],
)
def test_parse_unit_code_refuses(text: str) -> None:
    refused(parse_unit_code, text, "unit")


@pytest.mark.parametrize(
    "text",
    [
        "ſt-01",  # LATIN SMALL LETTER LONG S: "ſ".upper() == "S"
        "straße",  # "ß".upper() == "SS"
        "ﬁ01",  # LATIN SMALL LIGATURE FI: upper() == "FI"
        "statıon",  # LATIN SMALL LETTER DOTLESS I: upper() == "I"
    ],
)
def test_parse_unit_code_refuses_non_ascii_that_uppercases_to_ascii(text: str) -> None:
    # Validation must judge what was typed, not what str.upper() makes of it: otherwise
    # look-alike input silently becomes another unit's code ("ſt-01" → "ST-01").
    refused(parse_unit_code, text, "unit")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_accepted_unit_codes_are_plain_ascii(text: str) -> None:
    try:
        code = parse_unit_code(text)
    except FieldError as error:
        assert error.field == "unit"
        return
    assert re.fullmatch(r"[A-Z0-9][A-Z0-9_-]{1,31}", code)
    assert not re.search(r"[0-9]{5,}", code)
    assert parse_unit_code(code) == code


# -- roles, kinds, grades -----------------------------------------------------------------
def test_parse_role_and_kind_and_grade() -> None:
    assert parse_role(" cs_agent ") is Role.CS_AGENT
    assert {parse_role(r.value) for r in Role} == set(Role)
    for bad in ("root", "Courier", "", "courier;DROP"):
        refused(parse_role, bad, "role")
    assert parse_unit_kind("station").value == "station"
    refused(parse_unit_kind, "franchise", "kind")
    assert [parse_grade(g) for g in (0, 9)] == [0, 9]
    for grade in (-1, 10):
        with pytest.raises(FieldError) as info:
            parse_grade(grade)
        assert info.value.field == "grade"


def test_totp_is_required_above_courier() -> None:
    assert {r for r in Role if not requires_totp(r)} == {Role.COURIER, Role.PARTNER}


def test_principal_within_its_unit_path() -> None:
    p = Principal(1, "mgr-a", Role.STATION_MANAGER, "ST01", 2, unit_path=("R-EAST", "HQ"))
    assert p.within("ST01") and p.within("R-EAST") and p.within("HQ")
    assert not p.within("ST02")
