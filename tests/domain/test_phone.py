"""Tests for waybillguard.domain.phone (parse, fast path, masking, error hygiene)."""

from __future__ import annotations

import random
import string

import phonenumbers
import pytest
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st

from waybillguard.domain.errors import FieldError
from waybillguard.domain.phone import Phone, _fast_mobile, _parse_slow, mask_phone, parse_phone

PNT = phonenumbers.PhoneNumberType
ACCEPTED_TYPES = {PNT.MOBILE, PNT.FIXED_LINE, PNT.FIXED_LINE_OR_MOBILE}
MOBILE_TYPES = {PNT.MOBILE, PNT.FIXED_LINE_OR_MOBILE}

# Characters the reasons are written with; an input with anything else in it cannot be a
# substring of "f: <reason>".
REASON_ALPHABET = set(string.ascii_letters + string.digits + " ,()-+*:")


def reference(s: str) -> tuple[bool, bool]:
    """(accepted, accepted as mobile) according to phonenumbers alone."""
    try:
        number = phonenumbers.parse(s, "CN")
    except phonenumbers.NumberParseException:
        return False, False
    if number.country_code != 86 or number.extension or not phonenumbers.is_valid_number(number):
        return False, False
    number_type = phonenumbers.number_type(number)
    return number_type in ACCEPTED_TYPES, number_type in MOBILE_TYPES


def accepts(s: str) -> bool:
    try:
        parse_phone(s, "f")
    except FieldError:
        return False
    return True


def reason(s: str) -> str:
    with pytest.raises(FieldError) as info:
        parse_phone(s, "phone")
    assert info.value.field == "phone"
    return info.value.reason


# --- (a) the fast path agrees with phonenumbers -------------------------------------


def check_agreement(s: str) -> None:
    ref_accepted, ref_mobile = reference(s)
    fast = _fast_mobile(s)
    assert (fast is not None) == ref_mobile, s
    assert accepts(s) == ref_accepted, s
    if fast is not None:
        assert fast == Phone(s, "mobile", "")
        assert fast == _parse_slow(s, "f")


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=10**10, max_value=2 * 10**10 - 1).map(str))
@example("13800138000")
@example("17400012345")
@example("17406012345")
@example("16100123456")
@example("17951138001")
@example("12593138001")
@example("10612345678")
def test_fast_path_agrees_with_phonenumbers_for_11_digits_starting_with_1(s: str) -> None:
    check_agreement(s)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([f"1{a}{b}" for a in range(10) for b in range(10)]), st.data())
def test_fast_path_agrees_per_prefix(prefix: str, data: st.DataObject) -> None:
    suffix = data.draw(st.text(alphabet=string.digits, min_size=8, max_size=8))
    check_agreement(prefix + suffix)


def test_fast_path_agrees_exhaustive_prefixes() -> None:
    rnd = random.Random(41833)
    # Every 3-digit prefix 100-199, several suffixes each.
    for prefix in range(100, 200):
        for _ in range(8):
            check_agreement(f"{prefix}{rnd.randrange(10**8):08d}")
    # Every 4- and 5-digit prefix, since the mobile plan branches there (1610, 17400-17405).
    for prefix in range(1000, 2000):
        check_agreement(f"{prefix}{rnd.randrange(10**7):07d}")
    for prefix in range(10000, 20000, 3):
        check_agreement(f"{prefix}{rnd.randrange(10**6):06d}")


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=10**10, max_value=2 * 10**10 - 1).map(str),
    st.sampled_from(["{}", "+86{}", "+86 {}", "0086{}", "0086 {}", "86{}", " {} "]),
    st.booleans(),
)
def test_written_forms_agree_with_plain_digits(digits: str, template: str, spaced: bool) -> None:
    body = f"{digits[:3]}{' ' if spaced else '-'}{digits[3:7]} {digits[7:]}"
    written = template.format(body)
    ref_accepted, ref_mobile = reference(digits)
    if ref_mobile:
        assert parse_phone(written, "f") == Phone(digits, "mobile", "")
        assert _fast_mobile(written) is not None
    else:
        assert not accepts(written) or ref_accepted


# --- accepted and rejected examples ---------------------------------------------------

