"""The label model and layout (pure domain): zones, geometry, masking checks, fitting."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import datetime
from typing import Any

import pytest

from tests.labels.conftest import PHONE_LINE, fixed_label
from waybillguard.adapters.divisions import load_divisions
from waybillguard.domain.address import AddressResolver, division_prefix, mask_address
from waybillguard.domain.label import (
    Field,
    LabelSize,
    Rect,
    TextBox,
    UnmaskedLabelData,
    Zone,
    big_sort_code,
    extension_text,
    field_texts,
    fit_text,
    layout,
    parse_size,
    phone_number_text,
    short_place_name,
)
from waybillguard.domain.person_name import mask_name, parse_name
from waybillguard.domain.phone import mask_phone, parse_phone
from waybillguard.services.synth import synth_rows

SIZES = list(LabelSize)


def em(ch: str) -> float:
    """Advances of the label font: CJK one em, ASCII about 0.6."""
    return 0.6 if ch.isascii() else 1.0


# -- layout geometry ---------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_zones_follow_the_standard_and_tile_the_label(size: LabelSize) -> None:
    shape = layout(size)
    width, height = (float(v) for v in size.value.split("x"))
    assert (shape.width, shape.height) == (width, height)
    assert [zone for zone, _ in shape.zones] == list(Zone)
    assert [z.value for z in Zone] == [
        "码号区", "目的地信息区", "收件人信息区", "寄件人信息区", "内件信息区", "签收区",
    ]  # fmt: skip
    top = 0.0
    for _, rect in shape.zones:
        assert rect.x == 0 and rect.w == width and rect.y == top and rect.h > 8
        top = rect.bottom
    assert top == height


@pytest.mark.parametrize("size", SIZES)
def test_every_element_sits_in_its_zone_and_nothing_overlaps(size: LabelSize) -> None:
    shape = layout(size)
    label = Rect(0, 0, shape.width, shape.height)
    for box in shape.texts:
        assert shape.zone(box.zone).contains(box.rect), box
        assert box.size * 1.0 <= box.rect.h + 1e-6, box  # one line fits its box
    assert shape.zone(Zone.CODES).contains(shape.barcode.rect)
    assert shape.zone(Zone.SIGNATURE).contains(shape.qr.rect)
    others = [b.rect for b in shape.texts] + [shape.barcode.rect, shape.qr.rect]
    for a, b in itertools.combinations(others, 2):
        assert not a.overlaps(b), (a, b)
    for frame in shape.frames:
        assert label.contains(frame.rect)
    for rule in shape.rules:
        assert 0 <= rule.x1 <= rule.x2 <= shape.width and 0 <= rule.y1 <= shape.height


@pytest.mark.parametrize("size", SIZES)
def test_each_field_is_shown_once(size: LabelSize) -> None:
    fields = [box.field for box in layout(size).field_boxes if box.field is not None]
    assert sorted(fields) == sorted(Field)


@pytest.mark.parametrize("size", SIZES)
def test_codes_have_room_for_their_quiet_zones(size: LabelSize) -> None:
    shape = layout(size)
    # Code 128 of a tracking number: 145 modules + 10 quiet modules on each side.
    assert (145 + 20) * shape.barcode.module_mm <= shape.barcode.rect.w
    assert shape.barcode.rect.h >= 12  # tall enough for a hand scanner
    # The QR code of a 73-character token is version 5: 37 modules + 4 quiet each side.
    assert (37 + 8) * shape.qr.module_mm <= min(shape.qr.rect.w, shape.qr.rect.h)


def test_sizes_parse_and_refuse_others() -> None:
    assert parse_size("76x130") is LabelSize.L76X130
    assert layout() is layout("100x180")
    with pytest.raises(ValueError, match="unknown label size"):
        parse_size("100x210")


# -- the data: masked or refused ---------------------------------------------------------


def test_fixed_label_is_accepted_and_shows_masked_texts() -> None:
    texts = field_texts(fixed_label())
    assert texts[Field.RECIPIENT_PHONE] == "17012345678"
    assert texts[Field.RECIPIENT_EXTENSION] == "转4821"
    assert texts[Field.CONTENTS] == "内件：数码　重量：1.25kg"
    assert texts[Field.PRINTED_AT] == "打印时间：2025-03-01 09:30"
    assert texts[Field.STATION] == "目的站 SZ-NS-01"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("recipient_name", "欧阳娜娜"),  # nothing hidden
        ("recipient_name", "欧阳娜*"),  # three characters shown
        ("sender_name", "**"),  # nothing left to tell who it is
        ("sender_phone", "13812345678"),  # a real mobile
        ("sender_phone", "138****5678"),  # the common mask hides only 4 digits
        ("sender_phone", "0755-12345678"),
        ("recipient_address", "广东省深圳市南山区科技园路12号3栋502室"),
        ("recipient_address", "广东省深圳市南山区科技园路三号楼****"),
        ("recipient_address", "广东省深圳市南山区科技园路2单元****"),
        ("recipient_address", "广东省深圳市南山区科技园路"),  # no mask at all
        ("sender_address", "浙江省杭州市余杭区文一西路**** 13812345678"),
        ("station", "ST 138 1234 5678"),  # a phone number spaced out
        ("category", "数码13812345678"),
        ("sort_code", "粤^XZ^XA"),  # printer commands
        ("category", "数码\n"),
        ("recipient_phone", "13812345678"),  # a number without extension
        ("recipient_phone", "138******34转12"),  # a masked real number is no line
        ("recipient_phone", "17012345678转48219"),  # five-digit extension
        ("qr_token", "WG1234567890123"),  # the tracking number is no token
        ("qr_token", "wgq1.x1234567890123yyyyyyyyyyy"),  # nor carries its digits
        ("tracking_number", "WG12345"),
        ("weight_g", 0),
    ],
)
def test_unmasked_data_is_refused(field: str, value: object) -> None:
    with pytest.raises(UnmaskedLabelData) as refused:
        changes: dict[str, Any] = {field: value}
        dataclasses.replace(fixed_label(), **changes)
    assert refused.value.field == field
    assert str(value) not in str(refused.value)  # the refusal never repeats the value


@pytest.mark.parametrize(
    "line", ["17012345678转4821", "17012345678-1", "0755-12345678转123", "170 1234 5678 转 99"]
)
def test_virtual_number_lines_are_accepted(line: str) -> None:
    data = dataclasses.replace(fixed_label(), recipient_phone=line)
    assert extension_text(data.recipient_phone).startswith("转")
    assert phone_number_text(data.recipient_phone).replace(" ", "").isascii()


def test_masks_of_synthetic_rows_are_accepted() -> None:
    """Everything the product's masking produces is accepted (no false refusals)."""
    resolver = AddressResolver(load_divisions())
    base = fixed_label()
    for row in synth_rows(3000, seed=41833):
        for role in ("sender", "recipient"):
            party = row[role]
            name = mask_name(parse_name(party["name"], "name"))
            phone = mask_phone(parse_phone(party["phone"], "phone"))
            address = mask_address(resolver.resolve(party["address"], "address"))
            dataclasses.replace(base, sender_name=name, sender_phone=phone, sender_address=address)


