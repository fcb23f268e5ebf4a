"""Streaming readers for waybill import files (CSV and JSON Lines).

The readers turn a file into :class:`RawRow` records - plain strings keyed by
the dotted field names in :data:`FIELDS` - and do nothing else: validation and
normalisation of names, phones and addresses happen later.

Design points:

* **Constant memory.** The file is read in blocks of at most
  ``min(max_line_bytes, 1 MiB)`` bytes; a line longer than ``max_line_bytes``
  is never assembled - it is skipped up to its newline and reported as an
  error row. Memory use stays within a small multiple of
  ``min(max_line_bytes, 1 MiB) + max_line_bytes`` whatever the size of the
  file or of a line. (A CSV quote left open swallows the following lines into
  one record until ``csv``'s field limit of 128 Ki characters ends it as a
  "malformed CSV" error row; that too is bounded.)
* **Speed.** Clean blocks are decoded whole and fed to ``csv.reader``
  through C iterators; JSON Lines go through ``orjson`` with an inlined fast
  path for the usual row shape. Slow paths only run for faulty blocks.
* **Encodings.** UTF-8, UTF-8 with BOM and GBK/GB18030 (what Chinese Excel
  writes). The encoding is sniffed from the first 64 KiB; a row that does not
  decode becomes an error row and reading continues.
* **No personal data in errors.** Error rows and :class:`InputFormatError`
  name a row number, a field and a reason - never a value, and never a header
  cell of the file (a header-less file's first row is data).
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import itertools
import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

import orjson

from waybillguard.domain.fields import ORDER_FIELDS, PII_FIELDS

__all__ = [
    "FIELDS",
    "REQUIRED_CSV_FIELDS",
    "InputFormatError",
    "RawRow",
    "count_rows_fast",
    "iter_rows",
]

FIELDS: Final = ORDER_FIELDS

# Columns a CSV file must have; merchant and parcel details are optional.
REQUIRED_CSV_FIELDS: Final = ("order_ref", *PII_FIELDS)

_SNIFF_BYTES: Final = 64 * 1024
_MAX_BLOCK: Final = 1024 * 1024


@dataclass(slots=True)
class RawRow:
    """One data row as read from the file, before any validation.

    ``row`` is 1-based: for CSV the header is not counted (row 1 is the first
    record after the header; blank records are counted but not yielded); for
    JSON Lines it is the physical line number (blank lines counted, not
    yielded). ``error`` is ``(field, reason)`` when the row could not be read at
    all; ``fields`` is then empty.
    """

    row: int
    fields: dict[str, str]
    error: tuple[str, str] | None


class InputFormatError(ValueError):
    """The file as a whole cannot be read (type, header, required columns)."""


# --------------------------------------------------------------------------
# header recognition


_ADDRESS_PARTS: Final = ("province", "city", "district")
_ADDRESS_PART_SUFFIXES: Final[dict[str, tuple[str, ...]]] = {
    "province": ("省", "省份"),
    "city": ("市", "城市"),
    "district": ("区", "区县", "县区", "区/县", "县/区"),
}


def _build_header_aliases() -> dict[str, str]:
    aliases: dict[str, str] = {}
    for name in FIELDS:
        aliases[name] = name
        aliases[name.replace(".", "_")] = name
    english = {
        "order_id": "order_ref",
        "order_no": "order_ref",
        "order_number": "order_ref",
        "orderref": "order_ref",
        "merchant_name": "merchant",
        "shop": "merchant",
        "shop_name": "merchant",
        "store": "merchant",
        "weight_g": "parcel.weight_g",
        "weight": "parcel.weight_g",
        "weight_grams": "parcel.weight_g",
        "category": "parcel.category",
        "parcel_type": "parcel.category",
        "item_category": "parcel.category",
    }
    aliases.update(english)
    for role, words in (
        ("sender", ("sender", "shipper", "from")),
        ("recipient", ("recipient", "receiver", "consignee", "to")),
    ):
        for word in words:
            aliases[f"{word}_name"] = f"{role}.name"
            aliases[f"{word}_phone"] = f"{role}.phone"
            aliases[f"{word}_mobile"] = f"{role}.phone"
            aliases[f"{word}_tel"] = f"{role}.phone"
            aliases[f"{word}_address"] = f"{role}.address"
            aliases[f"{word}_addr"] = f"{role}.address"

    chinese = {
        "订单号": "order_ref",
        "订单编号": "order_ref",
        "订单号码": "order_ref",
        "商家": "merchant",
        "商家名称": "merchant",
        "商户": "merchant",
        "商户名称": "merchant",
        "店铺": "merchant",
        "店铺名称": "merchant",
        "重量": "parcel.weight_g",
        "包裹重量": "parcel.weight_g",
        "物品重量": "parcel.weight_g",
        "物品类型": "parcel.category",
        "物品类别": "parcel.category",
        "物品种类": "parcel.category",
        "物品": "parcel.category",
        "品类": "parcel.category",
        "托寄物": "parcel.category",
        "内件品名": "parcel.category",
    }
    aliases.update(chinese)
    person_words = {
        "sender": ("寄件人", "发件人", "寄方", "发货人"),
        "recipient": ("收件人", "收货人", "收方"),
    }
    place_words = {"sender": ("寄件", "发件", "发货"), "recipient": ("收件", "收货")}
    name_suffixes = ("", "姓名", "名称")
    phone_suffixes = ("电话", "手机", "手机号", "手机号码", "电话号码", "联系电话", "联系方式")
    address_suffixes = ("地址", "详细地址")
    for role, persons in person_words.items():
        for word in persons:
            for suffix in name_suffixes:
                aliases[word + suffix] = f"{role}.name"
            for suffix in phone_suffixes:
                aliases[word + suffix] = f"{role}.phone"
            for suffix in address_suffixes:
                aliases[word + suffix] = f"{role}.address"
        for word in place_words[role]:
            for suffix in address_suffixes:
                aliases[word + suffix] = f"{role}.address"
        # Address split over columns (省 / 市 / 区 + 详细地址), joined when read.
        for word in (*place_words[role], *persons):
            for part, suffixes in _ADDRESS_PART_SUFFIXES.items():
                for suffix in suffixes:
                    aliases[word + suffix] = f"{role}.{part}"
    for role, english_words in (
        ("sender", ("sender", "shipper")),
        ("recipient", ("recipient", "receiver", "consignee")),
    ):
        for word in english_words:
            for part in _ADDRESS_PARTS:
                aliases[f"{word}_{part}"] = f"{role}.{part}"
            aliases[f"{word}_county"] = f"{role}.district"
    # "sender_name" may also be written "SenderName" / "sender name".
    for alias, key in list(aliases.items()):
        aliases.setdefault(alias.replace("_", ""), key)
    return aliases


_HEADER_ALIASES: Final = _build_header_aliases()

# Unit annotations of a weight column: "重量(g)", "重量（克）", "weight_kg" …
_GRAM_UNITS: Final = ("g", "克", "gram", "grams")
_KILO_UNITS: Final = ("kg", "千克", "公斤")
_FULLWIDTH: Final = str.maketrans(
    {"（": "(", "）": ")", "【": "(", "】": ")", "［": "(", "］": ")"}
)


def _normalise_header(cell: str) -> str:
    text = cell.replace("\ufeff", "").strip().translate(_FULLWIDTH).lower()
    text = "_".join(text.split())
    for ch in ".-":
        text = text.replace(ch, "_")
    return text


def _lookup_header(text: str) -> str | None:
    return _HEADER_ALIASES.get(text) or _HEADER_ALIASES.get(text.replace("_", ""))


def _split_unit(text: str) -> tuple[str, str | None]:
    """``"重量(kg)"`` -> ``("重量", "kg")``; ``"weight_g"`` stays as is."""
    if text.endswith(")") and "(" in text:
        base, _, unit = text[:-1].rpartition("(")
        return base.rstrip("_"), unit.strip("_")
    for unit in _KILO_UNITS:
        if text.endswith(unit) and len(text) > len(unit):
            return text[: -len(unit)].rstrip("_"), unit
    for unit in ("克", "g"):
        if text.endswith(unit) and len(text) > 1:
            return text[:-1].rstrip("_"), unit
    return text, None


@dataclass(frozen=True, slots=True)
class _Header:
    """Where each field sits in a CSV record."""

    width: int
    keys: tuple[str, ...]  # field names, in column order of ``indexes``
    indexes: tuple[int, ...]
    kilogram_weight: bool
    # "sender.address" -> columns of province, city, district to put in front
    address_parts: tuple[tuple[str, tuple[int, ...]], ...] = ()


def _map_header(cells: list[str]) -> _Header:
    found: dict[str, int] = {}
    kilogram = False
    for index, cell in enumerate(cells):
        text = _normalise_header(cell)
        if not text:
            continue
        key = _lookup_header(text)
        unit: str | None = None
        if key is None:
            base, unit = _split_unit(text)
            key = _lookup_header(base)
            if key is None:
                continue  # unknown column: ignored
            if key != "parcel.weight_g":
                if not text.endswith(")"):
                    continue  # "商家g" is not a column we know
                unit = None  # a note such as "收件人(必填)"
            elif unit not in _GRAM_UNITS and unit not in _KILO_UNITS:
                raise InputFormatError(
                    f"column {index + 1}: weight unit not understood; use grams or kilograms"
                )
        if key in found:
            raise InputFormatError(
                f"two columns for field {key} (columns {found[key] + 1} and {index + 1})"
            )
        found[key] = index
        if key == "parcel.weight_g" and unit in _KILO_UNITS:
            kilogram = True
    parts: list[tuple[str, tuple[int, ...]]] = []
    for role in ("sender", "recipient"):
        indexes = tuple(
            found.pop(f"{role}.{part}") for part in _ADDRESS_PARTS if f"{role}.{part}" in found
        )
        if indexes:
            parts.append((f"{role}.address", indexes))
    if not found:
        raise InputFormatError(
            "no recognisable header row (expected column names such as "
            "order_ref, recipient.name or 订单号, 收件人)"
        )
    missing = [name for name in REQUIRED_CSV_FIELDS if name not in found]
    if missing:
        raise InputFormatError("missing required columns: " + ", ".join(missing))
    ordered = sorted(found.items(), key=lambda item: item[1])
    return _Header(
        width=len(cells),
        keys=tuple(key for key, _ in ordered),
        indexes=tuple(index for _, index in ordered),
        kilogram_weight=kilogram,
        address_parts=tuple(parts),
    )


def _join_address(
    fields: dict[str, str], cells: list[str], parts: tuple[tuple[str, tuple[int, ...]], ...]
) -> None:
    """Put 省/市/区 columns in front of the detailed address (once each)."""
    for key, indexes in parts:
        pieces: list[str] = []
        for index in indexes:
            piece = cells[index].strip()
            if piece and (not pieces or pieces[-1] != piece):  # 北京市 北京市 朝阳区
                pieces.append(piece)
        detail = fields.get(key, "")
        if pieces and not detail.lstrip().startswith(pieces[0]):
            fields[key] = "".join(pieces) + detail.strip()


def _kilograms_to_grams(value: str) -> str:
    text = value.strip()
    try:
        grams = float(text) * 1000.0
    except ValueError:
        return value  # left for the validator to reject
    if grams != grams or grams in (float("inf"), float("-inf")):
        return value
    return str(round(grams))


# --------------------------------------------------------------------------
# encoding and physical lines


@dataclass(frozen=True, slots=True)
class _Encoding:
    codec: str  # name for bytes.decode
    label: str  # name in error messages
    skip: int  # BOM length
    newline: bytes = b"\n"  # b"\r" for classic Mac files ("CSV (Macintosh)" in Excel)


_UTF8 = _Encoding("utf-8", "UTF-8", 0)
_UTF8_BOM = _Encoding("utf-8", "UTF-8", len(codecs.BOM_UTF8))
_GB18030 = _Encoding("gb18030", "GB18030", 0)


def _sniff_encoding(sample: bytes, complete: bool) -> _Encoding:
    """Pick the encoding from the first bytes of a file.

    ``complete`` is True when ``sample`` is the whole file. A multibyte
    character cut at the end of the sample is not held against UTF-8. When the
    sample is not clean UTF-8, the lines holding non-ASCII bytes vote: a UTF-8
    file with one damaged row stays UTF-8 (only that row errors), a GBK file
    (where almost no Chinese line happens to be valid UTF-8) becomes GB18030.
    """
    if sample.startswith(codecs.BOM_UTF8):
        return _UTF8_BOM
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputFormatError("UTF-16 text is not supported; save the file as UTF-8 or GBK")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        pass
    else:
        return _UTF8
    lines = sample.split(b"\n")
    if not complete:
        lines.pop()  # possibly cut short
    good = bad = 0
    for line in lines:
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            bad += 1
        else:
            good += 1
    return _UTF8 if good > bad else _GB18030


def _segments(
    stream: BinaryIO, max_line_bytes: int, newline: bytes = b"\n"
) -> Iterator[bytes | None]:
    """Blocks of complete lines, or None for each line over the limit.

    Every block ends with ``newline`` except possibly the last one of the file,
    and holds no line longer than ``max_line_bytes`` (newline not counted).
    An over-long line is never assembled: its bytes are dropped as they are
    read, up to its newline.
    """
    size = max(1, min(max_line_bytes, _MAX_BLOCK))
    read = stream.read
    carry = b""
    skipping = False
    while True:
        chunk = read(size)
        if not chunk:
            break
        if skipping:
            end = chunk.find(newline)
            if end < 0:
                continue
            skipping = False
            chunk = chunk[end + 1 :]
            if not chunk:
                continue
        first = chunk.find(newline)
        if first < 0:
            carry += chunk
            if len(carry) > max_line_bytes:
                yield None
                carry = b""
                skipping = True
            continue
        last = chunk.rfind(newline)
        if len(carry) + first > max_line_bytes:
            yield None
            if last > first:
                yield chunk[first + 1 : last + 1]
        elif carry:
            yield carry + chunk[: last + 1]
        else:
            yield chunk[: last + 1]
        carry = chunk[last + 1 :]
    if carry:
        yield carry


def _too_long(max_line_bytes: int) -> tuple[str, str]:
    return ("row", f"line longer than {max_line_bytes} bytes")


def _bad_text(encoding: _Encoding) -> tuple[str, str]:
    return ("row", f"not valid {encoding.label} text")


_NUL_ERROR: Final = ("row", "contains NUL bytes")


# --------------------------------------------------------------------------
# JSON Lines

_TOP_KEYS: Final = (("order_ref", "order_ref"), ("merchant", "merchant"))
_GROUPS: Final = (
    ("sender", (("name", "sender.name"), ("phone", "sender.phone"), ("address", "sender.address"))),
    (
        "recipient",
        (
            ("name", "recipient.name"),
            ("phone", "recipient.phone"),
            ("address", "recipient.address"),
        ),
    ),
    ("parcel", (("weight_g", "parcel.weight_g"), ("category", "parcel.category"))),
)


class _ShapeError(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason


def _scalar(value: Any, field: str) -> str:
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is float:
        if value.is_integer():
            return str(int(value))
        return repr(value)
    raise _ShapeError(field, "expected a string or a number")


def _flatten(obj: Any) -> dict[str, str]:
    if type(obj) is not dict:
        raise _ShapeError("row", "not a JSON object")
    out: dict[str, str] = {}
    get = obj.get
    for key, name in _TOP_KEYS:
        value = get(key)
        if value is not None:
            out[name] = value if type(value) is str else _scalar(value, name)
    for group, members in _GROUPS:
        sub = get(group)
        if sub is None:
            continue
        if type(sub) is not dict:
            raise _ShapeError(group, "expected a JSON object")
        sub_get = sub.get
        for key, name in members:
            value = sub_get(key)
            if value is not None:
                out[name] = value if type(value) is str else _scalar(value, name)
    return out


def _json_error(line: bytes | str, encoding: _Encoding) -> tuple[str, str] | None:
    """Why ``line`` failed to parse, or None for a blank line."""
    if not line.strip():
        return None
    if isinstance(line, bytes):
        if b"\x00" in line:
            return _NUL_ERROR
        try:
            line.decode(encoding.codec)
        except UnicodeDecodeError:
            return _bad_text(encoding)
    elif "\x00" in line:
        return _NUL_ERROR
    return ("row", "not valid JSON")


def _jsonl_lines(body: bytes, encoding: _Encoding) -> list[bytes] | list[str | None]:
    """Split a block into lines; decode them unless UTF-8 (None: undecodable)."""
    if encoding.codec == "utf-8":
        return body.split(encoding.newline)
    decoded: list[str | None]
    try:
        decoded = list(body.decode(encoding.codec).split(encoding.newline.decode()))
    except UnicodeDecodeError:
        pass
    else:
        return decoded
    decoded = []
    for line in body.split(encoding.newline):
        try:
            decoded.append(line.decode(encoding.codec))
        except UnicodeDecodeError:
            decoded.append(None)
    return decoded


def _iter_jsonl(path: Path, encoding: _Encoding, max_line_bytes: int) -> Iterator[RawRow]:
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    join = "".join
    new_row = RawRow
    row = 0
    with path.open("rb", buffering=0) as stream:
        stream.seek(encoding.skip)
        for block in _segments(stream, max_line_bytes, encoding.newline):
            if block is None:
                row += 1
                yield new_row(row, {}, _too_long(max_line_bytes))
                continue
            body = block[:-1] if block.endswith(encoding.newline) else block
            for line in _jsonl_lines(body, encoding):
                row += 1
                if line is None:
                    yield new_row(row, {}, _bad_text(encoding))
                    continue
                try:
                    obj = loads(line)
                except decode_error:
                    error = _json_error(line, encoding)
                    if error is not None:
                        yield new_row(row, {}, error)
                    continue
                # The common shape: every field present, strings, weight an int or
                # a string. Anything else raises KeyError/TypeError and goes to
                # _flatten, which handles (and explains) every other shape.
                try:
                    sender = obj["sender"]
                    recipient = obj["recipient"]
                    parcel = obj["parcel"]
                    weight = parcel["weight_g"]
                    if type(weight) is not str:
                        if type(weight) is not int:
                            raise TypeError
                        weight = str(weight)
                    fields = {
                        "order_ref": obj["order_ref"],
                        "merchant": obj["merchant"],
                        "sender.name": sender["name"],
                        "sender.phone": sender["phone"],
                        "sender.address": sender["address"],
                        "recipient.name": recipient["name"],
                        "recipient.phone": recipient["phone"],
                        "recipient.address": recipient["address"],
                        "parcel.weight_g": weight,
                        "parcel.category": parcel["category"],
                    }
                    text = join(fields.values())  # TypeError unless all values are str
                except (KeyError, TypeError):
                    try:
                        fields = _flatten(obj)
                    except _ShapeError as exc:
                        yield new_row(row, {}, (exc.field, exc.reason))
                        continue
                    text = join(fields.values())
                if "\x00" in text:  # "\u0000" escapes: NUL, as in a CSV file
                    yield new_row(row, {}, _NUL_ERROR)
                    continue
                yield new_row(row, fields, None)


# --------------------------------------------------------------------------
# CSV


def _sniff_delimiter(first_line: str) -> str:
    counts = {delim: first_line.count(delim) for delim in (",", "\t", ";")}
    best = max(counts, key=lambda delim: counts[delim])
    return best if counts[best] else ","


class _LineFeed:
    """Text lines for ``csv.reader``, with a note of trouble per record.

    ``csv.reader`` pulls lines one at a time and never reads ahead, so after a
    record comes back, ``problem`` describes the lines that made up exactly
    that record. Clean blocks are handed over whole (as ``StringIO`` line
    iterators chained in C); a block with trouble goes line by line, each as
    its own one-line iterable, so ``problem`` is set exactly when csv pulls
    the faulty line.
    """

    __slots__ = ("encoding", "max_line_bytes", "problem", "segments")

    def __init__(
        self, segments: Iterator[bytes | None], encoding: _Encoding, max_line_bytes: int
    ) -> None:
        self.segments = segments
        self.encoding = encoding
        self.max_line_bytes = max_line_bytes
        self.problem: tuple[str, str] | None = None

    def lines(self) -> Iterator[str]:
        return itertools.chain.from_iterable(self._pieces())

    def _pieces(self) -> Iterator[Iterable[str]]:
        codec = self.encoding.codec
        for block in self.segments:
            if block is None:
                self.problem = _too_long(self.max_line_bytes)
                yield ("\n",)
                continue
            if b"\x00" not in block:
                try:
                    text = block.decode(codec)
                except UnicodeDecodeError:
                    pass
                else:
                    yield io.StringIO(text, newline="")
                    continue
            for raw in block.splitlines(keepends=True):
                try:
                    line = raw.decode(codec)
                except UnicodeDecodeError:
                    self.problem = _bad_text(self.encoding)
                    line = raw.decode(codec, "replace")
                if "\x00" in line:
                    self.problem = _NUL_ERROR
                    line = line.replace("\x00", "")
                yield (line,)


def _inspect_csv(sample: bytes, encoding: _Encoding) -> tuple[str, _Header]:
    """Delimiter and header from the start of the file (raises InputFormatError)."""
    text = sample[encoding.skip :].decode(encoding.codec, "replace")
    reader_lines = io.StringIO(text, newline="")
    for first_line in reader_lines:
        if first_line.strip():
            break
    else:
        raise InputFormatError("empty file: no header row")
    delimiter = _sniff_delimiter(first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                return delimiter, _map_header(cells)
    except csv.Error:
        pass
    raise InputFormatError("no recognisable header row")


def _iter_csv(
    path: Path, encoding: _Encoding, delimiter: str, max_line_bytes: int
) -> Iterator[RawRow]:
    with path.open("rb", buffering=0) as stream:
        stream.seek(encoding.skip)
        segments = _segments(stream, max_line_bytes, encoding.newline)
        feed = _LineFeed(segments, encoding, max_line_bytes)
        yield from _csv_records(feed, delimiter)


def _csv_records(feed: _LineFeed, delimiter: str) -> Iterator[RawRow]:
    reader = csv.reader(feed.lines(), delimiter=delimiter)
    header: _Header | None = None
    for cells in reader:
        if feed.problem is not None:
            break
        if any(cell.strip() for cell in cells):
            header = _map_header(cells)
            break
    if header is None:
        raise InputFormatError("no recognisable header row")
    width = header.width
    keys = header.keys
    pick = None if header.indexes == tuple(range(width)) else operator.itemgetter(*header.indexes)
    kilogram = header.kilogram_weight
    address_parts = header.address_parts
    new_row = RawRow
    row = 0
    while True:
        try:
            for cells in reader:
                row += 1
                if feed.problem is not None:
                    problem, feed.problem = feed.problem, None
                    yield new_row(row, {}, problem)
                    continue
                if len(cells) != width:
                    if not any(cell.strip() for cell in cells):
                        continue  # blank line
                    yield new_row(row, {}, ("row", f"expected {width} columns, found {len(cells)}"))
                    continue
                if not cells[0] and not any(cells):
                    continue  # a record of empty cells, as spreadsheets write for blank rows
                fields = dict(zip(keys, cells if pick is None else pick(cells)))  # noqa: B905
                if kilogram and "parcel.weight_g" in fields:
                    fields["parcel.weight_g"] = _kilograms_to_grams(fields["parcel.weight_g"])
                if address_parts:
                    _join_address(fields, cells, address_parts)
                yield new_row(row, fields, None)
            return
        except csv.Error:  # the reader resets itself and goes on with the next line
            row += 1
            feed.problem = None
            yield new_row(row, {}, ("row", "malformed CSV (unbalanced quotes or oversized field)"))


# --------------------------------------------------------------------------
# public entry points


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise InputFormatError("unsupported file type; expected .csv, .jsonl or .ndjson")


def iter_rows(path: Path, *, max_line_bytes: int = 65536) -> Iterator[RawRow]:
    """Stream the rows of a ``.csv``, ``.jsonl`` or ``.ndjson`` file.

    Whole-file problems (unknown extension, UTF-16, CSV without a recognisable
    header or missing required columns) raise :class:`InputFormatError` right
    here, before the first row; problems of single rows come back as
    :class:`RawRow` with ``error`` set and reading continues.
    """
    if max_line_bytes < 1:
        raise ValueError("max_line_bytes must be positive")
    path = Path(path)
    kind = _kind(path)
    with path.open("rb") as stream:
        sample = stream.read(_SNIFF_BYTES)
        complete = len(sample) < _SNIFF_BYTES or not stream.read(1)
    encoding = _sniff_encoding(sample, complete)
    if b"\n" not in sample and b"\r" in sample:
        encoding = dataclasses.replace(encoding, newline=b"\r")
    if kind == "csv":
        delimiter, _ = _inspect_csv(sample, encoding)
        return _iter_csv(path, encoding, delimiter, max_line_bytes)
    return _iter_jsonl(path, encoding, max_line_bytes)


def count_rows_fast(path: Path) -> int | None:
    """Rough number of data rows, for a progress bar (None when unknown).

    Counts newlines (a CSV header is subtracted); quoted multi-line CSV
    records and blank lines make it an over-estimate.
    """
    path = Path(path)
    try:
        kind = _kind(path)
    except InputFormatError:
        return None
    lines = 0
    newline = b"\n"
    last = newline
    try:
        if not path.is_file():  # a pipe cannot be read twice
            return None
        with path.open("rb", buffering=0) as stream:
            first = True
            while True:
                chunk = stream.read(_MAX_BLOCK)
                if not chunk:
                    break
                if first and b"\n" not in chunk and b"\r" in chunk:
                    newline = b"\r"
                first = False
                lines += chunk.count(newline)
                last = chunk[-1:]
    except OSError:
        return None
    if last != newline:
        lines += 1
    if kind == "csv":
        lines = max(0, lines - 1)
    return lines