MOBILE = Phone("13800138000", "mobile", "")
BEIJING = Phone("01012345678", "landline", "010")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13800138000", MOBILE),
        ("138 0013 8000", MOBILE),
        ("138-0013-8000", MOBILE),
        ("+86 138 0013 8000", MOBILE),
        ("+86-138-0013-8000", MOBILE),
        ("+8613800138000", MOBILE),
        ("0086 13800138000", MOBILE),
        ("008613800138000", MOBILE),
        ("8613800138000", MOBILE),
        ("  13800138000\t", MOBILE),
        ("１３８００１３８０００", MOBILE),
        ("＋８６　１３８　００１３　８０００", MOBILE),
        ("(+86) 138 0013 8000", MOBILE),
        ("(010)12345678", BEIJING),
        ("(010) 1234-5678", BEIJING),
        ("010-12345678", BEIJING),
        ("01012345678", BEIJING),
        ("+86 10 12345678", BEIJING),
        ("+86-10-12345678", BEIJING),
        ("0086 10 1234 5678", BEIJING),
        ("０１０－１２３４５６７８", BEIJING),
        ("021-61234567", Phone("02161234567", "landline", "021")),
        ("0755-12345678", Phone("075512345678", "landline", "0755")),
        ("0310-2345678", Phone("03102345678", "landline", "0310")),
        ("+86 755 1234 5678", Phone("075512345678", "landline", "0755")),
        ("17400012345", Phone("17400012345", "mobile", "")),
        ("19912345678", Phone("19912345678", "mobile", "")),
    ],
)
def test_accepted(raw: str, expected: Phone) -> None:
    assert parse_phone(raw, "phone") == expected


def test_e164() -> None:
    assert MOBILE.e164 == "+8613800138000"
    assert BEIJING.e164 == "+861012345678"
    assert parse_phone("0755-12345678", "f").e164 == "+8675512345678"
    for raw in ["13800138000", "010-12345678", "0310-2345678"]:
        phone = parse_phone(raw, "f")
        assert parse_phone(phone.e164, "f") == phone
        assert (
            phonenumbers.format_number(
                phonenumbers.parse(raw, "CN"), phonenumbers.PhoneNumberFormat.E164
            )
            == phone.e164
        )


@pytest.mark.parametrize(
    ("raw", "expected_reason"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("\u3000", "is empty"),
        ("1" * 33, "too long to be a phone number"),
        ("1" * 40, "too long to be a phone number"),
        ("4008123123", "shared-cost"),
        ("400-812-3123", "shared-cost"),
        ("8008101818", "toll-free"),
        ("800-810-1818", "toll-free"),
        ("10086", "short codes"),
        ("95555", "short codes"),
        ("110", "short codes"),
        ("12345", "short codes"),
        ("16812345", "premium-rate"),
        ("+852 9123 4567", "not a mainland China number"),
        ("+1 650 253 0000", "not a mainland China number"),
        ("+44 20 7946 0000", "not a mainland China number"),
        ("00852 9123 4567", "not a mainland China number"),
        ("+999 1234567", "unknown country calling code"),
        ("010-12345678转123", "extensions"),
        ("010-12345678分机123", "extensions"),
        ("010-12345678#123", "extensions"),
        ("010-12345678 ext. 12", "extensions"),
        ("010-12345678 x12", "extensions"),
        ("010-12345678,123", "extensions"),
        ("138****1234", "masked"),
        ("138******34", "masked"),
        ("abc", "contains letters"),
        ("1-800-FLOWERS", "contains letters"),
        ("138OO138OOO", "contains letters"),
        ("电话13800138000", "contains letters"),
        ("13800138000\u200b", "control or invisible"),
        ("\u202e13800138000", "control or invisible"),
        ("138\x000138000", "control or invisible"),
        ("13800138000\n1", "control or invisible"),
        ("<script>", "contains letters"),
        ("13800138000' --", "not part of a phone number"),
        ("13800138000; --", "extensions"),
        ("1380013800", "not a valid"),
        ("138001380000", "not a valid"),
        ("12345678901", "not a valid"),
        ("16812345678", "not a valid"),
        ("0755-1234567", "not a valid"),
        ("01095555", "service number"),
        ("010-10012", "service number"),
        ("+86", "not a phone number"),
        ("-", "not a phone number"),
    ],
)
def test_rejected(raw: str, expected_reason: str) -> None:
    assert expected_reason in reason(raw)