def test_every_division_name_passes_the_room_check() -> None:
    """No county-level division name looks like a house or room part (鼓楼区 …)."""
    table = load_divisions()
    base = fixed_label()
    for district in table.districts():
        province, city, leaf = table.path(district.adcode)
        masked = division_prefix(province.name, city.name, leaf.name) + "科技园路****"
        dataclasses.replace(base, recipient_address=masked)
        dataclasses.replace(base, sort_code=big_sort_code(district.adcode, city.name, leaf.name))


# -- sort codes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("adcode", "city", "district", "code"),
    [
        ("440305", "深圳市", "南山区", "粤 深圳 南山"),
        ("110105", "北京市", "朝阳区", "京 朝阳"),
        ("441900", "东莞市", "东莞市", "粤 东莞"),
        ("469025", "海南省", "白沙黎族自治县", "琼 白沙"),
        ("310115", "上海市", "浦东新区", "沪 浦东"),
    ],
)
def test_big_sort_code(adcode: str, city: str, district: str, code: str) -> None:
    assert big_sort_code(adcode, city, district) == code


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("黔东南苗族侗族自治州", "黔东南"),
        ("酉阳土家族苗族自治县", "酉阳"),
        ("鄂温克族自治旗", "鄂温克"),
        ("东区", "东区"),
        ("伊犁哈萨克自治州", "伊犁"),
    ],
)
def test_short_place_names(name: str, short: str) -> None:
    assert short_place_name(name) == short


# -- fitting text ------------------------------------------------------------------------


def box(w: float, h: float, size: float, lines: int = 1, min_size: float = 0) -> TextBox:
    return TextBox(Zone.RECIPIENT, Rect(0, 0, w, h), size, max_lines=lines, min_size=min_size)


def test_short_text_stays_on_one_line_at_full_size() -> None:
    fitted = fit_text("广东省深圳市", box(60, 6, 5), em)
    assert fitted == type(fitted)(5, ("广东省深圳市",))


def test_long_text_wraps_by_character_then_shrinks() -> None:
    text = "新疆维吾尔自治区伊犁哈萨克自治州察布查尔锡伯自治县工业路****"
    two_lines = fit_text(text, box(80, 12, 5, lines=2), em)
    assert two_lines.size == 5 and len(two_lines.lines) == 2
    assert "".join(two_lines.lines) == text
    assert all(sum(map(em, line)) * 5 <= 80 + 1e-6 for line in two_lines.lines)
    one_line = fit_text(text, box(80, 6, 5, lines=1, min_size=2), em)
    assert one_line.size < 5 and one_line.lines == (text,)


def test_words_are_not_split_and_overflow_is_cut_with_an_ellipsis() -> None:
    fitted = fit_text("目的站 ST-000123", box(30, 12, 5, lines=2), em)
    assert fitted.lines == ("目的站", "ST-000123")
    cut = fit_text("一二三四五六七八九十" * 3, box(20, 6, 5, lines=1, min_size=4.5), em)
    assert len(cut.lines) == 1 and cut.lines[0].endswith("…")
    assert sum(map(em, cut.lines[0])) * cut.size <= 20 + 1e-6


def test_label_data_is_immutable() -> None:
    data = fixed_label()
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.recipient_phone = "13812345678"  # type: ignore[misc]
    assert isinstance(data.printed_at, datetime) and data.recipient_phone == PHONE_LINE
