"""China's administrative divisions down to county level (GB/T 2260 codes).

Pure data structure: the rows come from an adapter (see
``waybillguard.adapters.divisions``); nothing here reads files.

Codes are the six-digit GB/T 2260 codes ``PPCCDD``:

* ``PP0000`` is a province-level unit (province, autonomous region,
  municipality, special administrative region);
* ``PPCC00`` is a prefecture-level unit (city, prefecture, league,
  autonomous prefecture); municipalities also have one (``110100`` 北京市);
* anything else is a county-level unit (district, county, county-level city,
  banner). ``PP90DD`` units (仙桃市, 济源市, 石河子市, 五指山市 …) are governed
  by the province directly and have no prefecture above them.

An address resolves to a *resolvable unit*: a county-level unit, or a unit
without subdivisions (东莞市, 中山市, 儋州市, 嘉峪关市 have no districts).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Level = Literal["province", "city", "district"]

# Rows that are not administrative divisions, or are statistical placeholders
# some data sets carry ("市辖区" = "districts of the city", …). Skipped.
_PLACEHOLDER_NAMES = frozenset(
    {"市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划", "海域"}
)


@dataclass(frozen=True, slots=True)
class Division:
    """One administrative division."""

    adcode: str  # 6 digits
    name: str  # official name: "广东省", "深圳市", "南山区"
    level: Level
    parent: str | None


def _level_of(code: str) -> Level:
    if code[2:] == "0000":
        return "province"
    if code[4:] == "00":
        return "city"
    return "district"


def _normalise_code(adcode: str) -> str | None:
    """Six-digit code of a 6- or 12-digit row, None for a sub-county row."""
    if not (adcode.isascii() and adcode.isdigit() and len(adcode) in (6, 12)):
        raise ValueError("adcode must be 6 or 12 ASCII digits")
    if len(adcode) == 12:
        if adcode[6:] != "000000":
            return None  # township or village: below what we resolve
        adcode = adcode[:6]
    return adcode


class DivisionTable:
    """Immutable table of divisions with parent/child navigation."""

    __slots__ = ("_by_code", "_children", "_leaves", "_paths", "_provinces")

    def __init__(self, divisions: Iterable[Division]) -> None:
        by_code: dict[str, Division] = {}
        for division in divisions:
            if division.adcode in by_code:
                raise ValueError(f"duplicate adcode {division.adcode}")
            by_code[division.adcode] = division
        children: dict[str, list[Division]] = {}
        for division in by_code.values():
            if division.parent is not None:
                if division.parent not in by_code:
                    raise ValueError(f"adcode {division.adcode}: unknown parent")
                children.setdefault(division.parent, []).append(division)
        self._by_code = by_code
        self._children: dict[str, tuple[Division, ...]] = {
            code: tuple(sorted(kids, key=lambda d: d.adcode)) for code, kids in children.items()
        }
        self._provinces = tuple(
            sorted((d for d in by_code.values() if d.level == "province"), key=lambda d: d.adcode)
        )
        leaves = sorted(
            (d for d in by_code.values() if d.adcode not in self._children),
            key=lambda d: d.adcode,
        )
        self._leaves = tuple(leaves)
        self._paths = {d.adcode: self._compute_path(d) for d in leaves}

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str]]) -> DivisionTable:
        """Build from ``(adcode, name)`` rows; adcode has 6 or 12 digits.

        12-digit rows below county level (township, village) are skipped, as are
        pseudo-divisions (codes 90xxxx and above such as 苏鲁交界/海域, and
        placeholder names like 市辖区 or "…直辖"). A missing prefecture makes its
        counties hang directly under the province (香港's districts, 仙桃市).
        """
        names: dict[str, str] = {}
        for adcode, raw_name in rows:
            code = _normalise_code(adcode.strip())
            name = raw_name.strip()
            if not name:
                raise ValueError(f"adcode {adcode}: empty name")
            if code is None or code[:2] >= "90" or code[:2] < "11":
                continue
            if name in _PLACEHOLDER_NAMES or name.endswith("直辖"):
                continue
            previous = names.setdefault(code, name)
            if previous != name:
                raise ValueError(f"adcode {code}: two different names")
        divisions: list[Division] = []
        for code, name in names.items():
            level = _level_of(code)
            parent: str | None = None
            if level == "district":
                city = code[:4] + "00"
                parent = city if city in names else None
            if level != "province" and parent is None:
                province = code[:2] + "0000"
                parent = province if province in names else None
            divisions.append(Division(code, name, level, parent))
        return cls(divisions)

    def __len__(self) -> int:
        return len(self._by_code)

    def __contains__(self, adcode: object) -> bool:
        return adcode in self._by_code

    def get(self, adcode: str) -> Division | None:
        """The division with this six-digit code, or None."""
        return self._by_code.get(adcode)

    def children(self, adcode: str) -> list[Division]:
        """Direct subdivisions, ordered by code (empty for a leaf or unknown code)."""
        return list(self._children.get(adcode, ()))

    def provinces(self) -> list[Division]:
        """Province-level units, ordered by code."""
        return list(self._provinces)

    def districts(self) -> list[Division]:
        """Every unit an address resolves to, ordered by code.

        County-level units, plus prefecture-level cities without subdivisions
        (东莞市, 中山市, 儋州市, 嘉峪关市 …).
        """
        return list(self._leaves)

    def path(self, adcode: str) -> tuple[Division, Division, Division]:
        """(province, city, district) of a resolvable unit.

        Municipalities repeat the municipality as city (北京市, 北京市, 东城区);
        a city without districts is its own district (广东省, 东莞市, 东莞市);
        a county-level unit governed by the province directly is its own city
        (湖北省, 仙桃市, 仙桃市). Raises KeyError for an unknown code and
        ValueError for a unit that has subdivisions.
        """
        found = self._paths.get(adcode)
        if found is not None:
            return found
        if adcode in self._by_code:
            raise ValueError(f"adcode {adcode} has subdivisions; not a resolvable unit")
        raise KeyError(adcode)

    def _compute_path(self, leaf: Division) -> tuple[Division, Division, Division]:
        chain = [leaf]
        while chain[-1].parent is not None:
            chain.append(self._by_code[chain[-1].parent])
        chain.reverse()  # province first
        if len(chain) == 3:
            return chain[0], chain[1], chain[2]
        if len(chain) == 1:  # a province without subdivisions
            return leaf, leaf, leaf
        province = chain[0]
        if leaf.level == "city":  # city without districts
            return province, leaf, leaf
        if leaf.adcode[2:4] == "90":  # county-level unit governed by the province
            return province, leaf, leaf
        # district of a province-level unit without prefecture (香港, 澳门)
        return province, province, leaf
