"""Personal names on waybills: parse, normalise and mask.

Two scripts are accepted: Chinese names written in Han characters (with ``·`` between the
segments of minority or transliterated names, e.g. 阿卜杜拉·买买提) and names in Latin
letters (José Müller, O'Brien, Anne-Marie, J. R. Smith). Anything else - digits, control,
zero-width or bidi characters, markup, a mix of Han and Latin - is rejected.

Masking follows GB/T 41833-2022 (express electronic waybills), which requires at least
one Chinese character of a name to be hidden. The mask always shows a fixed number of
stars so it never reveals how long the given name is.

Error messages name the field and a reason, never the input (it is personal data).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Final, Literal

from waybillguard.domain.errors import FieldError
from waybillguard.domain.slot_setters import slot_setters

__all__ = ["COMPOUND_SURNAMES", "PersonName", "mask_name", "parse_name"]

MAX_RAW_LENGTH: Final = 256
"""Inputs longer than this (before normalisation) are rejected without further work."""
MAX_HAN_LENGTH: Final = 20
MAX_LATIN_LENGTH: Final = 64

MIDDLE_DOT: Final = "\u00b7"

# Source: the compound-surname part of 《百家姓》 (Song dynasty), the lines from
# 万俟司马 to 第五言福, in simplified characters. Single surnames that appear among them
# (仉 督 晋 楚 闫 法 汝 鄢 涂 钦 岳 帅 缑 亢 况 郈/后 有 琴 佘 佴 墨 哈 谯 笪 年 爱 阳 佟 言 福)
# are left out. 亓官 is also written 丌官 in some editions; both are listed.
_BAIJIAXING_COMPOUND_SURNAMES: Final = (
    "万俟", "司马", "上官", "欧阳", "夏侯", "诸葛", "闻人", "东方",
    "赫连", "皇甫", "尉迟", "公羊", "澹台", "公冶", "宗政", "濮阳",
    "淳于", "单于", "太叔", "申屠", "公孙", "仲孙", "轩辕", "令狐",
    "钟离", "宇文", "长孙", "慕容", "鲜于", "闾丘", "司徒", "司空",
    "亓官", "丌官", "司寇", "子车", "颛孙", "端木", "巫马", "公西",
    "漆雕", "乐正", "壤驷", "公良", "拓跋", "夹谷", "宰父", "谷梁",
    "段干", "百里", "东郭", "南门", "呼延", "归海", "羊舌", "微生",
    "梁丘", "左丘", "东门", "西门", "商牟", "伯赏", "南宫", "第五",
)  # fmt: skip
# The same surnames in traditional characters (Hong Kong, Macao, Taiwan senders).
_BAIJIAXING_COMPOUND_SURNAMES_TRADITIONAL: Final = (
    "萬俟", "司馬", "歐陽", "諸葛", "聞人", "東方", "赫連", "尉遲",
    "澹臺", "濮陽", "單于", "公孫", "仲孫", "軒轅", "鍾離", "長孫",
    "鮮于", "閭丘", "子車", "顓孫", "巫馬", "樂正", "壤駟", "夾谷",
    "穀梁", "東郭", "南門", "歸海", "東門", "西門", "伯賞", "南宮",
)  # fmt: skip

COMPOUND_SURNAMES: Final = frozenset(
    _BAIJIAXING_COMPOUND_SURNAMES + _BAIJIAXING_COMPOUND_SURNAMES_TRADITIONAL
)
"""Two-character surnames recognised at the start of a Han name (百家姓, both scripts)."""

# CJK Unified Ideographs, by block. Compatibility ideographs U+F900-U+FAFF are included:
# after NFKC only the twelve unified ones among them (U+FA0E etc.) remain there.
_HAN_RANGES: Final = (
    ("\u3400", "\u4dbf"),  # Extension A
    ("\u4e00", "\u9fff"),  # URO
    ("\uf900", "\ufaff"),  # compatibility block (unified ideographs left after NFKC)
    ("\U00020000", "\U0002a6df"),  # Extension B
    ("\U0002a700", "\U0002b73f"),  # Extension C
    ("\U0002b740", "\U0002b81f"),  # Extension D
    ("\U0002b820", "\U0002ceaf"),  # Extension E
    ("\U0002ceb0", "\U0002ebef"),  # Extension F
    ("\U0002ebf0", "\U0002ee5f"),  # Extension I (Unicode 15.1)
    ("\U00030000", "\U0003134f"),  # Extension G
    ("\U00031350", "\U000323af"),  # Extension H (Unicode 15.0)
)
_HAN_CLASS: Final = "".join(f"{lo}-{hi}" for lo, hi in _HAN_RANGES)

# Latin letters: Basic Latin, Latin-1 Supplement (without x and /), Extended-A and -B,
# Latin Extended Additional; plus combining diacritics for letters NFKC cannot compose.
_LATIN_BASE_CLASS: Final = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff"
_LATIN_LETTER_CLASS: Final = _LATIN_BASE_CLASS + "\u0300-\u036f"

_HAN_CHAR: Final = re.compile(f"[{_HAN_CLASS}]")
_LATIN_CHAR: Final = re.compile(f"[{_LATIN_LETTER_CLASS}]")
_HAN_NAME: Final = re.compile(f"[{_HAN_CLASS}]+(?:{MIDDLE_DOT}[{_HAN_CLASS}]+)*")
_LATIN_NAME: Final = re.compile(f"[{_LATIN_LETTER_CLASS} .'-]+")
_LATIN_FIRST_LETTER: Final = re.compile(f"[{_LATIN_BASE_CLASS}]")

# Applied after NFKC (which already turns U+FF65 into U+30FB and U+0387 into U+00B7).
_UNIFY: Final = str.maketrans(
    {
        "\u30fb": MIDDLE_DOT,  # ・ katakana middle dot
        "\uff65": MIDDLE_DOT,  # ･ halfwidth katakana middle dot
        "\u2022": MIDDLE_DOT,  # • bullet
        "\u2027": MIDDLE_DOT,  # ‧ hyphenation point
        "\u2219": MIDDLE_DOT,  # ∙ bullet operator
        "\u22c5": MIDDLE_DOT,  # ⋅ dot operator
        "\u2e31": MIDDLE_DOT,  # ⸱ word separator middle dot
        "\u2019": "'",  # ’ right single quotation mark, as in O’Brien
        "\u02bc": "'",  # ʼ modifier letter apostrophe
        "\u2010": "-",  # ‐ hyphen
        "\u2011": "-",  # non-breaking hyphen
    }
)

_BIDI_CONTROLS: Final = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_ZERO_WIDTH: Final = frozenset("\u180e\u200b\u200c\u200d\u2060\ufeff")
# Characters typical of markup, SQL, shell or formula injection; never part of a name.
_INJECTION_SYMBOLS: Final = frozenset('<>&"`;=(){}[]\\/|%$#@!?*+^~:')

_R_NOT_TEXT: Final = "must be text"
_R_EMPTY: Final = "is empty"
_R_TOO_LONG_RAW: Final = f"is too long to be a name (more than {MAX_RAW_LENGTH} characters)"
_R_CONTROL: Final = "contains control characters"
_R_BIDI: Final = "contains bidirectional text control characters"
_R_ZERO_WIDTH: Final = "contains zero-width characters"
_R_FORMAT: Final = "contains invisible formatting characters"
_R_UNASSIGNED: Final = "contains unassigned, private-use or surrogate code points"
_R_DIGITS: Final = "contains digits"
_R_SYMBOLS: Final = "contains symbols used in markup or code, which are not allowed in a name"
_R_MIXED: Final = "mixes Chinese characters and Latin letters"
_R_HAN_CHARS: Final = "contains characters that are not allowed in a Chinese name"
_R_DOT_EDGE: Final = "a middle dot cannot start or end a name"
_R_DOT_DOUBLE: Final = "contains consecutive middle dots"
_R_HAN_SINGLE: Final = "a single Chinese character is not a full name"
_R_HAN_TOO_LONG: Final = f"is too long for a Chinese name (more than {MAX_HAN_LENGTH} characters)"
_R_LATIN_CHARS: Final = "contains characters that are not allowed in a Latin-script name"
_R_LATIN_SHORT: Final = "is too short for a name (fewer than 2 characters)"
_R_LATIN_TOO_LONG: Final = f"is too long for a name (more than {MAX_LATIN_LENGTH} characters)"
_R_NO_LETTERS: Final = "contains no letters"
_R_SCRIPT: Final = "is not written in Chinese characters or Latin letters"


@dataclass(frozen=True, slots=True)
class PersonName:
    """A validated personal name. Build instances with :func:`parse_name`.

    ``value`` is NFKC-normalised, trimmed, with whitespace collapsed (and removed between
    Han characters) and every middle-dot variant unified to ``·`` (U+00B7).
    ``surname`` is a one- or two-character surname for Han names (two when the name starts
    with a compound surname of 百家姓 and is at least three characters long), the first
    character for ``·`` names, and the first letter for Latin names.
    """

    value: str = field(repr=False)
    script: Literal["han", "latin"]
    surname: str


# Fast paths for the shapes nearly every row has: Han characters of the main CJK block
# (with ``·`` between segments), or ASCII letters with single spaces. Every character
# they accept is its own NFKC form, is neither control, format, digit nor symbol, and is
# not a middle-dot or apostrophe variant, so the full path would return exactly the
# same name (tests check both facts for every character of the block).
_FAST_HAN_BLOCK: Final = "\u4e00-\u9fff"
_FAST_HAN: Final = re.compile(f"[{_FAST_HAN_BLOCK}]+(?:{MIDDLE_DOT}[{_FAST_HAN_BLOCK}]+)*")
_FAST_LATIN: Final = re.compile("[A-Za-z]+(?: [A-Za-z]+)*")


def _make_name(value: str, script: Literal["han", "latin"], surname: str) -> PersonName:
    """Same as ``PersonName(value, script, surname)`` without the frozen dataclass's
    per-field ``object.__setattr__`` (a third of a fast-path parse)."""
    name: PersonName = object.__new__(PersonName)
    _SET_VALUE(name, value)
    _SET_SCRIPT(name, script)
    _SET_SURNAME(name, surname)
    return name


_SET_VALUE, _SET_SCRIPT, _SET_SURNAME = slot_setters(PersonName, ("value", "script", "surname"))


def parse_name(raw: str, field: str) -> PersonName:
    """Parse a personal name; raises :class:`FieldError` (field + reason, never the value)."""
    if type(raw) is str and 2 <= len(raw) <= MAX_LATIN_LENGTH:
        if len(raw) <= MAX_HAN_LENGTH and _FAST_HAN.fullmatch(raw) is not None:
            return _make_name(raw, "han", _han_surname(raw))
        if _FAST_LATIN.fullmatch(raw) is not None:
            return _make_name(raw, "latin", raw[0])
    return _parse_full(raw, field)


def _parse_full(raw: str, field: str) -> PersonName:
    if not isinstance(raw, str):
        raise FieldError(field, _R_NOT_TEXT)
    if len(raw) > MAX_RAW_LENGTH:
        raise FieldError(field, _R_TOO_LONG_RAW)
    stripped = raw.strip()
    if not stripped:
        raise FieldError(field, _R_EMPTY)
    _check_invisible(stripped, field)

    text = unicodedata.normalize("NFKC", stripped).translate(_UNIFY)
    text = " ".join(text.split())
    if not text:
        raise FieldError(field, _R_EMPTY)
    if any(ch in _INJECTION_SYMBOLS for ch in text):
        raise FieldError(field, _R_SYMBOLS)
    # Before NFKC too: it turns Roman numerals (Ⅻ) into letters.
    for ch in stripped + text:
        if unicodedata.category(ch)[0] == "N":
            raise FieldError(field, _R_DIGITS)

    has_han = _HAN_CHAR.search(text) is not None
    has_latin = _LATIN_CHAR.search(text) is not None
    if has_han and has_latin:
        raise FieldError(field, _R_MIXED)
    if has_han:
        return _parse_han(text, field)
    if has_latin:
        return _parse_latin(text, field)
    if not any(ch.isalpha() for ch in text):
        raise FieldError(field, _R_NO_LETTERS)
    raise FieldError(field, _R_SCRIPT)


def _check_invisible(text: str, field: str) -> None:
    for ch in text:
        category = unicodedata.category(ch)
        if category[0] != "C":
            continue
        if category == "Cc":
            raise FieldError(field, _R_CONTROL)
        if ch in _BIDI_CONTROLS:
            raise FieldError(field, _R_BIDI)
        if ch in _ZERO_WIDTH:
            raise FieldError(field, _R_ZERO_WIDTH)
        if category == "Cf":
            raise FieldError(field, _R_FORMAT)
        # Cn (unassigned), Co (private use), Cs (lone surrogates). Han blocks assigned
        # after this Python's Unicode version (Extensions H and I) are let through.
        if _HAN_CHAR.fullmatch(ch) is None:
            raise FieldError(field, _R_UNASSIGNED)


def _parse_han(text: str, field: str) -> PersonName:
    # Blanks inside Chinese names are layout ("王　五" padded to the width of three
    # characters), not part of the name.
    value = text.replace(" ", "")
    if _HAN_NAME.fullmatch(value) is None:
        if value.startswith(MIDDLE_DOT) or value.endswith(MIDDLE_DOT):
            raise FieldError(field, _R_DOT_EDGE)
        if MIDDLE_DOT * 2 in value:
            raise FieldError(field, _R_DOT_DOUBLE)
        raise FieldError(field, _R_HAN_CHARS)
    if len(value) < 2:
        raise FieldError(field, _R_HAN_SINGLE)
    if len(value) > MAX_HAN_LENGTH:
        raise FieldError(field, _R_HAN_TOO_LONG)
    return _make_name(value, "han", _han_surname(value))


def _han_surname(value: str) -> str:
    if MIDDLE_DOT in value:
        return value[0]
    if len(value) >= 3 and value[:2] in COMPOUND_SURNAMES:
        return value[:2]
    return value[0]


def _parse_latin(text: str, field: str) -> PersonName:
    if _LATIN_NAME.fullmatch(text) is None:
        raise FieldError(field, _R_LATIN_CHARS)
    if len(text) < 2:
        raise FieldError(field, _R_LATIN_SHORT)
    if len(text) > MAX_LATIN_LENGTH:
        raise FieldError(field, _R_LATIN_TOO_LONG)
    first = _LATIN_FIRST_LETTER.search(text)
    if first is None:  # only combining marks and punctuation
        raise FieldError(field, _R_NO_LETTERS)
    return _make_name(text, "latin", first.group())


def mask_name(name: PersonName) -> str:
    """Mask for a waybill label: ``欧阳娜娜 -> 欧阳**``, ``王五 -> 王**``, ``José -> J***``.

    The number of stars is fixed, so the mask does not reveal the given name's length.
    """
    if name.script == "latin":
        return f"{name.surname[:1]}***"
    surname = name.surname
    if not surname or len(surname) >= len(name.value) or not name.value.startswith(surname):
        # Not built by parse_name; never show more than the first character.
        surname = name.value[:1]
    return f"{surname}**"
