"""Barcode symbols for labels, as geometry: Code 128 bars and QR Code modules.

Both encoders are written for speed (a batch of thousands of labels encodes one
barcode and one QR code per label) and checked against independent decoders
(zxing-cpp) and encoders (segno, reportlab) by the tests.

**Code 128** (ISO/IEC 15417): subset B for text, subset C for runs of digits (two per
symbol), so "WG" + 13 digits is 145 modules wide including start, check and stop.

**QR Code** (ISO/IEC 18004), byte mode, error correction level M, versions 1-10
(up to 213 bytes): a delivery token of 73 characters is a version 5 symbol, 37x37
modules. The encoder fixes the data mask instead of scoring all eight: the payload is
ciphertext, so every mask gives a symbol of the same quality, and scoring is what
makes general-purpose encoders slow (segno takes about 3 ms a symbol, this one
about 40 µs). Per version the placement of every bit is computed once; a symbol is
then a few big-integer operations and one C-level gather.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from operator import itemgetter
from typing import Final

# -- Code 128 ----------------------------------------------------------------------------

# Bar/space widths of the 107 symbols (value 0-105, then stop).
_CODE128: Final = (
    "212222", "222122", "222221", "121223", "121322", "131222", "122213", "122312", "132212",
    "221213", "221312", "231212", "112232", "122132", "122231", "113222", "123122", "123221",
    "223211", "221132", "221231", "213212", "223112", "312131", "311222", "321122", "321221",
    "312212", "322112", "322211", "212123", "212321", "232121", "111323", "131123", "131321",
    "112313", "132113", "132311", "211313", "231113", "231311", "112133", "112331", "132131",
    "113123", "113321", "133121", "313121", "211331", "231131", "213113", "213311", "213131",
    "311123", "311321", "331121", "312113", "312311", "332111", "314111", "221411", "431111",
    "111224", "111422", "121124", "121421", "141122", "141221", "112214", "112412", "122114",
    "122411", "142112", "142211", "241211", "221114", "413111", "241112", "134111", "111242",
    "121142", "121241", "114212", "124112", "124211", "411212", "421112", "421211", "212141",
    "214121", "412121", "111143", "111341", "131141", "114113", "114311", "411113", "411311",
    "113141", "114131", "311141", "411131", "211412", "211214", "211232", "2331112",
)  # fmt: skip
_START_B: Final = 104
_START_C: Final = 105
_CODE_B: Final = 100  # in subset C: switch to B
_CODE_C: Final = 99  # in subset B: switch to C
_STOP: Final = 106
CODE128_QUIET_MODULES: Final = 10
_DIGIT_RUN = re.compile(r"[0-9]{4,}")


def code128_values(text: str) -> list[int]:
    """Symbol values (start, data, check; no stop) for printable ASCII ``text``.

    Runs of at least four digits go in subset C (an odd run leaves its first digit in
    subset B, or its last when the run opens the text)."""
    if not text or not all(" " <= ch <= "~" for ch in text):
        raise ValueError("Code 128 here takes printable ASCII text")
    segments: list[tuple[str, str]] = []  # (subset, text)
    pos = 0
    for run in _DIGIT_RUN.finditer(text):
        start, end = run.span()
        digits = end - start
        if digits % 2:
            if start == 0:
                end -= 1  # keep the odd digit after the run, in B
            else:
                start += 1
        if start > pos:
            segments.append(("B", text[pos:start]))
        segments.append(("C", text[start:end]))
        pos = end
    if pos < len(text):
        segments.append(("B", text[pos:]))
    values: list[int] = []
    subset = ""
    for kind, part in segments:
        if kind != subset:
            if not values:
                values.append(_START_C if kind == "C" else _START_B)
            else:
                values.append(_CODE_C if kind == "C" else _CODE_B)
            subset = kind
        if kind == "C":
            values.extend(int(part[i : i + 2]) for i in range(0, len(part), 2))
        else:
            values.extend(ord(ch) - 32 for ch in part)
    check = (values[0] + sum(i * v for i, v in enumerate(values[1:], start=1))) % 103
    values.append(check)
    return values


@dataclass(frozen=True, slots=True)
class Bars:
    """A linear symbol: bars as (start, width) in modules, and its width in modules
    (without quiet zones)."""

    bars: tuple[tuple[int, int], ...]
    modules: int


@cache
def code128(text: str) -> Bars:
    bars: list[tuple[int, int]] = []
    x = 0
    for value in [*code128_values(text), _STOP]:
        for i, width in enumerate(map(int, _CODE128[value])):
            if i % 2 == 0:
                bars.append((x, width))
            x += width
    return Bars(tuple(bars), x)


_ZERO_DIGITS: Final = str.maketrans("123456789", "000000000")


def code128_width(text: str) -> int:
    """Width in modules of ``code128(text)``, cheaply: it depends only on where the
    digits are (every symbol is 11 modules wide), so it is remembered per shape."""
    return _shape_width(text.translate(_ZERO_DIGITS))


@cache
def _shape_width(shape: str) -> int:
    return code128(shape).modules


# -- QR Code -----------------------------------------------------------------------------

# Level M, versions 1-10: (error-correction codewords per block, data codewords of each
# block). ISO/IEC 18004:2015 table 9.
_M_BLOCKS: Final[dict[int, tuple[int, tuple[int, ...]]]] = {
    1: (10, (16,)),
    2: (16, (28,)),
    3: (26, (44,)),
    4: (18, (32, 32)),
    5: (24, (43, 43)),
    6: (16, (27, 27, 27, 27)),
    7: (18, (31, 31, 31, 31)),
    8: (22, (38, 38, 39, 39)),
    9: (22, (36, 36, 36, 37, 37)),
    10: (26, (43, 43, 43, 43, 44)),
}
_ALIGNMENT: Final[dict[int, tuple[int, ...]]] = {
    1: (),
    2: (6, 18),
    3: (6, 22),
    4: (6, 26),
    5: (6, 30),
    6: (6, 34),
    7: (6, 22, 38),
    8: (6, 24, 42),
    9: (6, 26, 46),
    10: (6, 28, 50),
}
QR_MASK: Final = 0  # (row + column) % 2 == 0
_LEVEL_M_BITS: Final = 0b00
QR_QUIET_MODULES: Final = 4


def _gf_tables() -> tuple[list[int], list[int]]:
    exp = [0] * 512
    log = [0] * 256
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        x <<= 1
        if x & 0x100:
            x ^= 0x11D
    for i in range(255, 512):
        exp[i] = exp[i - 255]
    return exp, log


_EXP, _LOG = _gf_tables()


def _gf_mul(a: int, b: int) -> int:
    return 0 if a == 0 or b == 0 else _EXP[_LOG[a] + _LOG[b]]


@cache
def _rs_table(ec: int) -> tuple[int, ...]:
    """For each value f, f times the generator polynomial (without its leading 1),
    packed big-endian into an int of ``ec`` bytes."""
    gen = [1]
    for i in range(ec):
        nxt = [0] * (len(gen) + 1)
        for j, coef in enumerate(gen):
            nxt[j] ^= coef
            nxt[j + 1] ^= _gf_mul(coef, _EXP[i])
        gen = nxt
    tail = gen[1:]
    return tuple(int.from_bytes(bytes(_gf_mul(f, c) for c in tail), "big") for f in range(256))


def _rs_remainder(data: bytes, ec: int) -> bytes:
    table = _rs_table(ec)
    shift = 8 * (ec - 1)
    mask = (1 << (8 * ec)) - 1
    rem = 0
    for byte in data:
        rem = ((rem << 8) & mask) ^ table[(rem >> shift) ^ byte]
    return rem.to_bytes(ec, "big")


def _bch(value: int, poly: int, degree: int) -> int:
    rem = value << degree
    top = poly.bit_length() - 1
    while rem.bit_length() - 1 >= top:
        rem ^= poly << (rem.bit_length() - 1 - top)
    return (value << degree) | rem


@dataclass(frozen=True, slots=True)
class _Version:
    version: int
    size: int
    ec: int
    blocks: tuple[int, ...]
    capacity_bits: int  # data codewords * 8
    count_bits: int
    gather: Callable[[bytes], tuple[int, ...]]  # row-major module -> (data bits + "01")[i]
    mask: int  # row-major bits to flip (data modules where the mask applies)


@cache
def _version(version: int) -> _Version:
    size = 17 + 4 * version
    func: dict[tuple[int, int], int] = {}  # function modules -> 0/1

    def finder(r0: int, c0: int) -> None:
        for r in range(-1, 8):
            for c in range(-1, 8):
                rr, cc = r0 + r, c0 + c
                if 0 <= rr < size and 0 <= cc < size:
                    ring = max(abs(r - 3), abs(c - 3))
                    func[rr, cc] = 1 if ring in (0, 1, 3) else 0

    finder(0, 0)
    finder(0, size - 7)
    finder(size - 7, 0)
    for i in range(8, size - 8):
        func[6, i] = func[i, 6] = 1 - i % 2
    centres = _ALIGNMENT[version]
    for r in centres:
        for c in centres:
            if {r, c} <= {6, centres[-1]} and (r, c) != (centres[-1], centres[-1]):
                continue  # would overlap a finder
            for dr in range(-2, 3):
                for dc in range(-2, 3):
                    func[r + dr, c + dc] = 1 if max(abs(dr), abs(dc)) != 1 else 0
    func[size - 8, 8] = 1  # the dark module
    fmt = _bch((_LEVEL_M_BITS << 3) | QR_MASK, 0x537, 10) ^ 0x5412
    bits = [(fmt >> i) & 1 for i in range(15)]  # bit 0 = least significant
    for i in range(6):
        func[i, 8] = bits[i]
    func[7, 8] = bits[6]
    func[8, 8] = bits[7]
    func[8, 7] = bits[8]
    for i in range(9, 15):
        func[8, 14 - i] = bits[i]
    for i in range(8):
        func[8, size - 1 - i] = bits[i]
    for i in range(8, 15):
        func[size - 15 + i, 8] = bits[i]
    if version >= 7:
        info = _bch(version, 0x1F25, 12)
        for i in range(18):
            bit = (info >> i) & 1
            a, b = size - 11 + i % 3, i // 3
            func[a, b] = func[b, a] = bit
    ec, blocks = _M_BLOCKS[version]
    total_bits = 8 * (sum(blocks) + ec * len(blocks))
    # Data placement: two-column strips from the right, upwards then downwards,
    # skipping the vertical timing column.
    order: list[tuple[int, int]] = []
    col = size - 1
    upward = True
    while col > 0:
        if col == 6:
            col -= 1
        rows = range(size - 1, -1, -1) if upward else range(size)
        for r in rows:
            for c in (col, col - 1):
                if (r, c) not in func:
                    order.append((r, c))
        upward = not upward
        col -= 2
    index = {rc: i for i, rc in enumerate(order)}
    zero, one = total_bits, total_bits + 1  # the constants after the data bits
    gather: list[int] = []
    mask = 0
    for r in range(size):
        for c in range(size):
            mask <<= 1
            if (r, c) in func:
                gather.append(one if func[r, c] else zero)
                continue
            i = index[r, c]
            gather.append(i if i < total_bits else zero)  # remainder bits are 0
            if (r + c) % 2 == 0:
                mask |= 1
    return _Version(
        version=version,
        size=size,
        ec=ec,
        blocks=blocks,
        capacity_bits=8 * sum(blocks),
        count_bits=8 if version < 10 else 16,
        gather=itemgetter(*gather),
        mask=mask,
    )


def qr_version_for(length: int) -> int:
    for version in _M_BLOCKS:
        v = _version(version)
        if 4 + v.count_bits + 8 * length <= v.capacity_bits:
            return version
    raise ValueError("too long for a version 1-10 QR code at level M")


@dataclass(frozen=True, slots=True)
class QrMatrix:
    """A QR symbol: ``rows`` of "0"/"1" strings ("1" dark), without the quiet zone."""

    version: int
    rows: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.rows)


def qr_matrix(payload: str | bytes) -> QrMatrix:
    """Encode ``payload`` (text as UTF-8) as a level-M QR Code in byte mode."""
    data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    v = _version(qr_version_for(len(data)))
    nbits = 4 + v.count_bits + 8 * len(data)
    value = (((0b0100 << v.count_bits) | len(data)) << (8 * len(data))) | int.from_bytes(
        data, "big"
    )
    terminator = min(4, v.capacity_bits - nbits)
    value <<= terminator
    nbits += terminator
    pad = -nbits % 8
    value <<= pad
    nbits += pad
    codewords = value.to_bytes(nbits // 8, "big")
    fill = v.capacity_bits // 8 - len(codewords)
    codewords += (b"\xec\x11" * (fill // 2 + 1))[:fill]
    n_blocks = len(v.blocks)
    short = v.blocks[0]
    out = bytearray(len(codewords) + v.ec * n_blocks)
    at = 0
    ec_start = len(codewords)
    for k, length in enumerate(v.blocks):
        block = codewords[at : at + length]
        at += length
        out[k : short * n_blocks : n_blocks] = block[:short]
        out[ec_start + k :: n_blocks] = _rs_remainder(block, v.ec)
    if at and v.blocks[-1] != short:  # the longer blocks' last data codewords
        longer = [k for k, length in enumerate(v.blocks) if length != short]
        tail_at = short * n_blocks
        for j, k in enumerate(longer):
            out[tail_at + j] = codewords[sum(v.blocks[: k + 1]) - 1]
    bits = (format(int.from_bytes(out, "big"), f"0{8 * len(out)}b") + "01").encode("ascii")
    modules = int(bytes(v.gather(bits)), 2) ^ v.mask
    flat = format(modules, f"0{v.size * v.size}b")
    n = v.size
    return QrMatrix(v.version, tuple(flat[i : i + n] for i in range(0, n * n, n)))


_DARK_RUN = re.compile("1+")


def dark_runs(row: str) -> list[tuple[int, int]]:
    """(start, length) of each run of dark modules in one row."""
    return [(m.start(), m.end() - m.start()) for m in _DARK_RUN.finditer(row)]
