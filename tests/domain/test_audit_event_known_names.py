"""validate_event's shortcuts for the names the vault writes itself (a set lookup instead
of the regular expression, a direct range test for plain integers) must decide exactly
as the full checks do: same events accepted, same first error, same bytes."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waybillguard.domain import audit_event as ae
from waybillguard.domain.audit_event import AuditEvent, encode_event, validate_event
from waybillguard.domain.errors import FieldError

BASE = AuditEvent(
    action="reveal",
    actor="uoo12",
    role="station_clerk",
    unit="ST0012",
    decision="allow",
    rule="quota.allowance",
    purpose="delivery",
    waybills=("WB1234567890123",),
    fields=("recipient.phone",),
    client="",
    at="2026-11-28T07:00:00.123456Z",
    detail={"records": 1, "band": "allowance", "policy": 3},
)


class _OddStr(str):
    """Equal to and hashing like a known name, but not exactly `str`."""


class _OddInt(int):
    pass


HOSTILE_NAMES: list[Any] = [
    "reveal",
    "policy",
    "records",
    "station_clerk",
    "operator",
    "Reveal",
    "reveal ",
    " reveal",
    "reveal\n",
    "reveal\u200b",
    "rеveal",  # Cyrillic e
    "ｒｅｖｅａｌ",  # full-width
    "waybill..show",
    ".reveal",
    "reveal.",
    "a" * 64,
    "a" * 65,
    "x" + ".y" * 40,
    "138 1234 5678",
    "13812345678",
    "a13812345678",
    "policy_version",
    "",
    "1abc",
    "cs-agent",
    "cs_agent",
    "a.b",
    _OddStr("reveal"),
    _OddStr("policy"),
    _OddStr("Reveal"),
    None,
    7,
    b"reveal",
]

HOSTILE_VALUES: list[Any] = [
    0,
    1,
    -1,
    10**9 - 1,
    10**9,
    -(10**9) + 1,
    -(10**9),
    13812345678,
    10**30,
    True,
    False,
    _OddInt(5),
    _OddInt(10**9),
    1.5,
    None,
    "allowance",
    "",
    "13812345678",
    "138 1234 5678",
    "１３８１２３４５６７８",  # full-width digits
    "ab\x00cd",
    "x" * 256,
    "x" * 257,
    ["a"],
]


def _outcome(event: AuditEvent) -> tuple[str, bytes | str]:
    try:
        return ("ok", encode_event(event))
    except FieldError as error:
        return ("error", str(error))
    except (TypeError, ValueError) as error:
        return (type(error).__name__, str(error))


def _full_checks(event: AuditEvent, monkeypatch: pytest.MonkeyPatch) -> tuple[str, bytes | str]:
    """The outcome with the name shortcuts switched off (regular expression for all)."""
    with monkeypatch.context() as m:
        m.setattr(ae, "_KNOWN_DOTTED", frozenset())
        m.setattr(ae, "_KNOWN_ROLES", frozenset())
        return _outcome(event)


def test_every_known_name_passes_its_pattern() -> None:
    for name in ae._KNOWN_DOTTED:
        assert type(name) is str and len(name) <= ae.MAX_NAME and ae._NAME.fullmatch(name)
    for name in ae._KNOWN_ROLES:
        assert type(name) is str and len(name) <= ae.MAX_NAME and ae._ROLE.fullmatch(name)


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=repr)
def test_names_decide_as_the_full_checks(name: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for event in (
        dataclasses.replace(BASE, action=name),
        dataclasses.replace(BASE, role=name),
        dataclasses.replace(BASE, detail={"records": 1, name: 2}),
        dataclasses.replace(BASE, detail={name: "allowance", "policy": 3}),
    ):
        try:
            fast = _outcome(event)
        except Exception as error:  # e.g. an unorderable detail key
            fast = (type(error).__name__, str(error))
        try:
            full = _full_checks(event, monkeypatch)
        except Exception as error:
            full = (type(error).__name__, str(error))
        assert fast == full


@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=repr)
def test_detail_values_decide_as_before(value: Any) -> None:
    event = dataclasses.replace(BASE, detail={"records": 1, "policy": value})
    kind, result = _outcome(event)
    if isinstance(value, bool) or not isinstance(value, str | int):
        assert (kind, result) == ("error", "detail.policy: must be text or an integer")
    elif isinstance(value, int):
        if -ae.MAX_DETAIL_INT < value < ae.MAX_DETAIL_INT:
            assert kind == "ok"
        else:
            assert (kind, result) == (
                "error",
                "detail.policy: integer has too many digits (phone number?)",
            )
    else:
        try:
            ae.check_free_text("detail.policy", value)
        except FieldError as error:
            assert (kind, result) == ("error", str(error))
        else:
            assert kind == "ok"


_text = st.one_of(
    st.sampled_from([n for n in HOSTILE_NAMES if isinstance(n, str)]),
    st.text(max_size=20),
    st.from_regex(re.compile(r"[a-z][a-z0-9_.]{0,10}"), fullmatch=True),
)
_value = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.booleans(),
    st.text(max_size=30),
    st.sampled_from(HOSTILE_VALUES[:-1]),
)


@settings(max_examples=400, deadline=None)
@given(
    action=_text,
    role=_text,
    detail=st.dictionaries(_text, _value, max_size=5),
)
def test_random_events_decide_and_encode_as_the_full_checks(
    action: str, role: str, detail: dict[str, Any]
) -> None:
    event = dataclasses.replace(BASE, action=action, role=role, detail=detail)
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert _outcome(event) == _full_checks(event, monkeypatch)


def test_reveal_event_is_valid_and_its_bytes_are_canonical() -> None:
    validate_event(BASE)
    assert encode_event(BASE) == (
        b'{"action":"reveal","actor":"uoo12","at":"2026-11-28T07:00:00.123456Z","client":"",'
        b'"decision":"allow","detail":{"band":"allowance","policy":3,"records":1},'
        b'"fields":["recipient.phone"],"purpose":"delivery","role":"station_clerk",'
        b'"rule":"quota.allowance","subject_refs":[],"unit":"ST0012","v":1,'
        b'"waybills":["WB1234567890123"]}'
    )
