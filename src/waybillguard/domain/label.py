"""Shipping labels (快递电子运单): the data printed on one, and its layout, as data.

Pure: no fonts, no files, no I/O. The renderers in ``adapters/labels`` draw a
:class:`LabelLayout` filled with a :class:`LabelData`; all three formats (PDF, PNG,
ZPL) read the same rectangles, so they show the same label.

Zones follow GB/T 41833-2022 《快递电子运单》: 码号区 (tracking number and its
Code 128), 目的地信息区 (big sorting code, destination station), 收件人信息区,
寄件人信息区, 内件信息区 (contents) and 签收区 (signature; here also the courier's QR
code, since scanning it is how the parcel is delivered). Sizes: 100x180 mm (the
default, most carriers), 76x130 mm one-ply, 100x150 mm. Coordinates are millimetres
from the label's top-left corner, y downwards.

:class:`LabelData` refuses, at construction, anything that does not look masked
(fail closed): a label carries masked names and addresses, the sender's masked phone
and, for the recipient, only a virtual number with extension (隐私号).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache
from itertools import accumulate
from typing import Final, Literal

from waybillguard.domain.tracking import parse_tracking_number


class LabelSize(StrEnum):
    L100X180 = "100x180"
    L76X130 = "76x130"
    L100X150 = "100x150"


DEFAULT_SIZE: Final = LabelSize.L100X180


class Zone(StrEnum):
    """The zones of GB/T 41833-2022, top to bottom."""

    CODES = "码号区"
    DESTINATION = "目的地信息区"
    RECIPIENT = "收件人信息区"
    SENDER = "寄件人信息区"
    CONTENTS = "内件信息区"
    SIGNATURE = "签收区"


class Field(StrEnum):
    """Texts a label shows that come from :class:`LabelData` (see :func:`field_texts`)."""

    TRACKING_NUMBER = "tracking_number"
    SORT_CODE = "sort_code"
    STATION = "station"
    RECIPIENT_NAME = "recipient_name"
    RECIPIENT_PHONE = "recipient_phone"  # the virtual number …
    RECIPIENT_EXTENSION = "recipient_extension"  # … and its extension, "转4821"
    RECIPIENT_ADDRESS = "recipient_address"
    SENDER_NAME = "sender_name"
    SENDER_PHONE = "sender_phone"
    SENDER_ADDRESS = "sender_address"
    CONTENTS = "contents"
    PRINTED_AT = "printed_at"


Align = Literal["left", "center", "right"]

# Font metrics the layout assumes (the renderers' CJK font, WenQuanYi Zen Hei, has
# ascent 0.8 em and descent 0.2 em): a line of text of size s takes LINE_HEIGHT * s,
# its baseline ASCENT * s below the line's top.
ASCENT: Final = 0.8
LINE_HEIGHT: Final = 1.15
ELLIPSIS: Final = "…"


@dataclass(frozen=True, slots=True)
class Rect:
    """A rectangle in millimetres, (x, y) its top-left corner."""

    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    def contains(self, other: Rect, tolerance: float = 1e-6) -> bool:
        return (
            other.x >= self.x - tolerance
            and other.y >= self.y - tolerance
            and other.right <= self.right + tolerance
            and other.bottom <= self.bottom + tolerance
        )

    def overlaps(self, other: Rect) -> bool:
        return (
            self.x < other.right
            and other.x < self.right
            and self.y < other.bottom
            and other.y < self.bottom
        )


@dataclass(frozen=True, slots=True)
class TextBox:
    """A text: the value of ``field`` from :func:`field_texts`, or the fixed ``text``.

    Drawn at ``size`` mm (em height); wrapped onto at most ``max_lines`` lines and, if it
    still does not fit, shrunk step by step down to ``min_size`` (see :func:`fit_text`).
    """

    zone: Zone
    rect: Rect
    size: float
    field: Field | None = None
    text: str = ""
    align: Align = "left"
    max_lines: int = 1
    min_size: float = 0.0
    bold: bool = False

    @property
    def smallest(self) -> float:
        return self.min_size or self.size


@dataclass(frozen=True, slots=True)
class BarcodeBox:
    """Code 128 of the tracking number, bars as tall as ``rect``, centred in it with
    its quiet zones; ``module_mm`` is the nominal narrow-bar width."""

    rect: Rect
    module_mm: float


@dataclass(frozen=True, slots=True)
class QrBox:
    """The courier's QR code, centred in ``rect`` (which includes the 4-module quiet
    zone); ``module_mm`` is the nominal module size, smaller if the symbol is larger."""

    rect: Rect
    module_mm: float


@dataclass(frozen=True, slots=True)
class Rule:
    """A straight line (horizontal or vertical) ``width`` mm thick."""

    x1: float
    y1: float
    x2: float
    y2: float
    width: float = 0.4


@dataclass(frozen=True, slots=True)
class Frame:
    """A rectangle outline ``width`` mm thick, drawn inside ``rect``."""

    rect: Rect
    width: float = 0.4


@dataclass(frozen=True, slots=True)
class LabelLayout:
    size: LabelSize
    width: float
    height: float
    zones: tuple[tuple[Zone, Rect], ...]
    texts: tuple[TextBox, ...]
    barcode: BarcodeBox
    qr: QrBox
    rules: tuple[Rule, ...]
    frames: tuple[Frame, ...]

    def zone(self, zone: Zone) -> Rect:
        return dict(self.zones)[zone]

    @property
    def static_texts(self) -> tuple[TextBox, ...]:
        return tuple(t for t in self.texts if t.field is None)

    @property
    def field_boxes(self) -> tuple[TextBox, ...]:
        return tuple(t for t in self.texts if t.field is not None)


# -- the data ----------------------------------------------------------------------------


class UnmaskedLabelData(ValueError):
    """Label data that does not look masked. Names the field, never the value."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"label refused: {field}: {reason}")
        self.field = field
        self.reason = reason


