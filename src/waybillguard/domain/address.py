"""Free-text Chinese addresses: split into division + detail, and mask.

``AddressResolver.resolve`` turns what people type on a waybill
("广东深圳南山区科技园路12号3栋502室", "上海浦东新区…", "新疆乌鲁木齐市天山区…")
into an :class:`Address`: the county-level division (kept in clear, it routes
the parcel) and the *detail* (street, number, building, unit, room: personal
data, encrypted at rest).

Speed matters (an import resolves two addresses per row at >25,000 rows/s), so
all names and aliases are indexed at construction by their first two
characters and matched as prefixes at the start of the string; a call costs a
handful of dict look-ups and ``str.startswith`` checks.

``mask_address`` is the product's default masked view, stricter than
GB/T 41833-2022 (which only hides unit/household/room): everything after the
street or road name is replaced by a fixed ``****``, and no digit of the
detail is ever shown.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TypeVar

from waybillguard.domain.divisions import Division, DivisionTable
from waybillguard.domain.errors import FieldError
from waybillguard.domain.slot_setters import slot_setters

MAX_ADDRESS_LENGTH = 200
MASK = "****"

# The 55 minority nationalities, as they appear inside names of autonomous
# regions, prefectures, counties and banners (with or without 族).
_ETHNIC_GROUPS = (
    "蒙古", "回", "藏", "维吾尔", "苗", "彝", "壮", "布依", "朝鲜", "满", "侗", "瑶",
    "白", "土家", "哈尼", "哈萨克", "傣", "黎", "傈僳", "佤", "畲", "拉祜", "水",
    "东乡", "纳西", "景颇", "柯尔克孜", "土", "达斡尔", "仫佬", "羌", "布朗", "撒拉",
    "毛南", "仡佬", "锡伯", "阿昌", "普米", "塔吉克", "怒", "乌孜别克", "俄罗斯",
    "鄂温克", "德昂", "保安", "裕固", "京", "塔塔尔", "独龙", "鄂伦春", "赫哲",
    "门巴", "珞巴", "基诺", "高山",
)  # fmt: skip

# Suffixes that end an official name; the part before is the common short name.
_NAME_SUFFIXES = (
    "特别行政区", "自治区", "自治州", "自治县", "自治旗", "地区", "林区", "新区",
    "省", "市", "盟", "州",
)  # fmt: skip

# A short name (深圳, 广东) must not be followed by one of these: "中山路" is a
# road, not 中山市; "吉林市" is the city, not the province 吉林 + "市".
_AFTER_SHORT_FORBIDDEN = frozenset("省市区县州盟旗路街道巷弄里村镇乡")
_AFTER_SHORT_FORBIDDEN_PAIRS = ("大道", "胡同", "大街", "公路")

# Leading noise before the first division and between detail and divisions.
_COUNTRY_PREFIXES = ("中华人民共和国", "中国")
_DETAIL_LEADING_NOISE = " ,，、.。:：-－—_/"

# Control/format characters (C0, DEL, C1, zero-width, bidi overrides, line
# separators, BOM, lone surrogates) and markup/injection characters. Checked
# after NFKC, so full-width look-alikes (＜, ＄, ＝) are caught too.
_CONTROL_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ud800-\udfff]"
)
_MARKUP_RE = re.compile(r"""[<>{}`\\|^$=;"'%&]""")

# Masking. Cut before the first digit or the first unit/room part (with any
# Chinese numerals leading into it: 三号楼, 五零二室), then keep up to the first
# street marker.
_CUT_RE = re.compile(
    r"\d|[一二三四五六七八九十百千零〇两壹贰叁肆伍陆柒捌玖拾]*(?:[号栋幢室楼层座户]|单元)"
)
_STREET_MARKERS = ("大道", "路", "街", "道", "巷", "弄", "胡同", "里", "村", "镇", "乡")
MAX_STREET_LENGTH = 20
# A street that names a person is not shown: hand-over words ("转交", "李四收",
# "王先生") and, where the parties' names are known, any two consecutive characters
# of a name (Han) or any Latin name part of two letters or more.
_PERSON_RE = re.compile(r"收件|收货|转交|代收|交给|先生|女士|小姐|^[\u3400-\u9fff·]{2,4}[收转]")
_PERSON_RE_CHARS = frozenset("收转代交先女小")  # a match of _PERSON_RE holds one of these
_LATIN_PART_RE = re.compile(r"[A-Za-z]{2,}")


@dataclass(frozen=True, slots=True)
class Address:
    """A resolved address. ``detail`` is personal data; ``repr`` leaves it out."""

    province: str
    city: str
    district: str
    adcode: str  # 6-digit district code (routing field, kept clear)
    detail: str = field(repr=False)  # street, number, building, unit, room


# Address(...) costs a fifth of a resolve; see domain/slot_setters.
_SET_PROVINCE, _SET_CITY, _SET_DISTRICT, _SET_ADCODE, _SET_DETAIL = slot_setters(
    Address, ("province", "city", "district", "adcode", "detail")
)


def _make_address(province: str, city: str, district: str, adcode: str, detail: str) -> Address:
    """Same as ``Address(province, city, district, adcode, detail)``, faster."""
    address: Address = object.__new__(Address)
    _SET_PROVINCE(address, province)
    _SET_CITY(address, city)
    _SET_DISTRICT(address, district)
    _SET_ADCODE(address, adcode)
    _SET_DETAIL(address, detail)
    return address


def _ethnic_stem(name: str) -> str | None:
    """Place part of an autonomous unit's name: 白沙黎族自治县 -> 白沙."""
    best: int | None = None
    for group in _ETHNIC_GROUPS:
        for form in (group + "族", group) if len(group) > 1 else (group + "族",):
            at = name.find(form, 2)
            if at != -1 and (best is None or at < best):
                best = at
    return name[:best] if best is not None else None


def _stem(name: str) -> tuple[str, str] | None:
    """(short name, suffix removed), e.g. 深圳市 -> (深圳, 市); None if too short."""
    for suffix in _NAME_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            stem = name[: -len(suffix)]
            if suffix.startswith("自治") or suffix == "特别行政区":
                stem = _ethnic_stem(stem) or stem
            return (stem, suffix) if len(stem) >= 2 else None
    return None


def _autonomous_county_aliases(name: str) -> list[str]:
    """酉阳土家族苗族自治县 -> [酉阳县, 酉阳自治县]; 鄂温克族自治旗 -> []."""
    for suffix, plain in (("自治县", "县"), ("自治旗", "旗")):
        if name.endswith(suffix):
            stem = _ethnic_stem(name[: -len(suffix)])
            if stem is not None and len(stem) >= 2:
                return [stem + plain, stem + suffix]
    return []


# An alias of one division: (text, is it a short name such as 深圳 or 广东).
_Alias = tuple[str, bool]
# Index entries, bucketed by the alias's first two characters, longest first:
#   province: (alias, length, short, province code)
#   city:     (alias, length, short, {province: cities}, all cities)
#   district: (alias, length, {city: districts}, {province: districts}, all districts)
_Codes = tuple[str, ...]
_ProvinceEntry = tuple[str, int, bool, str]
_CityEntry = tuple[str, int, bool, dict[str, _Codes], _Codes]
_DistrictEntry = tuple[str, int, dict[str, _Codes], dict[str, _Codes], _Codes]
_E = TypeVar("_E", _ProvinceEntry, _CityEntry, _DistrictEntry)
# Division prefixes starting with one head: text -> (codes, short leaf-city codes), and
# the distinct lengths, longest first (see AddressResolver._prefix_table).
_PrefixTable = tuple[dict[str, tuple[_Codes, _Codes]], tuple[int, ...]]


def _blocked_after_short(text: str, end: int) -> bool:
    """Whether text at ``end`` may not follow a short name."""
    return end < len(text) and (
        text[end] in _AFTER_SHORT_FORBIDDEN or text.startswith(_AFTER_SHORT_FORBIDDEN_PAIRS, end)
    )


def _province_aliases(province: Division) -> list[_Alias]:
    aliases: list[_Alias] = [(province.name, False)]
    stemmed = _stem(province.name)
    if stemmed is not None:
        stem, suffix = stemmed
        aliases.append((stem, True))
        if suffix == "自治区":  # 广西省, 新疆自治区: common in the wild, harmless
            aliases += [(stem + "省", False), (stem + "自治区", False)]
    if province.name == "内蒙古自治区":
        aliases.append(("内蒙", True))
    return list(dict.fromkeys(aliases))


def _city_aliases(city: Division, official: set[str]) -> list[_Alias]:
    aliases: list[_Alias] = [(city.name, False)]
    aliases += [(alias, False) for alias in _autonomous_county_aliases(city.name)]
    stemmed = _stem(city.name)
    if stemmed is not None:
        stem, suffix = stemmed
        if stem not in official:
            aliases.append((stem, True))
        if suffix == "自治州" and stem + "州" not in official:
            aliases.append((stem + "州", False))  # 延边州, 恩施州
    return list(dict.fromkeys(aliases))


def _group(
    aliases: dict[str, list[_Alias]], parent: dict[str, str]
) -> dict[str, tuple[bool, dict[str, list[str]], list[str]]]:
    """alias -> (short, {parent: codes}, codes), merging divisions spelt alike."""
    grouped: dict[str, tuple[bool, dict[str, list[str]], list[str]]] = {}
    for code in sorted(aliases):
        for alias, short in aliases[code]:
            was_short, by_parent, codes = grouped.get(alias, (True, {}, []))
            by_parent.setdefault(parent[code], []).append(code)
            codes.append(code)
            grouped[alias] = (was_short and short, by_parent, codes)
    return grouped


def _bucket(entries: list[_E]) -> dict[str, tuple[_E, ...]]:
    """Entries by the first two characters of their alias, longest alias first."""
    buckets: dict[str, list[_E]] = {}
    for entry in entries:
        buckets.setdefault(str(entry[0])[:2], []).append(entry)
    return {
        key: tuple(sorted(group, key=lambda e: -len(str(e[0])))) for key, group in buckets.items()
    }


class AddressResolver:
    """Resolves free-text addresses against a :class:`DivisionTable`.

    Province, city and district names with their aliases are indexed at
    construction by their first two characters; resolving tries the few
    aliases that can start the text at each stage (province, city, district;
    province and city may be omitted) and keeps the longest consistent parse.
    """

    __slots__ = (
        "_cities_of_province",
        "_city_index",
        "_district_index",
        "_districts_of_city",
        "_districts_of_province",
        "_heads",
        "_leaf_cities",
        "_names",
        "_prefix_tables",
        "_province_index",
    )

    def __init__(self, table: DivisionTable) -> None:
        leaves = table.districts()
        official = {d.name for d in leaves}
        official.update(d.name for d in table.provinces())
        province_aliases = {p.adcode: _province_aliases(p) for p in table.provinces()}
        city_aliases: dict[str, list[_Alias]] = {}
        district_aliases: dict[str, list[_Alias]] = {}
        province_of: dict[str, str] = {}
        city_of: dict[str, str] = {}
        names: dict[str, tuple[str, str, str]] = {}
        leaf_cities: set[str] = set()
        for leaf in leaves:
            province, city, district = table.path(leaf.adcode)
            names[leaf.adcode] = (province.name, city.name, district.name)
            province_of[leaf.adcode] = province.adcode
            if city.adcode != province.adcode:
                province_of[city.adcode] = province.adcode
                if city.adcode not in city_aliases:
                    city_aliases[city.adcode] = _city_aliases(city, official)
            if city.adcode == leaf.adcode:  # 东莞市, 仙桃市: no district part
                leaf_cities.add(leaf.adcode)
                continue
            city_of[leaf.adcode] = city.adcode
            siblings = {d.name for d in table.children(city.adcode)}
            district_aliases[leaf.adcode] = [(leaf.name, False)] + [
                (alias, False)
                for alias in _autonomous_county_aliases(leaf.name)
                if alias not in siblings
            ]

        self._province_index: dict[str, tuple[_ProvinceEntry, ...]] = _bucket(
            [
                (alias, len(alias), short, code)
                for code, aliases in province_aliases.items()
                for alias, short in aliases
            ]
        )
        self._city_index: dict[str, tuple[_CityEntry, ...]] = _bucket(
            [
                (alias, len(alias), short, _freeze(by_province), tuple(codes))
                for alias, (short, by_province, codes) in _group(city_aliases, province_of).items()
            ]
        )
        district_by_province = _group(district_aliases, province_of)
        self._district_index: dict[str, tuple[_DistrictEntry, ...]] = _bucket(
            [
                (
                    alias,
                    len(alias),
                    _freeze(by_city),
                    _freeze(district_by_province[alias][1]),
                    tuple(codes),
                )
                for alias, (_, by_city, codes) in _group(district_aliases, city_of).items()
            ]
        )
        self._leaf_cities = frozenset(leaf_cities)
        self._names = names
        # What the prefix tables are built from: the same entries, keyed by parent.
        self._cities_of_province: dict[str, list[tuple[str, bool, _Codes]]] = {}
        for entries in self._city_index.values():
            for alias, _, short, by_province, _ in entries:
                for p_code, cities in by_province.items():
                    self._cities_of_province.setdefault(p_code, []).append((alias, short, cities))
        self._districts_of_province: dict[str, list[tuple[str, _Codes]]] = {}
        self._districts_of_city: dict[str, list[tuple[str, _Codes]]] = {}
        for d_entries in self._district_index.values():
            for alias, _, by_city, by_province, _ in d_entries:
                for p_code, codes in by_province.items():
                    self._districts_of_province.setdefault(p_code, []).append((alias, codes))
                for c_code, codes in by_city.items():
                    self._districts_of_city.setdefault(c_code, []).append((alias, codes))
        self._prefix_tables: dict[str, _PrefixTable] = {}
        self._heads = frozenset((*self._province_index, *self._city_index, *self._district_index))

    def resolve(self, raw: str, field: str) -> Address:
        """Split ``raw`` into division and detail; raise FieldError if impossible.

        Of all consistent ways to read a division prefix (city within the
        province, district within the city) the longest wins; two different
        divisions read from the same prefix (南山区 alone) are an ambiguity.
        The error names ``field`` and a reason, never the input.
        """
        text = _normalise(raw, field)
        if text.startswith(_COUNTRY_PREFIXES):
            for prefix in _COUNTRY_PREFIXES:
                if text.startswith(prefix):
                    text = text[len(prefix) :].lstrip(" ")
                    break
        compact = text.replace(" ", "") if " " in text else text
        best_end, codes = self._lookup(compact)
        if not codes:
            # No division prefix at all: the search explains why (slow path, errors only).
            best_end, codes = self._search(compact, field)
        if len(codes) > 1:
            raise FieldError(field, "ambiguous district; add the province or city")
        if compact is not text:
            best_end = _position_after(text, best_end)
        detail = text[best_end:].lstrip(_DETAIL_LEADING_NOISE)
        if not detail:
            raise FieldError(field, "address has no street/house detail")
        (code,) = codes
        province_name, city_name, district_name = self._names[code]
        return _make_address(province_name, city_name, district_name, code, detail)

    def _lookup(self, compact: str) -> tuple[int, _Codes]:
        """The longest division prefix of ``compact`` and its codes, from the prefix
        table of ``compact``'s first two characters; (0, ()) when there is none."""
        head = compact[:2]
        table = self._prefix_tables.get(head)
        if table is None:
            if head not in self._heads:
                return 0, ()  # no alias starts so: the table stays bounded by the data
            table = self._prefix_tables[head] = self._prefix_table(head)
        prefixes, lengths = table
        n = len(compact)
        for length in lengths:
            if length > n:
                continue
            entry = prefixes.get(compact[:length])
            if entry is None:
                continue
            plain, short_leaf = entry
            if short_leaf and not _blocked_after_short(compact, length):
                return length, tuple(sorted({*plain, *short_leaf}))
            if plain:
                return length, plain
        return 0, ()

    def _prefix_table(self, head: str) -> _PrefixTable:
        """Every division prefix that ``_search`` can read and that starts with ``head``:
        text -> (codes, codes of short leaf-city names valid only when not followed by
        路/市/街…), with the distinct lengths longest first.

        It enumerates exactly the readings ``_search`` tries (province alias or none,
        then a city alias within it or none, then a district alias within the city,
        province or nothing), so the longest entry a text starts with is the longest
        reading ``_search`` finds, and two readings of the same length are the same
        prefix text (their codes are merged, as ``_search`` merges them). Built once per
        head, on first use: the tables of heads no address uses are never built.
        """
        plain: dict[str, set[str]] = {}
        short_leaf: dict[str, set[str]] = {}
        leaf_cities = self._leaf_cities
        districts_of_city = self._districts_of_city
        starts: list[tuple[str, str | None]] = [("", None)]
        starts += [(e[0], e[3]) for e in self._province_index.get(head, ())]
        for prefix, province in starts:
            if province is None:
                city_entries = [
                    (alias, short, every)
                    for alias, _, short, _, every in self._city_index.get(head, ())
                ]
                district_entries = [
                    (alias, every)
                    for alias, length, _, _, every in self._district_index.get(head, ())
                    if length >= 3  # a bare two-character name (城区, 南区, 单县) says too little
                ]
            else:
                city_entries = self._cities_of_province.get(province, [])
                district_entries = self._districts_of_province.get(province, [])
            for alias, short, cities in city_entries:
                text = prefix + alias
                for city in cities:
                    if city in leaf_cities:
                        if not short:
                            plain.setdefault(text, set()).add(city)
                        elif province is not None:
                            short_leaf.setdefault(text, set()).add(city)
                        continue
                    for d_alias, found in districts_of_city.get(city, ()):
                        plain.setdefault(text + d_alias, set()).update(found)
            for alias, found in district_entries:
                plain.setdefault(prefix + alias, set()).update(found)
        prefixes = {
            text: (tuple(sorted(plain.get(text, ()))), tuple(sorted(short_leaf.get(text, ()))))
            for text in {*plain, *short_leaf}
        }
        lengths = tuple(sorted({len(text) for text in prefixes}, reverse=True))
        return prefixes, lengths

    def _search(self, compact: str, field: str) -> tuple[int, _Codes]:
        """The reference search for a division prefix: every reading, longest wins
        (see ``resolve``). Raises FieldError with the reason when there is none."""
        n = len(compact)
        forbidden = _AFTER_SHORT_FORBIDDEN
        pairs = _AFTER_SHORT_FORBIDDEN_PAIRS
        city_index = self._city_index
        district_index = self._district_index
        leaf_cities = self._leaf_cities
        best_end = 0
        best: set[str] = set()

        head = compact[:2]
        starts: list[tuple[int, str | None]] = [(0, None)]
        for alias, end, _, code in self._province_index.get(head, ()):
            if compact.startswith(alias):
                starts.append((end, code))

        for pos, province in starts:
            key = head if pos == 0 else compact[pos : pos + 2]
            for alias, length, short, by_province, every in city_index.get(key, ()):
                if not compact.startswith(alias, pos):
                    continue
                end = pos + length
                # A short name followed by 路/市/街… ("中山路", "北京路") is not a city
                # on its own, but may still be followed by a district (唐山路南区,
                # 哈尔滨道里区, 济南市中区).
                blocked = short and (
                    province is None
                    or (end < n and (compact[end] in forbidden or compact.startswith(pairs, end)))
                )
                cities = every if province is None else by_province.get(province, ())
                for city in cities:
                    if city in leaf_cities:
                        # "中山公园…" is not 中山市: a short leaf name needs its province
                        if blocked:
                            continue
                        if end > best_end:
                            best_end, best = end, {city}
                        elif end == best_end:
                            best.add(city)
                        continue
                    for d_alias, d_length, by_city, _, _ in district_index.get(
                        compact[end : end + 2], ()
                    ):
                        if compact.startswith(d_alias, end):
                            found = by_city.get(city)
                            if found:
                                d_end = end + d_length
                                if d_end > best_end:
                                    best_end, best = d_end, set(found)
                                elif d_end == best_end:
                                    best.update(found)
            for d_alias, d_length, _, by_province, every in district_index.get(key, ()):
                if not compact.startswith(d_alias, pos):
                    continue
                if province is None:
                    if d_length < 3:
                        continue  # a bare two-character name (城区, 南区, 单县) says too little
                    found = every
                else:
                    found = by_province.get(province, ())
                if found:
                    d_end = pos + d_length
                    if d_end > best_end:
                        best_end, best = d_end, set(found)
                    elif d_end == best_end:
                        best.update(found)

        if not best:
            raise FieldError(field, self._explain(compact, starts))
        return best_end, tuple(sorted(best))

    def _explain(self, text: str, starts: list[tuple[int, str | None]]) -> str:
        """Reason why no division prefix was found (slow path, errors only)."""
        reasons: set[str] = set()
        for pos, province in starts:
            if province is not None:
                reasons.add(_NO_DISTRICT)
            for alias, length, short, by_province, _ in self._city_index.get(
                text[pos : pos + 2], ()
            ):
                end = pos + length
                if not text.startswith(alias, pos) or (short and _blocked_after_short(text, end)):
                    continue
                if province is not None and province not in by_province:
                    reasons.add(_UNKNOWN if short else _CITY_NOT_IN_PROVINCE)
                elif any(
                    text.startswith(entry[0], end)
                    for entry in self._district_index.get(text[end : end + 2], ())
                ):
                    reasons.add(_DISTRICT_NOT_IN_CITY)
                elif province is None and short:
                    reasons.add(_SHORT_CITY_ALONE)
                else:
                    reasons.add(_NO_DISTRICT)
            for alias, _, _, by_province, _ in self._district_index.get(text[pos : pos + 2], ()):
                if text.startswith(alias, pos) and province not in (None, *by_province):
                    reasons.add(_DISTRICT_NOT_IN_PROVINCE)
        for reason in _EXPLANATIONS:
            if reason in reasons:
                return reason
        return _UNKNOWN


def _freeze(groups: dict[str, list[str]]) -> dict[str, _Codes]:
    return {key: tuple(codes) for key, codes in groups.items()}


_DISTRICT_NOT_IN_CITY = "district does not belong to the city"
_CITY_NOT_IN_PROVINCE = "city does not belong to the province"
_DISTRICT_NOT_IN_PROVINCE = "district does not belong to the province"
_SHORT_CITY_ALONE = "short city name without province; write the full name or the province"
_NO_DISTRICT = "address names no district or county"
_UNKNOWN = "address names no known province, city or district"
_EXPLANATIONS = (  # most specific first
    _DISTRICT_NOT_IN_CITY,
    _CITY_NOT_IN_PROVINCE,
    _DISTRICT_NOT_IN_PROVINCE,
    _SHORT_CITY_ALONE,
    _NO_DISTRICT,
)


def _position_after(text: str, count: int) -> int:
    """Index in ``text`` just after its first ``count`` non-space characters."""
    seen = 0
    for index, char in enumerate(text):
        if seen == count:
            return index
        if char != " ":
            seen += 1
    return len(text)


def _normalise(raw: str, field: str) -> str:
    if not isinstance(raw, str):
        raise FieldError(field, "address must be text")
    if len(raw) > MAX_ADDRESS_LENGTH:
        raise FieldError(field, f"address is longer than {MAX_ADDRESS_LENGTH} characters")
    text = raw if unicodedata.is_normalized("NFKC", raw) else unicodedata.normalize("NFKC", raw)
    if _MARKUP_RE.search(text) is not None or "://" in text:
        raise FieldError(field, "address contains markup or script characters")
    if not text.isprintable():
        if _CONTROL_RE.search(text) is not None:
            raise FieldError(field, "address contains control characters")
        text = " ".join(text.split())
        if not text.isprintable():
            raise FieldError(field, "address contains unprintable characters")
    elif text.startswith(" ") or text.endswith(" ") or "  " in text:
        text = " ".join(text.split())
    if not text:
        raise FieldError(field, "address is empty")
    return text


def street_part(detail: str, names: tuple[str, ...] = ()) -> str:
    """The street/road name that starts ``detail``, or "" if there is none.

    Looks only at the text before the first digit and before any
    building/unit/room part (号 栋 幢 单元 室 楼 层 座 户, with the Chinese
    numerals leading into it: 三号楼, 五零二室), and at most
    ``MAX_STREET_LENGTH`` characters. In that text, the markers 大道 路 街 道 巷
    弄 胡同 里 村 镇 乡 are tried in this order and the first occurrence of the
    first marker found ends the street: "科技园路12号" -> "科技园路",
    "三里屯路三号楼" -> "三里屯路", "3栋502室" -> "". A 街 that starts 街道
    (sub-district) is not a street. The result never contains a digit (ASCII,
    full-width or other) nor a Chinese-numeral room part.

    A street that looks like it names a person ("张三收科技园路") is dropped whole:
    hand-over words, or a part of one of ``names`` (the waybill's parties).
    """
    cut = _CUT_RE.search(detail, 0, MAX_STREET_LENGTH)
    head = detail[: cut.start()] if cut is not None else detail[:MAX_STREET_LENGTH]
    for marker in _STREET_MARKERS:
        at = head.find(marker, 1)
        if marker == "街":
            while at != -1 and head.startswith("街道", at):
                at = head.find(marker, at + 1)
        if at != -1:
            street = head[: at + len(marker)].strip()
            return "" if _names_a_person(street, names) else street
    return ""


def _names_a_person(street: str, names: tuple[str, ...]) -> bool:
    # Two addresses a row at import: the cheap tests first.
    if not _PERSON_RE_CHARS.isdisjoint(street) and _PERSON_RE.search(street) is not None:
        return True
    for name in names:
        if name.isascii():
            folded = street.casefold()
            if any(p.casefold() in folded for p in _LATIN_PART_RE.findall(name)):
                return True
            continue
        han = name.replace(" ", "") if " " in name else name
        for i in range(len(han) - 1):  # a pair with "·" matches no street: no harm
            if han[i : i + 2] in street:
                return True
    return False


def mask_address(address: Address, names: tuple[str, ...] = ()) -> str:
    """Division names + street name + "****"; nothing of the house/room part.

    "广东省深圳市南山区科技园路12号3栋502室" -> "广东省深圳市南山区科技园路****";
    a municipality is not repeated ("北京市朝阳区建国路****"), nor a city that is
    its own district ("广东省东莞市****"). ``names``: the waybill's parties; a
    street that shows part of one is left out (see `street_part`).
    """
    return (
        division_prefix(address.province, address.city, address.district)
        + street_part(address.detail, names)
        + MASK
    )


@functools.lru_cache(maxsize=4096)  # a few thousand divisions; two masks per imported row
def division_prefix(province: str, city: str, district: str) -> str:
    """ "广东省深圳市南山区", "北京市朝阳区", "广东省东莞市": no name said twice."""
    parts = [province]
    if city != province:
        parts.append(city)
    if district != city:
        parts.append(district)
    return "".join(parts)


def full_address(province: str, city: str, district: str, detail: str) -> str:
    """The address as a person writes it: divisions (kept clear for routing) + the
    sealed detail. This is what a reveal returns."""
    return division_prefix(province, city, district) + detail
