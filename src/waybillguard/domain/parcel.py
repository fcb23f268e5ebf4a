"""Parcel facts, merchant and order reference: business data, not personal data."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from waybillguard.domain.errors import FieldError

MAX_WEIGHT_G = 100_000

# Categories of GB/T 41833 内件信息区 as carriers print them; English aliases map in.
CATEGORIES: dict[str, str] = {
    "日用品": "日用品",
    "daily": "日用品",
    "服饰": "服饰",
    "clothing": "服饰",
    "数码": "数码",
    "electronics": "数码",
    "食品": "食品",
    "food": "食品",
    "文件": "文件",
    "documents": "文件",
    "化妆品": "化妆品",
    "cosmetics": "化妆品",
    "图书": "图书",
    "books": "图书",
    "家电": "家电",
    "appliances": "家电",
    "生鲜": "生鲜",
    "fresh": "生鲜",
    "药品": "药品",
    "medicine": "药品",
    "母婴": "母婴",
    "母婴用品": "母婴",
    "baby": "母婴",
    "玩具": "玩具",
    "toys": "玩具",
    "家居": "家居",
    "home": "家居",
    "运动户外": "运动户外",
    "sports": "运动户外",
    "汽配": "汽配",
    "auto": "汽配",
    "其他": "其他",
    "other": "其他",
}

_MERCHANT = re.compile(r"[0-9A-Za-z\u4e00-\u9fff][0-9A-Za-z\u4e00-\u9fff _.()（）\-]{0,63}")
_ORDER_REF = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.:/#\-]{0,63}")


@dataclass(frozen=True, slots=True)
class Parcel:
    weight_g: int
    category: str


def parse_weight(raw: str, field: str = "parcel.weight_g") -> int:
    text = raw.strip()
    if not text:
        raise FieldError(field, "weight is missing")
    if not text.isascii() or not text.isdigit():
        raise FieldError(field, "weight must be a whole number of grams")
    grams = int(text)
    if grams <= 0 or grams > MAX_WEIGHT_G:
        raise FieldError(field, f"weight must be between 1 and {MAX_WEIGHT_G} grams")
    return grams


def parse_category(raw: str, field: str = "parcel.category") -> str:
    key = unicodedata.normalize("NFKC", raw).strip()
    category = CATEGORIES.get(key) or CATEGORIES.get(key.lower())
    if category is None:
        raise FieldError(field, "unknown item category; see `waybillguard categories`")
    return category


def parse_merchant(raw: str, field: str = "merchant") -> str:
    text = unicodedata.normalize("NFKC", raw).strip()
    if not _MERCHANT.fullmatch(text):
        raise FieldError(
            field, "merchant must be 1-64 letters, digits, Chinese characters, or _ . - ( )"
        )
    return text


def parse_order_ref(raw: str, field: str = "order_ref") -> str:
    text = raw.strip()
    if not _ORDER_REF.fullmatch(text):
        raise FieldError(
            field, "order reference must be 1-64 characters of A-Z a-z 0-9 _ . : / # -"
        )
    return text