# The recipient's phone line: a virtual number (mobile-shaped or a landline with area
# code) and an extension of 1-4 digits, separated by 转, '-', ',' or '#'.
_PHONE_LINE_RE: Final = re.compile(
    r"(1[3-9][0-9]{9}|0[1-9][0-9]{1,2}-?[0-9]{7,8})(?:转|-|,|#)[0-9]{1,4}"
)
# A masked phone: at least six '*', digits, and at most one '-'.
_MASKED_PHONE_RE: Final = re.compile(r"[0-9]{0,4}-?[0-9]{0,3}\*{6,}[0-9]{0,2}")
# Runs of digits with the separators people put inside phone numbers.
_DIGIT_RUN_RE: Final = re.compile(r"[0-9０-９](?:[\s\-－—.·()（）]*[0-9０-９])*")
# Chinese numerals leading into a house, building, unit or room part: 五零二室, 三号楼.
_ROOM_RE: Final = re.compile(
    r"[一二三四五六七八九十百千零〇两壹贰叁肆伍陆柒捌玖拾]+[号栋幢室楼层座户]"
    r"|单元|[号栋幢室户]"
)
_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9._~-]{16,128}")
# ZPL and PDF control characters are not text; '^' and '~' start ZPL commands.
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029^~\\]")
MAX_DIGIT_RUN: Final = 6
MAX_TEXT_CHARS: Final = 64
MASK_CHAR: Final = "*"


def _digit_runs(text: str) -> list[int]:
    return [sum(ch.isdigit() for ch in m.group()) for m in _DIGIT_RUN_RE.finditer(text)]


def _check_text(field: str, text: str, *, max_run: int = MAX_DIGIT_RUN) -> None:
    if not isinstance(text, str):
        raise UnmaskedLabelData(field, "not text")
    if len(text) > MAX_TEXT_CHARS:
        raise UnmaskedLabelData(field, f"longer than {MAX_TEXT_CHARS} characters")
    if _CONTROL_RE.search(text):
        raise UnmaskedLabelData(field, "contains control or printer-command characters")
    if any(run > max_run for run in _digit_runs(text)):
        raise UnmaskedLabelData(field, "contains a run of digits that could be a phone number")


