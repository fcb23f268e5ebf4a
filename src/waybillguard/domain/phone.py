"""Mainland China phone numbers: parse, normalise and mask.

Validation follows China's numbering plan as published in libphonenumber's metadata (the
``phonenumbers`` package): a number is accepted only when it is valid for region CN and its
type is MOBILE, FIXED_LINE or FIXED_LINE_OR_MOBILE. Toll-free (400/800), premium-rate,
shared-cost, short codes (10086, 95555) and foreign numbers are rejected.

Speed: ``phonenumbers.parse`` costs tens of microseconds, too slow for bulk import. The
common case - eleven plain digits starting with 1, maybe with spaces, hyphens or a +86 /
0086 / 86 prefix - is decided by a single regular expression compiled from the same CN
metadata (general description, mobile pattern, and the patterns of every type phonenumbers
ranks before MOBILE), so it cannot drift from the library. Everything else goes through
``phonenumbers``.

Masking follows GB/T 41833-2022 (express electronic waybills): at least six digits of a
phone number are hidden on a label. The widespread ``138****1234`` hides only four and is
not compliant.

Error messages name the field and a reason, never the input (it is personal data).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Final, Literal

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers.phonemetadata import PhoneMetadata, PhoneNumberDesc

from waybillguard.domain.errors import FieldError
from waybillguard.domain.slot_setters import slot_setters

__all__ = ["Phone", "mask_phone", "parse_phone"]

MAX_RAW_LENGTH: Final = 32
"""Inputs longer than this (before any normalisation) are rejected outright."""

MIN_HIDDEN_DIGITS: Final = 6
"""GB/T 41833-2022: a phone number on a waybill hides at least six digits."""

_REGION: Final = "CN"
_COUNTRY_CODE: Final = 86

_ACCEPTED_TYPES: Final = frozenset(
    {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
)

# Reasons. Kept free of any part of the input on purpose.
_R_NOT_TEXT: Final = "must be text"
_R_EMPTY: Final = "is empty"
_R_TOO_LONG_RAW: Final = f"is too long to be a phone number (more than {MAX_RAW_LENGTH} characters)"
_R_CONTROL: Final = "contains control or invisible characters"
_R_EXTENSION: Final = "extensions are not accepted (give the number of the line itself)"
_R_LETTERS: Final = "contains letters (only digits, spaces, hyphens, parentheses and + are allowed)"
_R_SYMBOLS: Final = "contains characters that are not part of a phone number"
_R_MASKED: Final = "contains * (a masked number cannot be stored)"
_R_NOT_A_NUMBER: Final = "is not a phone number"
_R_BAD_COUNTRY_CODE: Final = "has an unknown country calling code"
_R_FOREIGN: Final = "is not a mainland China number (country calling code is not +86)"
_R_TOO_SHORT: Final = "is too short for a mainland China phone number"
_R_TOO_LONG: Final = "is too long for a mainland China phone number"
_R_SHORT_CODE: Final = "short codes and service numbers are not accepted"
_R_INVALID: Final = "is not a valid mainland China mobile or landline number"
_R_TOLL_FREE: Final = "toll-free numbers are not accepted"
_R_PREMIUM: Final = "premium-rate numbers are not accepted"
_R_SHARED_COST: Final = "shared-cost numbers (such as 400 numbers) are not accepted"
_R_OTHER_TYPE: Final = "is not a mobile or landline number"
_R_NO_AREA_CODE: Final = "is a landline number without a recognisable area code"
_R_SERVICE_LINE: Final = (
    "is a service number behind an area code, not a subscriber line (not accepted)"
)

_TYPE_REASONS: Final = {
    PhoneNumberType.TOLL_FREE: _R_TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE: _R_PREMIUM,
    PhoneNumberType.SHARED_COST: _R_SHARED_COST,
}

_PARSE_ERROR_REASONS: Final = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: _R_BAD_COUNTRY_CODE,
    phonenumbers.NumberParseException.NOT_A_NUMBER: _R_NOT_A_NUMBER,
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: _R_TOO_SHORT,
    phonenumbers.NumberParseException.TOO_SHORT_NSN: _R_TOO_SHORT,
    phonenumbers.NumberParseException.TOO_LONG: _R_TOO_LONG,
}

# Written forms: digits, blanks, hyphens, dots, slashes, parentheses, one leading +.
_ALLOWED_SYMBOLS: Final = frozenset(" -.()/+")
# "转" and "分机" are how extensions are written in Chinese ("010-12345678转123").
_EXTENSION_MARKERS: Final = ("#", ",", ";", "转", "分机", "ext")
_EXTENSION_X: Final = re.compile(r"[\d)\s.]\s*x\s*\.?\s*\d", re.IGNORECASE)


def _cn_metadata() -> PhoneMetadata:
    metadata = PhoneMetadata.metadata_for_region(_REGION)
    if metadata is None:  # pragma: no cover - phonenumbers always ships CN
        raise RuntimeError("phonenumbers has no metadata for region CN")
    return metadata


def _pattern(desc: PhoneNumberDesc | None) -> str | None:
    if desc is None or not desc.national_number_pattern:
        return None
    return str(desc.national_number_pattern)


def _patterns_ranked_before_mobile(metadata: PhoneMetadata) -> list[str]:
    """Patterns of the number types phonenumbers.number_type tests before fixed/mobile."""
    descs = (
        metadata.premium_rate,
        metadata.toll_free,
        metadata.shared_cost,
        metadata.voip,
        metadata.personal_number,
        metadata.pager,
        metadata.uan,
        metadata.voicemail,
    )
    return [p for p in map(_pattern, descs) if p is not None]


def _compile_fast_mobile(metadata: PhoneMetadata) -> re.Pattern[str] | None:
    """One regex that says "valid CN mobile" exactly as phonenumbers would, for 11 digits.

    phonenumbers.number_type checks the general description first, then premium-rate,
    toll-free, shared-cost, VoIP, personal, pager, UAN and voicemail, and only then
    fixed-line/mobile. The regex requires all of: the mobile pattern, the general
    description, and none of the types ranked before MOBILE (a fixed-line match too gives
    FIXED_LINE_OR_MOBILE, which is accepted as well). All patterns come from the installed
    metadata.
    """
    general = _pattern(metadata.general_desc)
    mobile = _pattern(metadata.mobile)
    if general is None or mobile is None or metadata.mobile is None:  # pragma: no cover
        return None
    if 11 not in (metadata.mobile.possible_length or ()):  # pragma: no cover - plan changed
        return None
    earlier = _patterns_ranked_before_mobile(metadata)
    exclude = f"(?!(?:{'|'.join(earlier)})\\Z)" if earlier else ""
    # Mobile first: it rejects most non-mobiles after a character or two.
    return re.compile(f"(?=(?:{mobile})\\Z)(?=(?:{general})\\Z){exclude}")


def _compile_fast_landline(metadata: PhoneMetadata) -> re.Pattern[str] | None:
    """ "Valid CN fixed line" for a national significant number, as phonenumbers decides:
    the fixed-line and general patterns match, no type ranked before it does, and the
    mobile pattern does not (that would be FIXED_LINE_OR_MOBILE: left to the full path)."""
    general = _pattern(metadata.general_desc)
    fixed = _pattern(metadata.fixed_line)
    mobile = _pattern(metadata.mobile)
    if general is None or fixed is None or mobile is None:  # pragma: no cover
        return None
    earlier = [*_patterns_ranked_before_mobile(metadata), mobile]
    exclude = f"(?!(?:{'|'.join(earlier)})\\Z)"
    return re.compile(f"(?=(?:{fixed})\\Z)(?=(?:{general})\\Z){exclude}")


_METADATA: Final = _cn_metadata()
_FAST_MOBILE: Final = _compile_fast_mobile(_METADATA)
_FAST_LANDLINE: Final = _compile_fast_landline(_METADATA)
_MOBILE_NSN: Final = re.compile(f"(?:{_pattern(_METADATA.mobile)})\\Z")
_LANDLINE_SEPARATORS: Final = str.maketrans("", "", " -()")


def fast_area_code_length(nsn: str) -> int:
    """Digits of the area code in a landline's national significant number.

    China's plan: 10 (Beijing) and 20-29 are two digits, every other area code is
    three. Tests check this against phonenumbers.length_of_geographical_area_code
    for every area code prefix the metadata knows.
    """
    return 2 if nsn[0] in "12" else 3


@dataclass(frozen=True, slots=True)
class Phone:
    """A validated mainland China phone number.

    ``national`` is the number as dialled inside China, digits only; landlines keep the
    trunk prefix 0 (``"01012345678"``), mobiles have none (``"13800138000"``).
    ``area_code`` is ``""`` for mobiles and includes the trunk 0 for landlines (``"010"``).
    Build instances with :func:`parse_phone`.
    """

    national: str = field(repr=False)
    kind: Literal["mobile", "landline"]
    area_code: str

    @property
    def e164(self) -> str:
        """E.164 form, e.g. ``"+8613800138000"`` or ``"+861012345678"``."""
        nsn = self.national[1:] if self.national.startswith("0") else self.national
        return f"+{_COUNTRY_CODE}{nsn}"


_SET_NATIONAL, _SET_KIND, _SET_AREA_CODE = slot_setters(Phone, ("national", "kind", "area_code"))


def _make_phone(national: str, kind: Literal["mobile", "landline"], area_code: str) -> Phone:
    """Same as ``Phone(national, kind, area_code)`` without the frozen dataclass's
    per-field ``object.__setattr__`` (half the cost of a fast-path parse)."""
    phone: Phone = object.__new__(Phone)
    _SET_NATIONAL(phone, national)
    _SET_KIND(phone, kind)
    _SET_AREA_CODE(phone, area_code)
    return phone


def parse_phone(raw: str, field: str) -> Phone:
    """Parse a written mainland China mobile or landline number.

    Raises :class:`FieldError` naming ``field`` and a reason; the input is never included.
    """
    if type(raw) is str and len(raw) <= MAX_RAW_LENGTH:
        fast = _fast_mobile(raw) or _fast_landline(raw)
        if fast is not None:
            return fast
    return _parse_slow(raw, field)


def _fast_mobile(raw: str) -> Phone | None:
    """Eleven plain ASCII digits starting with 1 (after blanks, hyphens, +86/0086/86).

    Returns ``None`` whenever the answer is not a clear "valid mobile"; the caller then
    takes the full path, which also produces the precise rejection reason.
    """
    if _FAST_MOBILE is None:  # pragma: no cover - metadata without an 11-digit mobile plan
        return None
    if len(raw) == 11 and raw.isdigit() and raw.isascii():
        # Already eleven plain digits (nearly every row): nothing to strip.
        return _make_phone(raw, "mobile", "") if _FAST_MOBILE.match(raw) is not None else None
    s = raw.strip().replace(" ", "").replace("-", "")
    n = len(s)
    if n == 14 and s.startswith("+86"):
        s = s[3:]
    elif n == 15 and s.startswith("0086"):
        s = s[4:]
    elif n == 13 and s.startswith("86"):
        s = s[2:]
    if len(s) == 11 and s.isascii() and s.isdigit() and _FAST_MOBILE.match(s) is not None:
        return _make_phone(s, "mobile", "")
    return None


def _fast_landline(raw: str) -> Phone | None:
    """ "0" + area code + subscriber number in ASCII digits, with blanks, hyphens or
    parentheses: "010-12345678", "(0755)26543210". None sends it to the full path."""
    if _FAST_LANDLINE is None:  # pragma: no cover
        return None
    s = raw.strip().translate(_LANDLINE_SEPARATORS)
    if not (10 <= len(s) <= 12 and s[0] == "0" and s.isascii() and s.isdigit()):
        return None
    nsn = s[1:]
    if _FAST_LANDLINE.match(nsn) is None:
        return None
    area_length = fast_area_code_length(nsn)
    if len(nsn) - area_length < 7:
        return None  # service lines get their precise reason from the full path
    return Phone(s, "landline", s[: area_length + 1])


def _parse_slow(raw: str, field: str) -> Phone:
    if not isinstance(raw, str):
        raise FieldError(field, _R_NOT_TEXT)
    if len(raw) > MAX_RAW_LENGTH:
        raise FieldError(field, _R_TOO_LONG_RAW)
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        raise FieldError(field, _R_EMPTY)
    _check_characters(text, field)

    try:
        number = phonenumbers.parse(text, _REGION)
    except phonenumbers.NumberParseException as exc:
        raise FieldError(field, _PARSE_ERROR_REASONS.get(exc.error_type, _R_INVALID)) from None
    if number.extension:
        raise FieldError(field, _R_EXTENSION)
    if number.country_code != _COUNTRY_CODE:
        raise FieldError(field, _R_FOREIGN)
    if not phonenumbers.is_valid_number(number):
        raise FieldError(field, _invalid_reason(number))

    number_type = phonenumbers.number_type(number)
    if number_type not in _ACCEPTED_TYPES:
        raise FieldError(field, _TYPE_REASONS.get(number_type, _R_OTHER_TYPE))

    nsn = phonenumbers.national_significant_number(number)
    if _MOBILE_NSN.match(nsn) is not None:
        return Phone(nsn, "mobile", "")

    area_length = phonenumbers.length_of_geographical_area_code(number)
    if area_length <= 0:
        raise FieldError(field, _R_NO_AREA_CODE)
    if len(nsn) - area_length < 7:
        # Area code + 95xxx / 100xx / 123xx: a company's service line, not a person's
        # phone; it also has too few digits to hide six of them behind the area code.
        raise FieldError(field, _R_SERVICE_LINE)
    return Phone("0" + nsn, "landline", "0" + nsn[:area_length])


def _check_characters(text: str, field: str) -> None:
    for ch in text:
        if unicodedata.category(ch)[0] == "C":
            raise FieldError(field, _R_CONTROL)
    lowered = text.casefold()
    if any(marker in lowered for marker in _EXTENSION_MARKERS) or _EXTENSION_X.search(lowered):
        raise FieldError(field, _R_EXTENSION)
    for ch in text:
        if ch.isalpha():
            raise FieldError(field, _R_LETTERS)
    if "*" in text:
        raise FieldError(field, _R_MASKED)
    for ch in text:
        if not ("0" <= ch <= "9" or ch in _ALLOWED_SYMBOLS or ch.isspace()):
            raise FieldError(field, _R_SYMBOLS)


def _invalid_reason(number: phonenumbers.PhoneNumber) -> str:
    if phonenumbers.is_valid_short_number_for_region(number, _REGION):
        return _R_SHORT_CODE
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible == phonenumbers.ValidationResult.TOO_SHORT:
        return _R_TOO_SHORT
    if possible == phonenumbers.ValidationResult.TOO_LONG:
        return _R_TOO_LONG
    return _R_INVALID


def mask_phone(phone: Phone) -> str:
    """Mask for a waybill label; at least six digits are always hidden (GB/T 41833-2022).

    Mobile: first 3, six ``*``, last 2 (``"138******34"``). Landline: area code, ``-``,
    ``*`` for the hidden digits, then the last ``k`` digits with
    ``k = max(0, min(2, total_digits - len(area_code) - 6))`` (``"010-******78"``).
    """
    national = phone.national
    total = len(national)
    if total == 11 and phone.kind == "mobile":
        return national[:3] + "******" + national[9:]  # the general rule below, for 11
    area = phone.area_code
    if phone.kind == "landline" and area and national.startswith(area):
        subscriber = national[len(area) :]
        if len(subscriber) >= MIN_HIDDEN_DIGITS:
            shown = max(0, min(2, total - len(area) - MIN_HIDDEN_DIGITS))
            hidden = len(subscriber) - shown
            return f"{area}-{'*' * hidden}{subscriber[hidden:]}"
        # Too short a subscriber part to hide six digits in it (parse_phone never builds
        # such a Phone): hide the end of the area code as well.
        keep = max(0, total - MIN_HIDDEN_DIGITS)
        return f"{area[:keep]}{'*' * (len(area) - keep)}-{'*' * len(subscriber)}"
    shown = max(0, total - MIN_HIDDEN_DIGITS)
    head = min(3, shown)
    tail = min(2, shown - head)
    return f"{national[:head]}{'*' * (total - head - tail)}{national[total - tail :]}"
