"""The PII scanner the other tests rely on must find what is there."""

from __future__ import annotations

import os

from tests.conftest import scan_bytes, scan_text

NEEDLES = {"欧阳娜娜", "13912345678", "3栋502室", "张伟", "Anne-Marie O'Brien", "0755-26543210"}


def test_finds_planted_values_in_random_bytes() -> None:
    for needle in NEEDLES:
        blob = os.urandom(50_000) + needle.encode("utf-8") + os.urandom(50_000)
        assert scan_bytes(blob, NEEDLES) == [needle]


def test_finds_values_inside_json_and_text() -> None:
    text = '{"name": "欧阳娜娜", "n": 13912345678, "addr": "科技园路12号3栋502室"}'
    assert scan_text(text, NEEDLES) == sorted(["欧阳娜娜", "13912345678", "3栋502室"])


def test_masked_values_are_not_reported() -> None:
    text = '{"name": "欧阳**", "phone": "139******78", "address": "科技园路****"}'
    assert scan_text(text, NEEDLES) == []