def _check_name(field: str, text: str) -> None:
    _check_text(field, text, max_run=0)
    visible = text.rstrip(MASK_CHAR)
    if len(visible) == len(text):
        raise UnmaskedLabelData(field, "a name on a label must hide at least one character")
    if MASK_CHAR in visible or not 1 <= len(visible) <= 2:
        raise UnmaskedLabelData(field, "a masked name shows at most its first two characters")


def _check_masked_phone(field: str, text: str) -> None:
    _check_text(field, text)
    if not _MASKED_PHONE_RE.fullmatch(text):
        raise UnmaskedLabelData(field, "a phone on a label must hide at least six digits")
    if sum(ch.isdigit() for ch in text) > 6:
        raise UnmaskedLabelData(field, "a masked phone shows at most six digits")


def _check_address(field: str, text: str) -> None:
    _check_text(field, text, max_run=0)
    if MASK_CHAR not in text:
        raise UnmaskedLabelData(field, "an address on a label must be masked")
    if _ROOM_RE.search(text.replace(MASK_CHAR, "")):
        raise UnmaskedLabelData(field, "an address on a label shows no house, unit or room")


def check_phone_line(text: str) -> str:
    """The recipient's phone line: a virtual number with extension, nothing else."""
    if not isinstance(text, str) or len(text) > 32:
        raise UnmaskedLabelData("recipient_phone", "not a virtual number with extension")
    if not _PHONE_LINE_RE.fullmatch(text.replace(" ", "")):
        raise UnmaskedLabelData(
            "recipient_phone", "must be a virtual number with extension (隐私号, e.g. 170…转1234)"
        )
    return text


@dataclass(frozen=True, slots=True)
class LabelData:
    """Everything one label shows. Built only from masked views, a virtual number line
    and a delivery token; construction fails (:class:`UnmaskedLabelData`) on anything
    that looks unmasked."""

    tracking_number: str
    recipient_name: str
    recipient_address: str
    recipient_phone: str  # the virtual number with extension, never the real number
    sender_name: str
    sender_phone: str  # masked: at least six digits hidden
    sender_address: str
    sort_code: str  # big sorting code (大头笔), from routing fields
    station: str  # destination station code, or "" when not yet covered
    category: str
    weight_g: int
    qr_token: str
    printed_at: datetime

    def __post_init__(self) -> None:
        if parse_tracking_number(self.tracking_number) != _exact(self.tracking_number):
            raise UnmaskedLabelData("tracking_number", "not a tracking number")
        _check_name("recipient_name", self.recipient_name)
        _check_name("sender_name", self.sender_name)
        _check_address("recipient_address", self.recipient_address)
        _check_address("sender_address", self.sender_address)
        check_phone_line(self.recipient_phone)
        _check_masked_phone("sender_phone", self.sender_phone)
        for name in ("sort_code", "station", "category"):
            _check_text(name, getattr(self, name))
        if not isinstance(self.weight_g, int) or not 0 < self.weight_g <= 1_000_000:
            raise UnmaskedLabelData("weight_g", "not a weight in grams")
        token = self.qr_token
        if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
            raise UnmaskedLabelData("qr_token", "not an opaque token")
        if self.tracking_number in token or self.tracking_number[2:] in token:
            raise UnmaskedLabelData("qr_token", "must not carry the tracking number")
        if not isinstance(self.printed_at, datetime):
            raise UnmaskedLabelData("printed_at", "not a time")


def _exact(number: str) -> object:
    parsed = parse_tracking_number(number)
    return parsed if parsed is not None and str(parsed) == number else object()


def format_weight(grams: int) -> str:
    """ "0.47kg", "12.3kg": kilograms as carriers print them."""
    kg = grams / 1000
    return f"{kg:.2f}kg" if kg < 10 else f"{kg:.1f}kg"


_LINE_PARTS: Final = re.compile(r"(.*)(?:转|-|,|#)([0-9]{1,4})")