def test_rejects_non_text() -> None:
    with pytest.raises(FieldError) as info:
        parse_phone(13800138000, "phone")  # type: ignore[arg-type]
    assert info.value.reason == "must be text"


def test_distinct_reasons() -> None:
    samples = ["", "1" * 40, "4008123123", "8008101818", "10086", "+852 9123 4567",
               "010-12345678转1", "abc", "138****1234", "13800138000\u200b", "12345678901",
               "01095555", "16812345"]  # fmt: skip
    reasons = [reason(s) for s in samples]
    assert len(set(reasons)) == len(reasons)


# --- (b) masking ------------------------------------------------------------------------


def test_mask_examples() -> None:
    assert mask_phone(MOBILE) == "138******00"
    assert mask_phone(parse_phone("13912345634", "f")) == "139******34"
    assert mask_phone(BEIJING) == "010-******78"
    assert mask_phone(parse_phone("0310-2345678", "f")) == "0310-******8"
    assert mask_phone(parse_phone("0755-12345678", "f")) == "0755-******78"
    assert mask_phone(parse_phone("021-61234567", "f")) == "021-******67"


def test_mask_of_hand_built_short_landline_still_hides_six() -> None:
    # parse_phone never builds these, but mask_phone must stay safe for any Phone.
    assert mask_phone(Phone("01095555", "landline", "010")) == "01*-*****"
    assert mask_phone(Phone("0101234567", "landline", "010")) == "010-******7"
    assert mask_phone(Phone("12345", "mobile", "")) == "*****"
    assert mask_phone(Phone("1234567", "mobile", "")) == "1******"


def assert_mask_safe(phone: Phone) -> None:
    masked = mask_phone(phone)
    digits = [c for c in masked if c.isdigit()]
    total = len(phone.national)
    assert masked.count("*") >= 6
    assert total - len(digits) >= 6
    assert phone.national not in masked
    assert phone.national.lstrip("0") not in masked
    assert phone.e164 not in masked
    assert len(digits) + masked.count("*") == total
    assert masked.replace("-", "").replace("*", "") == "".join(digits)
    # Visible digits are the real ones, in place.
    flat = masked.replace("-", "")
    assert all(m in ("*", n) for m, n in zip(flat, phone.national, strict=True))


valid_mobiles = (
    st.integers(min_value=10**10, max_value=2 * 10**10 - 1)
    .map(str)
    .filter(lambda s: _fast_mobile(s) is not None)
)
AREA_CODES = ["010", "020", "021", "022", "023", "024", "025", "027", "028", "029",
              "0311", "0371", "0431", "0451", "0471", "0531", "0551", "0571", "0591",
              "0731", "0755", "0757", "0769", "0851", "0871", "0891", "0898", "0310",
              "0335", "0349", "0701", "0941", "0999"]  # fmt: skip


@st.composite
def valid_landlines(draw: st.DrawFn) -> Phone:
    area = draw(st.sampled_from(AREA_CODES))
    length = draw(st.sampled_from([7, 8]))
    first = draw(st.sampled_from("2345678"))
    rest = draw(st.text(alphabet=string.digits, min_size=length - 1, max_size=length - 1))
    try:
        phone = parse_phone(f"{area}-{first}{rest}", "f")
    except FieldError:
        reject()
    assert phone.kind == "landline"
    return phone


@settings(max_examples=300, deadline=None)
@given(valid_mobiles)
def test_masked_mobile_hides_at_least_six_digits(s: str) -> None:
    phone = parse_phone(s, "f")
    assert_mask_safe(phone)
    masked = mask_phone(phone)
    assert masked == f"{s[:3]}******{s[-2:]}"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(valid_landlines())
def test_masked_landline_hides_at_least_six_digits(phone: Phone) -> None:
    assert_mask_safe(phone)
    masked = mask_phone(phone)
    assert masked.startswith(phone.area_code + "-")
    subscriber = len(phone.national) - len(phone.area_code)
    visible = max(0, min(2, subscriber - 6))
    assert sum(c.isdigit() for c in masked) == len(phone.area_code) + visible


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="0123456789", min_size=1, max_size=14),
    st.sampled_from(["mobile", "landline"]),
    st.integers(min_value=0, max_value=5),
)
def test_mask_hides_six_digits_for_any_phone_value(national: str, kind: str, area: int) -> None:
    phone = Phone(national, kind, national[:area] if kind == "landline" else "")  # type: ignore[arg-type]
    masked = mask_phone(phone)
    assert sum(c.isdigit() for c in masked) <= max(0, len(national) - 6)
    assert masked.count("*") >= min(6, len(national))


