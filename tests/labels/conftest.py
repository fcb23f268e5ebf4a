"""Fixtures of the label tests: a home seeded with synthetic waybills (SQLite: the
label path reads masked views only, the same on both back ends), fixed label data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import row_pii, seeded_rows
from waybillguard.domain.label import LabelData
from waybillguard.services import waybills
from waybillguard.services.app import App
from waybillguard.services.importer import import_file
from waybillguard.services.labels import CHINA_TIME
from waybillguard.services.synth import write_synth

PHONE_LINE = "17012345678转4821"
SEEDED = 24


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Seeded:
    app: App
    rows: list[dict[str, Any]]
    numbers: list[str]
    pii: set[str]


@pytest.fixture
def seeded(app: App, tmp_path: Path) -> Seeded:
    source = tmp_path / "orders.jsonl"
    write_synth(source, SEEDED, seed=4183)
    report = import_file(app, source, workers=1)
    assert report.imported == SEEDED
    rows = seeded_rows(source)
    numbers = [w["tracking_number"] for w in waybills.list_waybills(app, SEEDED)]
    pii: set[str] = set()
    for row in rows:
        pii |= row_pii(row)
    return Seeded(app, rows, numbers, pii)


def fixed_label(number: str = "WG1234567890123") -> LabelData:
    """Label data that never changes: golden images and pictures are made from it."""
    return LabelData(
        tracking_number=number,
        recipient_name="欧阳**",
        recipient_address="广东省深圳市南山区科技园路****",
        recipient_phone=PHONE_LINE,
        sender_name="林**",
        sender_phone="137******88",
        sender_address="浙江省杭州市余杭区文一西路****",
        sort_code="粤 深圳 南山",
        station="SZ-NS-01",
        category="数码",
        weight_g=1250,
        qr_token="wgq1.GOLDENgoldenGOLDENgoldenGOLDENgoldenGOLDENgoldenGOLDENgoldenGOLDENgo",
        printed_at=datetime(2025, 3, 1, 9, 30, tzinfo=CHINA_TIME),
    )