def phone_line_texts(phone_line: str) -> tuple[str, str]:
    """The virtual number and the extension of a phone line, as every label shows
    them: "17012345678-4821" -> ("17012345678", "转4821"); a line without an extension
    is shown whole, with none."""
    match = _LINE_PARTS.fullmatch(phone_line.replace(" ", ""))
    return (match.group(1), "转" + match.group(2)) if match else (phone_line, "")


def phone_number_text(phone_line: str) -> str:
    """The virtual number of a phone line: "17012345678转4821" -> "17012345678"."""
    return phone_line_texts(phone_line)[0]


def extension_text(phone_line: str) -> str:
    """The extension, as every label shows it: "17012345678-4821" -> "转4821"."""
    return phone_line_texts(phone_line)[1]


def station_text(station: str) -> str:
    return f"目的站 {station}" if station else "目的站 待分配"


def contents_text(category: str, weight_g: int) -> str:
    return f"内件：{category}　重量：{format_weight(weight_g)}"


def printed_text(printed_at: datetime) -> str:
    return f"打印时间：{printed_at:%Y-%m-%d %H:%M}"


def field_texts(data: LabelData) -> dict[Field, str]:
    """The text each :class:`Field` shows on the label."""
    number, extension = phone_line_texts(data.recipient_phone)
    return {
        Field.TRACKING_NUMBER: data.tracking_number,
        Field.SORT_CODE: data.sort_code,
        Field.STATION: station_text(data.station),
        Field.RECIPIENT_NAME: data.recipient_name,
        Field.RECIPIENT_PHONE: number,
        Field.RECIPIENT_EXTENSION: extension,
        Field.RECIPIENT_ADDRESS: data.recipient_address,
        Field.SENDER_NAME: data.sender_name,
        Field.SENDER_PHONE: data.sender_phone,
        Field.SENDER_ADDRESS: data.sender_address,
        Field.CONTENTS: contents_text(data.category, data.weight_g),
        Field.PRINTED_AT: printed_text(data.printed_at),
    }


# -- big sorting code --------------------------------------------------------------------

# Province-level abbreviations (简称) by the first two digits of the division code.
PROVINCE_ABBREVIATIONS: Final[Mapping[str, str]] = {
    "11": "京", "12": "津", "13": "冀", "14": "晋", "15": "蒙", "21": "辽", "22": "吉",
    "23": "黑", "31": "沪", "32": "苏", "33": "浙", "34": "皖", "35": "闽", "36": "赣",
    "37": "鲁", "41": "豫", "42": "鄂", "43": "湘", "44": "粤", "45": "桂", "46": "琼",
    "50": "渝", "51": "川", "52": "黔", "53": "滇", "54": "藏", "61": "陕", "62": "甘",
    "63": "青", "64": "宁", "65": "新", "71": "台", "81": "港", "82": "澳",
}  # fmt: skip

_PLACE_SUFFIXES: Final = (
    "特别行政区", "自治州", "自治县", "自治旗", "特区", "新区", "林区", "地区",
    "区", "县", "市", "盟", "旗", "州",
)  # fmt: skip
# The 55 minority nationalities as they appear inside names of autonomous units.
_ETHNIC_GROUPS: Final = (
    "蒙古", "回", "藏", "维吾尔", "苗", "彝", "壮", "布依", "朝鲜", "满", "侗", "瑶",
    "白", "土家", "哈尼", "哈萨克", "傣", "黎", "傈僳", "佤", "畲", "拉祜", "水",
    "东乡", "纳西", "景颇", "柯尔克孜", "土", "达斡尔", "仫佬", "羌", "布朗", "撒拉",
    "毛南", "仡佬", "锡伯", "阿昌", "普米", "塔吉克", "怒", "乌孜别克", "俄罗斯",
    "鄂温克", "德昂", "保安", "裕固", "京", "塔塔尔", "独龙", "鄂伦春", "赫哲",
    "门巴", "珞巴", "基诺", "高山",
)  # fmt: skip