# --- (d) error messages never carry the input -----------------------------------------


def assert_error_is_clean(raw: object) -> None:
    try:
        parse_phone(raw, "f")  # type: ignore[arg-type]
    except FieldError as err:
        message = str(err)
        assert message == f"f: {err.reason}"
        assert set(err.reason) <= REASON_ALPHABET, err.reason
        assert isinstance(raw, str)
        for text in {raw, raw.strip()}:
            digits = sum(c.isdigit() for c in text)
            if text and (not set(text) <= REASON_ALPHABET or digits >= 4):
                # message == "<field>: <reason>" (above): only the reason could leak it.
                assert text not in err.reason
        assert err.args == (message,)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=40))
def test_error_never_contains_input_text(raw: str) -> None:
    assert_error_is_clean(raw)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789 -+()#x转*.", min_size=1, max_size=34))
def test_error_never_contains_input_phoneish(raw: str) -> None:
    assert_error_is_clean(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "13800138000; DROP TABLE waybills",
        "<img src=x onerror=alert(1)>",
        '=HYPERLINK("http://evil")',
        "${jndi:ldap://x/a}",
        "13800138000\r\nSet-Cookie: a=b",
        "\u202e00083100831",
        "１３８００１３８０００１２３",
        "+86 138 0013 8000 ext 1234",
        "020-8888 8888转8888",
        "'\"; --",
        "\x00\x01\x02",
        "\ud800",
    ],
)
def test_hostile_inputs_rejected_cleanly(raw: str) -> None:
    with pytest.raises(FieldError) as info:
        parse_phone(raw, "f")
    assert raw not in str(info.value)
    assert raw.strip() not in str(info.value)
    assert "138" not in str(info.value)


# -- landline fast path --------------------------------------------------------------
from waybillguard.domain import phone as _phone_module  # noqa: E402


def _landline_candidates(seed: int, count: int) -> list[str]:
    import random as _random

    rng = _random.Random(seed)
    short = ["10", "20", "21", "22", "23", "24", "25", "27", "28", "29"]
    out = []
    for _ in range(count):
        area = rng.choice([*short, str(rng.randrange(300, 1000))])
        length = rng.choice([7, 8])
        subscriber = str(rng.randrange(10 ** (length - 1), 10**length))
        out.append("0" + area + rng.choice(["-", "", " "]) + subscriber)
    return out


def test_landline_fast_path_agrees_with_phonenumbers() -> None:
    fast_hits = 0
    for raw in _landline_candidates(seed=1, count=20_000):
        fast = _phone_module._fast_landline(raw)
        try:
            slow = _phone_module._parse_slow(raw, "f")
        except FieldError:
            slow = None
        if fast is not None:
            fast_hits += 1
            assert fast == slow, "fast path disagrees with phonenumbers"
        else:
            assert slow is None or slow.kind != "landline", "fast path missed a landline"
    assert fast_hits > 5_000


def test_area_code_rule_matches_phonenumbers() -> None:
    import phonenumbers as _pn

    for raw in _landline_candidates(seed=2, count=5_000):
        slow = None
        try:
            slow = _phone_module._parse_slow(raw, "f")
        except FieldError:
            continue
        if slow.kind != "landline":
            continue
        number = _pn.parse(raw, "CN")
        nsn = _pn.national_significant_number(number)
        assert _phone_module.fast_area_code_length(nsn) == _pn.length_of_geographical_area_code(
            number
        )


@settings(max_examples=500)
@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_plain_eleven_digit_shortcut_agrees_with_the_general_paths(raw: str) -> None:
    """The shortcut for eleven bare digits gives what the stripping path and
    phonenumbers give, and its mask is the general rule's (first 3, six *, last 2)."""
    try:
        slow: Phone | str = _parse_slow(raw, "phone")
    except FieldError as exc:
        slow = exc.reason
    fast = _fast_mobile(raw)
    if fast is not None:
        assert fast == slow == _fast_mobile(f" {raw[:3]}-{raw[3:]} ")
        assert mask_phone(fast) == raw[:3] + "*" * 6 + raw[9:]
    else:
        assert _fast_mobile(f" {raw[:3]}-{raw[3:]} ") is None