def _ethnic_cut(stem: str) -> str:
    """Place part of an autonomous unit's name: 白沙黎族 -> 白沙, 鄂温克族 -> 鄂温克."""
    best: int | None = None
    for group in _ETHNIC_GROUPS:
        for form in (group + "族", group) if len(group) > 1 else (group + "族",):
            at = stem.find(form, 2)
            if at != -1 and (best is None or at < best):
                best = at
    if best is not None:
        return stem[:best]
    return stem[:-1] if stem.endswith("族") and len(stem) > 2 else stem


def short_place_name(name: str) -> str:
    """深圳市 -> 深圳, 南山区 -> 南山, 浦东新区 -> 浦东, 白沙黎族自治县 -> 白沙;
    names that would shrink below two characters stay whole (东区, 城区)."""
    for suffix in _PLACE_SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            stem = name[: -len(suffix)]
            return _ethnic_cut(stem) if "族" in stem or suffix.startswith("自治") else stem
    return name


def big_sort_code(destination_adcode: str, city: str, district: str) -> str:
    """The big sorting code (大头笔) from the destination's routing fields:
    "粤 深圳 南山" (province abbreviation, city, district); "京 朝阳" for a municipality;
    "粤 东莞" for a city without districts. Only division names: no personal data."""
    if not (len(destination_adcode) == 6 and destination_adcode.isascii()):
        raise ValueError("destination adcode must be six digits")
    parts = [PROVINCE_ABBREVIATIONS.get(destination_adcode[:2], "")]
    short_city, short_district = short_place_name(city), short_place_name(district)
    municipality = destination_adcode[:2] in ("11", "12", "31", "50")
    under_province = destination_adcode[2:4] == "90"  # counties governed by the province
    if city and short_city not in parts and not municipality and not under_province:
        parts.append(short_city)
    if district and district != city:
        parts.append(short_district)
    return " ".join(p for p in parts if p)


# -- fitting text into a box -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FittedText:
    size: float  # mm
    lines: tuple[str, ...]


SHRINK_STEP: Final = 0.9


def _word(ch: str) -> bool:
    """Part of a Latin word or number, which a line break must not split."""
    return ch.isascii() and (ch.isalnum() or ch in "-./:_")


def _wrap(text: str, max_em: float, advance: Callable[[str], float]) -> list[str]:
    """Greedy wrap by character (Chinese breaks anywhere); a run of Latin letters or
    digits ("ST-001", "0.47kg") is not split unless it is longer than a line."""
    widths = list(accumulate(map(advance, text)))  # widths[i]: width of text[: i + 1]
    n = len(text)
    lines: list[str] = []
    start, base = 0, 0.0
    while start < n:
        end = max(start + 1, bisect_right(widths, base + max_em + 1e-9, start))
        if end < n and _word(text[end]) and _word(text[end - 1]):
            k = end - 1
            while k > start and _word(text[k - 1]):
                k -= 1
            if k > start:
                end = k  # move the whole word to the next line
        lines.append(text[start:end].rstrip())
        start = end
        while start < n and text[start] == " ":
            start += 1
        base = widths[start - 1] if start else 0.0
    return lines


def fit_text(text: str, box: TextBox, advance: Callable[[str], float]) -> FittedText:
    """Lines and size for ``text`` in ``box``: the largest size from ``box.size`` down
    to ``box.smallest`` (by factors of SHRINK_STEP) at which it wraps onto at most
    ``box.max_lines`` lines that fit the box; at the smallest size, the last line is
    cut with "…". ``advance(ch)`` is a character's advance width in em."""
    size = box.size
    while True:
        max_em = box.rect.w / size
        lines_fit = max(1, min(box.max_lines, int((box.rect.h + 1e-6) / (size * LINE_HEIGHT))))
        if sum(map(advance, text)) <= max_em:
            return FittedText(size, (text,))
        lines = _wrap(text, max_em, advance)
        if len(lines) <= lines_fit:
            return FittedText(size, tuple(lines))
        smaller = size * SHRINK_STEP
        if smaller < box.smallest - 1e-6:
            kept = lines[:lines_fit]
            last = kept[-1]
            room = max_em - advance(ELLIPSIS)
            while last and sum(map(advance, last)) > room:
                last = last[:-1]
            kept[-1] = last + ELLIPSIS
            return FittedText(size, tuple(kept))
        size = smaller


def baselines(box: TextBox, fitted: FittedText) -> list[float]:
    """Baseline (mm from the label's top) of each fitted line: a one-line box centres
    its line vertically, a multi-line box starts at its top."""
    size = fitted.size
    if box.max_lines == 1:
        top = box.rect.y + (box.rect.h - size) / 2
    else:
        top = box.rect.y + (LINE_HEIGHT - 1) * size / 2
    return [top + ASCENT * size + i * LINE_HEIGHT * size for i in range(len(fitted.lines))]


# -- the layouts -------------------------------------------------------------------------

_LABELS_FOOTER: Final = "个人信息已按GB/T 41833-2022隐藏，收件人电话为隐私号"
_PHONE_HINT: Final = "隐私号：拨通后按语音提示输入分机号"
_QR_CAPTION: Final = "快递员扫码派件"


def _t(
    zone: Zone,
    x: float,
    y: float,
    w: float,
    h: float,
    size: float,
    *,
    field: Field | None = None,
    text: str = "",
    align: Align = "left",
    max_lines: int = 1,
    min_size: float = 0.0,
    bold: bool = False,
) -> TextBox:
    return TextBox(zone, Rect(x, y, w, h), size, field, text, align, max_lines, min_size, bold)


# fmt: off
def _build(size: LabelSize) -> LabelLayout:
    z, f = Zone, Field
    if size is LabelSize.L100X180:
        w, h = 100.0, 180.0
        b = (30.0, 56.0, 94.0, 120.0, 136.0)
        texts = [
            _t(z.CODES, 5, 20.5, 90, 7, 5.5, field=f.TRACKING_NUMBER, align="center"),
            _t(z.DESTINATION, 4, 31.5, 92, 15, 12.5, field=f.SORT_CODE, align="center",
               min_size=7, bold=True),
            _t(z.DESTINATION, 4, 47.5, 92, 7, 5, field=f.STATION, align="center"),
            _t(z.RECIPIENT, 3, 58, 9, 9, 7, text="收", align="center", bold=True),
            _t(z.RECIPIENT, 15, 57.5, 24, 7, 5.5, field=f.RECIPIENT_NAME, bold=True,
               min_size=4),
            _t(z.RECIPIENT, 39, 57.5, 38, 7, 5.5, field=f.RECIPIENT_PHONE, bold=True,
               min_size=4),
            _t(z.RECIPIENT, 77, 57.5, 20, 7, 5.5, field=f.RECIPIENT_EXTENSION, bold=True,
               min_size=4),
            _t(z.RECIPIENT, 15, 66, 82, 18, 5, field=f.RECIPIENT_ADDRESS, max_lines=3,
               min_size=3.5),
            _t(z.RECIPIENT, 15, 87.5, 82, 4, 3, text=_PHONE_HINT),
            _t(z.SENDER, 3, 96, 9, 9, 7, text="寄", align="center", bold=True),
            _t(z.SENDER, 15, 95.5, 24, 6, 4.5, field=f.SENDER_NAME, min_size=3.5),
            _t(z.SENDER, 39, 95.5, 58, 6, 4.5, field=f.SENDER_PHONE, min_size=3.5),
            _t(z.SENDER, 15, 103, 82, 14, 4, field=f.SENDER_ADDRESS, max_lines=2,
               min_size=3),
            _t(z.CONTENTS, 4, 122, 92, 6, 4.5, field=f.CONTENTS, min_size=3.5),
            _t(z.CONTENTS, 4, 129.5, 92, 5, 3.5, field=f.PRINTED_AT),
            _t(z.SIGNATURE, 4, 141, 60, 6, 4.5, text="签收人："),
            _t(z.SIGNATURE, 4, 151, 60, 6, 4.5, text="签收时间："),
            _t(z.SIGNATURE, 4, 162, 62, 11, 3, text=_LABELS_FOOTER, max_lines=2),
            _t(z.SIGNATURE, 70, 164.5, 28, 4, 2.8, text=_QR_CAPTION, align="center"),
        ]
        barcode = BarcodeBox(Rect(5, 3.5, 90, 16), 0.5)
        qr = QrBox(Rect(72, 139, 25, 25), 0.5)
        sign_rules = (Rule(24, 147.5, 66, 147.5, 0.3), Rule(27, 157.5, 66, 157.5, 0.3))
        tags = (Frame(Rect(3, 58, 9, 9)), Frame(Rect(3, 96, 9, 9)))
    elif size is LabelSize.L100X150:
        w, h = 100.0, 150.0
        b = (26.0, 47.0, 79.0, 101.0, 115.0)
        texts = [
            _t(z.CODES, 5, 18, 90, 6.5, 5, field=f.TRACKING_NUMBER, align="center"),
            _t(z.DESTINATION, 4, 27.5, 92, 12.5, 10.5, field=f.SORT_CODE, align="center",
               min_size=6, bold=True),
            _t(z.DESTINATION, 4, 40.5, 92, 6, 4.5, field=f.STATION, align="center"),
            _t(z.RECIPIENT, 3, 49, 8, 8, 6, text="收", align="center", bold=True),
            _t(z.RECIPIENT, 14, 48.5, 24, 6.5, 5, field=f.RECIPIENT_NAME, bold=True,
               min_size=3.5),
            _t(z.RECIPIENT, 38, 48.5, 39, 6.5, 5, field=f.RECIPIENT_PHONE, bold=True,
               min_size=3.5),
            _t(z.RECIPIENT, 77, 48.5, 20, 6.5, 5, field=f.RECIPIENT_EXTENSION, bold=True,
               min_size=3.5),
            _t(z.RECIPIENT, 14, 56, 83, 16, 4.5, field=f.RECIPIENT_ADDRESS, max_lines=3,
               min_size=3.2),
            _t(z.RECIPIENT, 14, 73.5, 83, 4, 2.8, text=_PHONE_HINT),
            _t(z.SENDER, 3, 81, 8, 8, 6, text="寄", align="center", bold=True),
            _t(z.SENDER, 14, 80.5, 24, 6, 4, field=f.SENDER_NAME, min_size=3),
            _t(z.SENDER, 38, 80.5, 59, 6, 4, field=f.SENDER_PHONE, min_size=3),
            _t(z.SENDER, 14, 87, 83, 12, 3.8, field=f.SENDER_ADDRESS, max_lines=2,
               min_size=2.8),
            _t(z.CONTENTS, 4, 102.5, 92, 5.5, 4, field=f.CONTENTS, min_size=3),
            _t(z.CONTENTS, 4, 109, 92, 4.5, 3.2, field=f.PRINTED_AT),
            _t(z.SIGNATURE, 4, 118, 60, 6, 4, text="签收人："),
            _t(z.SIGNATURE, 4, 126.5, 60, 6, 4, text="签收时间："),
            _t(z.SIGNATURE, 4, 137, 63, 9, 2.8, text=_LABELS_FOOTER, max_lines=2),
            _t(z.SIGNATURE, 69, 140, 30, 4, 2.6, text=_QR_CAPTION, align="center"),
        ]
        barcode = BarcodeBox(Rect(5, 2.5, 90, 14.5), 0.5)
        qr = QrBox(Rect(72.5, 116, 24, 24), 0.5)
        sign_rules = (Rule(22, 124, 66, 124, 0.3), Rule(25, 132.5, 66, 132.5, 0.3))
        tags = (Frame(Rect(3, 49, 8, 8)), Frame(Rect(3, 81, 8, 8)))
    else:
        w, h = 76.0, 130.0
        b = (23.0, 40.0, 66.0, 84.0, 97.0)
        texts = [
            _t(z.CODES, 3, 16, 70, 6, 4.5, field=f.TRACKING_NUMBER, align="center"),
            _t(z.DESTINATION, 3, 24.5, 70, 10, 8.5, field=f.SORT_CODE, align="center",
               min_size=5, bold=True),
            _t(z.DESTINATION, 3, 34.5, 70, 5, 3.8, field=f.STATION, align="center"),
            _t(z.RECIPIENT, 2.5, 42, 7, 7, 5, text="收", align="center", bold=True),
            _t(z.RECIPIENT, 11.5, 41.5, 18, 5.5, 4.2, field=f.RECIPIENT_NAME, bold=True,
               min_size=3),
            _t(z.RECIPIENT, 29.5, 41.5, 29, 5.5, 4.2, field=f.RECIPIENT_PHONE, bold=True,
               min_size=3),
            _t(z.RECIPIENT, 58.5, 41.5, 15.5, 5.5, 4.2, field=f.RECIPIENT_EXTENSION,
               bold=True, min_size=3),
            _t(z.RECIPIENT, 11.5, 48, 62.5, 13.5, 3.8, field=f.RECIPIENT_ADDRESS,
               max_lines=3, min_size=2.8),
            _t(z.RECIPIENT, 11.5, 62, 62.5, 3.5, 2.4, text=_PHONE_HINT),
            _t(z.SENDER, 2.5, 68, 7, 7, 5, text="寄", align="center", bold=True),
            _t(z.SENDER, 11.5, 67.5, 18, 5, 3.5, field=f.SENDER_NAME, min_size=2.6),
            _t(z.SENDER, 29.5, 67.5, 44.5, 5, 3.5, field=f.SENDER_PHONE, min_size=2.6),
            _t(z.SENDER, 11.5, 73.5, 62.5, 9, 3.2, field=f.SENDER_ADDRESS, max_lines=2,
               min_size=2.4),
            _t(z.CONTENTS, 3, 85.5, 70, 5, 3.5, field=f.CONTENTS, min_size=2.6),
            _t(z.CONTENTS, 3, 91.5, 70, 4, 2.8, field=f.PRINTED_AT),
            _t(z.SIGNATURE, 3, 99.5, 45, 5, 3.5, text="签收人："),
            _t(z.SIGNATURE, 3, 107, 45, 5, 3.5, text="签收时间："),
            _t(z.SIGNATURE, 3, 115.5, 45, 11, 2.4, text=_LABELS_FOOTER, max_lines=3),
            _t(z.SIGNATURE, 49, 121.5, 26, 3.5, 2.4, text=_QR_CAPTION, align="center"),
        ]
        barcode = BarcodeBox(Rect(3, 2.5, 70, 12.5), 0.375)
        qr = QrBox(Rect(50.5, 98.5, 23, 23), 0.5)
        sign_rules = (Rule(16, 104.5, 48, 104.5, 0.3), Rule(19, 112, 48, 112, 0.3))
        tags = (Frame(Rect(2.5, 42, 7, 7)), Frame(Rect(2.5, 68, 7, 7)))
    tops = (0.0, *b)
    bottoms = (*b, h)
    zones = tuple(
        (zone, Rect(0, top, w, bottom - top))
        for zone, top, bottom in zip(Zone, tops, bottoms, strict=True)
    )
    inset = 1.5
    rules = tuple(Rule(inset, y, w - inset, y) for y in b) + sign_rules
    frames = (Frame(Rect(inset, inset, w - 2 * inset, h - 2 * inset)), *tags)
    return LabelLayout(size, w, h, zones, tuple(texts), barcode, qr, rules, frames)
# fmt: on


def layout(size: LabelSize | str = DEFAULT_SIZE) -> LabelLayout:
    """The layout of a label size ("100x180", "76x130", "100x150"); one object per size."""
    return _layout(parse_size(size))


@cache
def _layout(size: LabelSize) -> LabelLayout:
    return _build(size)


def parse_size(size: LabelSize | str) -> LabelSize:
    try:
        return LabelSize(size)
    except ValueError:
        raise ValueError(
            f"unknown label size; expected one of {', '.join(s.value for s in LabelSize)}"
        ) from None
