"""ZPL II labels for thermal printers (203 or 300 dpi).

Chinese text is sent as **stored graphics** rendered by us with Pillow, not as a
downloaded TrueType font. A stock printer has no Chinese font; downloading one
(``~DY`` + ``^A@``) needs flash space for a 10-20 MB CJK font (or a font subsetter
per batch), firmware that rasterises TrueType (many ZPL-compatible printers sold in
China do not), and the printer's rasteriser then decides how the text looks.
Graphics (``~DG`` to store, ``^XG`` to recall) are ZPL II on every printer that
speaks it, and they print exactly the glyphs of the PNG renderer.

One graphic per distinct glyph (character, size, weight): a batch to all of China
uses a few thousand, each defined once at the head of the stream (in code-point
order, so a stream is the same whatever the process printed before); a label then
recalls them with ``^FO x,y ^XG``. The positions of runs of text (division names up
to 区/县, streets, digits, masks) are formatted once and reused: Chinese characters
are all one em wide, so a run lands at the same few places label after label.

Speed (a stream is built column by column, as bytes, and joined once): texts that
repeat whole (names, phones, stations, contents) are one dictionary look-up each; an
address of the usual shape (divisions, street, mask) on one line is three look-ups
of runs by (run, pen x), done for the whole column at once in C (``map`` over the
column); wrapped, shrunk or unusual texts, and runs at a new place, go the slow way
(``_Stream._one``). Both ways give the same bytes: a label is the same alone or in a
batch, and a stream the same whatever was printed before (``tests/labels/test_zpl.py``).

A stream is::

    ~DGR:R2804E2D.GRF,160,4,…   every glyph the batch uses, once, in ZPL's
                                compressed ASCII hex (',' ends a row, ':' repeats)
    ^XA^DFR:WG100180.ZPL^FS     the fixed part of the layout (frame, rules, captions),
    …^XZ                        stored once as a format
    ^XA^XFR:WG100180.ZPL^FS     one label: recall the format, then its own fields:
    ^FX广东省深圳市南山区…      each text field as a comment (the masked text it draws,
    ^FO120,528^XGR:R2806DF1.GRF^FS…  for audits and scans), then its glyphs
    ^FO…^A0N,…^FDWG…^FS         the tracking number in the printer's own font
    ^FO…^BY4,3,128^BCN,…,A^FDWG…^FS   Code 128 (subsets chosen by the printer, mode A)
    ^FO…^BQN,2,4^FDMA,wgq1.…^FS QR code of the delivery token, level M
    ^PQ1^XZ

Glyphs live in the printer's RAM (``R:``) until it is switched off; every stream
defines the glyphs it uses again, so a stream never depends on an earlier one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime
from itertools import chain, compress, count, repeat
from operator import attrgetter, methodcaller
from typing import Any, Final, TypeVar

from waybillguard.adapters.labels.codes import code128_width
from waybillguard.adapters.labels.glyphs import (
    GLYPHS,
    advance,
    fit,
    gc_paused,
    line_x,
    text_width_em,
)
from waybillguard.domain.label import (
    LINE_HEIGHT,
    Field,
    FittedText,
    LabelData,
    LabelLayout,
    TextBox,
    baselines,
    contents_text,
    phone_line_texts,
    printed_text,
    station_text,
)

DPIS: Final = (203, 300)
_MM_PER_INCH: Final = 25.4

# -- graphics ------------------------------------------------------------------------------

# Runs: digits, a mask, the division names (up to the last 省/市/区/县… before a digit
# or mask), or other text (a street). Every character of a text is in exactly one run.
_RUN_RE: Final = re.compile(
    r"[0-9]+|\*+|[^0-9*]*[省市区县旗州盟：:](?=[^省市区县旗州盟：:]*$|[^省市区县旗州盟：:]*[0-9*])|[^0-9*]+"
)


class _FullWidth(dict[str, bool]):
    """Whether every character of a run is one em wide and not a space (remembered)."""

    def __missing__(self, run: str) -> bool:
        if len(self) >= 200_000:
            self.clear()
        full = self[run] = all(advance(ch) == 1.0 and not ch.isspace() for ch in run)
        return full


_full_width: Final = _FullWidth().__getitem__


def compress_hex(raw: bytes, row_bytes: int) -> str:
    """Rows of a bilevel image in ZPL II's compressed ASCII hex (for ``~DG``): ',' ends
    a row whose rest is 0, ':' repeats the row above. Glyphs are mostly blank around
    their strokes, so this halves them at the cost of a few slices per row."""
    text = raw.hex().upper()
    width = 2 * row_bytes
    rows: list[str] = []
    previous = None
    for at in range(0, len(text), width):
        row = text[at : at + width]
        if row == previous:
            rows.append(":")
            continue
        previous = row
        kept = row.rstrip("0")
        rows.append(kept + "," if len(kept) < width else row)
    return "".join(rows)


GlyphKey = tuple[str, int, bool]


def glyph_name(ch: str, px: int, bold: bool) -> str:
    """Object name of a glyph graphic: weight, size in dots, code point (8 characters).
    A glyph has this name in every stream, so a printer that keeps the graphics of
    earlier streams overwrites them rather than filling its memory with copies."""
    return f"{'B' if bold else 'R'}{px:02X}{ord(ch):05X}"


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: one per glyph
class _Glyph:
    """A glyph as the ZPL places it, taken from the rendered glyph once: where its ink
    sits relative to the pen, how far the pen then moves, and the rest of its field
    (``^XGR:name.GRF^FS``; None for a glyph without ink, a space)."""

    key: GlyphKey
    dx: int
    dy: int
    advance: float
    recall: bytes | None
    rank: int  # the order of definitions in a stream: by code point, size, weight


class _Glyphs(dict[GlyphKey, _Glyph]):
    def __missing__(self, key: GlyphKey) -> _Glyph:
        glyph = GLYPHS[key]
        recall = None if glyph.empty else f"^XGR:{glyph_name(*key)}.GRF^FS".encode("ascii")
        ch, px, bold = key
        rank = (ord(ch) << 16) | (px << 1) | bold
        placed = self[key] = _Glyph(key, glyph.dx, glyph.dy, glyph.advance, recall, rank)
        return placed


_GLYPHS = _Glyphs()


class _Definitions(dict[GlyphKey, bytes]):
    """The ``~DG`` command of each glyph, made on first use."""

    def __missing__(self, key: GlyphKey) -> bytes:
        glyph = GLYPHS[key]
        row_bytes = (glyph.image.width + 7) // 8
        data = compress_hex(glyph.image.tobytes(), row_bytes)
        total = row_bytes * glyph.image.height
        definition = f"~DGR:{glyph_name(*key)}.GRF,{total},{row_bytes},{data}\n".encode("ascii")
        self[key] = definition
        return definition


_DEFINITIONS = _Definitions()


def _definition(glyph: _Glyph) -> bytes:
    return _DEFINITIONS[glyph.key]


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: sets of them are cheap
class _Placed:
    """ZPL of text placed somewhere, the glyphs it recalls, and where the pen ends."""

    zpl: bytes
    # the inked glyphs it recalls: one set per run text, shared by all its placements
    glyphs: frozenset[_Glyph]
    end_x: float = 0.0


_ZPL: Final = attrgetter("zpl")
_GLYPHS_OF: Final = attrgetter("glyphs")
_NONE: Final[frozenset[_Glyph]] = frozenset()
_RANK: Final = attrgetter("rank")
_RUN_CACHE: Final = 200_000


class _InkedOf(dict[tuple[str, int, bool], frozenset[_Glyph]]):
    def __missing__(self, key: tuple[str, int, bool]) -> frozenset[_Glyph]:
        text, px, bold = key
        glyphs = _GLYPHS
        inked = (glyphs[ch, px, bold] for ch in text)
        found = frozenset(g for g in inked if g.recall is not None)
        if len(self) >= _RUN_CACHE:
            self.clear()
        self[key] = found
        return found


_INKED_OF = _InkedOf()


class _Runs(dict[tuple[str, int, bool, float, int], _Placed]):
    """A run of text placed with the pen at (x, y): one ``^FO…^XG`` per inked glyph.
    Runs repeat from label to label (division names end in 省/市/区/县, streets in
    路/街; digits and masks are runs of their own) and, Chinese characters being all
    one em wide, land at the same few positions, so each is formatted once."""

    def __missing__(self, key: tuple[str, int, bool, float, int]) -> _Placed:
        text, px, bold, x, y = key
        parts: list[bytes] = []
        glyphs = _GLYPHS
        for ch in text:
            glyph = glyphs[ch, px, bold]
            if glyph.recall is not None:
                parts.append(b"^FO%d,%d%s" % (round(x) + glyph.dx, y + glyph.dy, glyph.recall))
            x += glyph.advance
        placed = _Placed(b"".join(parts), _INKED_OF[text, px, bold], x)
        if len(self) >= _RUN_CACHE:
            self.clear()
        self[key] = placed
        return placed


_RUNS = _Runs()


@dataclass(frozen=True, slots=True, eq=False)
class _Step(_Placed):
    """A run placed on a line of a left-aligned box, with the line's width (em) up to
    its end. A pen x is one width so far, whichever runs led there (to within
    rounding, which _CLOSE covers), so a step depends only on where it starts."""

    em: float = 0.0


_MISSING: Final = _Step(b"", _NONE, float("nan"), float("inf"))  # a run not placed there yet
_END_X: Final = attrgetter("end_x")
_EM: Final = attrgetter("em")
# An address of the usual shape, split as _RUN_RE splits it: the division names up to
# the last 省/市/区/县…, the street, the mask; any other text matches as (None, None,
# None), never a run, so its look-ups miss.
_ADDRESS: Final = re.compile(
    r"([^0-9*]*[省市区县旗州盟：:])([^0-9*省市区县旗州盟：:]+)(\*+)|(?s:.*)"
)
_GROUPS: Final = methodcaller("groups")

# Sums of advances taken run by run and character by character may differ in their
# last bits; a text this close to its box's width is measured character by character,
# as fit_text measures it, so the ZPL breaks lines exactly where the PDF and PNG do.
_CLOSE: Final = 1e-9


# -- layout --------------------------------------------------------------------------------

_FIELD_CACHE: Final = 50_000
# Texts that are new on almost every label: laid out from cached runs, never whole.
_UNIQUE_FIELDS: Final = frozenset({Field.RECIPIENT_ADDRESS, Field.SENDER_ADDRESS})


@dataclass(slots=True)
class _Slot:
    """A text box of a layout at one resolution, with what a one-line text at the
    box's own size needs precomputed, and the ZPL of texts it has shown."""

    box: TextBox
    field: Field | None
    px: int
    max_em: float
    y: int  # baseline of a single line at the box's size, in dots
    x: float | None  # pen x of a one-line text, for a left-aligned box
    whole: bool  # texts repeat whole (names, phones, stations): cache them whole
    cache: dict[str, _Placed]  # short texts, placed whole
    # runs of a left-aligned box as steps: those of one-line texts at the box's size by
    # (run, pen x), those of other lines by (run, pen x, pixel size, baseline)
    first: dict[tuple[str, float], _Step]
    steps: dict[tuple[str, float, int, int], _Step]
    wrapped: dict[tuple[str, int, int], _Placed]  # lines of wrapped texts, by origin
    # pixel size and baselines of wrapped or shrunk texts, by (size, number of lines)
    geometry: dict[tuple[float, int], tuple[int, tuple[int, ...]]]
    # for a text wrapped onto two lines at the box's size (None if the box cannot hold
    # two): how many full-width characters the first line takes, the second's origin
    two_lines: tuple[int, tuple[int, int]] | None = None


class _Layout:
    """A layout at one resolution: slots, code geometry and the stored format.
    Built once per (layout, dpi) and kept for the process."""

    def __init__(self, layout: LabelLayout, dpi: int) -> None:
        self.layout = layout
        self.dpi = dpi
        self.scale = dpi / _MM_PER_INCH
        self.format_name = f"WG{layout.size.value.replace('x', '')}"
        self.slots = [self._slot(box) for box in layout.texts]
        barcode = layout.barcode
        self.bar_module = max(1, self.dots(barcode.module_mm))
        self.bar_span = (self.dots(barcode.rect.x), self.dots(barcode.rect.right))
        self.bar_top, self.bar_height = self.dots(barcode.rect.y), self.dots(barcode.rect.h)
        qr = layout.qr
        self.qr_module = max(1, self.dots(qr.module_mm))
        side = 37 * self.qr_module  # a version 5 symbol: a 73-character token
        self.qr_origin = (
            self.dots(qr.rect.x) + (self.dots(qr.rect.w) - side) // 2,
            self.dots(qr.rect.y) + (self.dots(qr.rect.h) - side) // 2,
        )
        self._stored: _Placed | None = None
        # two neighbouring fields placed together, by the key their texts are made from
        self.pairs: dict[tuple[Field, Field], dict[Any, _Placed]] = {}

    def dots(self, mm: float) -> int:
        return round(mm * self.scale)

    def _slot(self, box: TextBox) -> _Slot:
        one_line = FittedText(box.size, ("",))
        slot = _Slot(
            box=box,
            field=box.field,
            px=self.dots(box.size),
            max_em=box.rect.w / box.size,
            y=round(baselines(box, one_line)[0] * self.scale),
            x=box.rect.x * self.scale if box.align == "left" else None,
            whole=box.field not in _UNIQUE_FIELDS,
            cache={},
            first={},
            steps={},
            wrapped={},
            geometry={},
        )
        # as fit_text counts the lines a box holds, and _wrap where the first line ends
        lines_fit = max(1, min(box.max_lines, int((box.rect.h + 1e-6) / (box.size * LINE_HEIGHT))))
        if slot.x is not None and lines_fit >= 2:
            two = baselines(box, FittedText(box.size, ("", "")))
            if round(two[0] * self.scale) == slot.y:
                n1 = int(0.0 + slot.max_em + 1e-9)
                slot.two_lines = (n1, (slot.px, round(two[1] * self.scale)))
        return slot

    def step(self, slot: _Slot, origin: tuple[int, int], before: _Step | None, piece: str) -> _Step:
        """The step placing ``piece`` after ``before`` (at the left edge if None) on a
        line of a left-aligned slot that starts at ``origin`` (pixel size, baseline)."""
        x = slot.x if before is None else before.end_x
        assert x is not None
        px, y = origin
        one_line = origin == (slot.px, slot.y)
        found = slot.first.get((piece, x)) if one_line else slot.steps.get((piece, x, px, y))
        if found is not None:
            return found
        if len(slot.first) + len(slot.steps) >= _RUN_CACHE:
            slot.first.clear()
            slot.steps.clear()
        run = _RUNS[piece, px, slot.box.bold, x, y]
        em = text_width_em(piece) + (0.0 if before is None else before.em)
        made = _Step(run.zpl, run.glyphs, run.end_x, em)
        if one_line:
            slot.first[piece, x] = made
        else:
            slot.steps[piece, x, px, y] = made
        return made

    def steps(self, slot: _Slot, origin: tuple[int, int], line: str) -> list[_Step]:
        """The steps of a line of a left-aligned slot that starts at ``origin``."""
        steps: list[_Step] = []
        for piece in _RUN_RE.findall(line):
            steps.append(self.step(slot, origin, steps[-1] if steps else None, piece))
        return steps

    def line(self, slot: _Slot, origin: tuple[int, int], line: str) -> _Placed:
        """A line of a wrapped text in a left-aligned slot, remembered: the second
        lines of addresses ("路****") repeat, and so do many first lines."""
        key = (line, *origin)
        found = slot.wrapped.get(key)
        if found is None:
            steps = self.steps(slot, origin, line)
            inked = _NONE.union(*map(_GLYPHS_OF, steps))
            if len(slot.wrapped) >= _RUN_CACHE:
                slot.wrapped.clear()
            found = slot.wrapped[key] = _Placed(b"".join(map(_ZPL, steps)), inked)
        return found

    def lines(self, slot: _Slot, text: str) -> tuple[int, list[tuple[str, float, int]]]:
        """Pixel size and (line, pen x, baseline y) of ``text`` in a slot, in dots."""
        box, scale = slot.box, self.scale
        if slot.x is not None:  # left-aligned: every line starts at the box's left edge
            fitted = fit(text, box)
            found = slot.geometry.get((fitted.size, len(fitted.lines)))
            if found is None:
                found = slot.geometry[fitted.size, len(fitted.lines)] = (
                    self.dots(fitted.size),
                    tuple(round(b * scale) for b in baselines(box, fitted)),
                )
            x, (px, ys) = slot.x, found
            return px, [(line, x, y) for line, y in zip(fitted.lines, ys, strict=True)]
        width = text_width_em(text)
        if width <= slot.max_em:  # one line at the box's size: most texts
            return slot.px, [(text, line_x(box, width * box.size) * scale, slot.y)]
        fitted = fit(text, box)
        return self.dots(fitted.size), [
            (line, line_x(box, text_width_em(line) * fitted.size) * scale, round(b * scale))
            for line, b in zip(fitted.lines, baselines(box, fitted), strict=True)
        ]

    def placed_lines(self, slot: _Slot, text: str, used: list[_Placed]) -> list[bytes]:
        """The ZPL of ``text`` in a slot, run by run, a line break after each line; the
        runs it recalls are added to ``used``."""
        px, lines = self.lines(slot, text)
        out: list[bytes] = []
        runs, bold = _RUNS, slot.box.bold
        for line, x, y in lines:
            for piece in _RUN_RE.findall(line):
                run = runs.get((piece, px, bold, x, y)) or runs[piece, px, bold, x, y]
                used.append(run)
                out.append(run.zpl)
                x = run.end_x
            out.append(b"\n")
        return out

    def text(self, slot: _Slot, text: str) -> _Placed:
        """A comment naming the (masked) text, then its glyph graphics; remembered per
        slot where texts repeat whole (names, masked phones, stations, contents)."""
        placed = slot.cache.get(text)
        if placed is not None:
            return placed
        used: list[_Placed] = []
        zpl = b"".join([b"^FX", text.encode("utf-8"), b"\n", *self.placed_lines(slot, text, used)])
        placed = _Placed(zpl, _NONE.union(*map(_GLYPHS_OF, used)))
        if slot.whole:
            if len(slot.cache) >= _FIELD_CACHE:
                slot.cache.clear()
            slot.cache[text] = placed
        return placed

    def stored_format(self) -> _Placed:
        """Frame, rules and fixed captions, stored on the printer as a format (``^DF``)."""
        if self._stored is None:
            self._stored = self._format()
        return self._stored

    def _format(self) -> _Placed:
        layout, dots = self.layout, self.dots
        parts = [
            f"^XA^DFR:{self.format_name}.ZPL^FS\n",
            f"^CI28^PW{dots(layout.width)}^LL{dots(layout.height)}^LH0,0\n",
        ]
        for frame in layout.frames:
            r, t = frame.rect, max(1, dots(frame.width))
            x, y = dots(r.x), dots(r.y)
            parts.append(f"^FO{x},{y}^GB{dots(r.right) - x},{dots(r.bottom) - y},{t}^FS\n")
        for rule in layout.rules:
            t = max(1, dots(rule.width))
            x, y = dots(rule.x1), dots(rule.y1)
            if rule.y1 == rule.y2:  # horizontal
                parts.append(f"^FO{x},{y - t // 2}^GB{dots(rule.x2) - x},{t},{t}^FS\n")
            else:
                parts.append(f"^FO{x - t // 2},{y}^GB{t},{dots(rule.y2) - y},{t}^FS\n")
        zpl = [part.encode("ascii") for part in parts]
        used: list[frozenset[_Glyph]] = []
        for slot in self.slots:
            if slot.field is None:
                placed = self.text(slot, slot.box.text)
                zpl.append(placed.zpl)
                used.append(placed.glyphs)
        zpl.append(b"^XZ\n")
        return _Placed(b"".join(zpl), _NONE.union(*used))


_LAYOUTS: dict[tuple[LabelLayout, int], _Layout] = {}


def _layout_at(layout: LabelLayout, dpi: int) -> _Layout:
    if dpi not in DPIS:
        raise ValueError(f"ZPL labels are 203 or 300 dpi, not {dpi}")
    key = (layout, dpi)
    found = _LAYOUTS.get(key)
    if found is None:
        found = _LAYOUTS[key] = _Layout(layout, dpi)
    return found


# -- labels --------------------------------------------------------------------------------

K = TypeVar("K", bound=Hashable)


def _destination(key: tuple[str, str]) -> tuple[str, str]:
    sort_code, station = key
    return sort_code, station_text(station)


def _contents(key: tuple[str, int, datetime]) -> tuple[str, str]:
    category, weight_g, printed_at = key
    return contents_text(category, weight_g), printed_text(printed_at)


# Code 128 widths by where the digits are (what code128_width measures): the width of
# a number is the width of its shape, digits as '0'
_DIGITS_AS_ZERO: Final = str.maketrans("0123456789", "0000000000")


class _Code128Width(dict[str, int]):
    def __missing__(self, shape: str) -> int:
        width = self[shape] = code128_width(shape)
        return width


_CODE128_WIDTH: Final = _Code128Width()


class _BarX(dict[int, int]):
    """x of a barcode by its width in modules: centred in the code's box."""

    def __init__(self, span: int, module: int) -> None:
        super().__init__()
        self.span, self.module = span, module

    def __missing__(self, modules: int) -> int:
        x = self[modules] = (self.span - modules * self.module) // 2
        return x


class _Stream:
    """The labels of one stream, column by column (all labels' recipient names, then
    all their phones …: a column of repeated texts is a few C-level dictionary
    look-ups), and every glyph they recall, defined once at the head of the stream."""

    def __init__(self, at: _Layout) -> None:
        self.at = at
        self.slots = {slot.field: slot for slot in at.slots if slot.field is not None}
        number = self.slots[Field.TRACKING_NUMBER].box
        height = at.dots(number.size * 0.85)
        self.head = f"^XA^XFR:{at.format_name}.ZPL^FS\n".encode("ascii")
        left, right = at.bar_span
        self.bar_x = _BarX(left + right, at.bar_module)
        # the rest of a label: number (printer font), Code 128, QR code, end
        self.tail = (
            f"^FO{at.dots(number.rect.x)},{at.dots(number.rect.y)}^A0N,{height},{height}"
            f"^FB{at.dots(number.rect.w)},1,0,C^FD%s^FS\n"
            f"^FO%d,{at.bar_top}^BY{at.bar_module},3,{at.bar_height}"
            f"^BCN,{at.bar_height},N,N,N,A^FD%s^FS\n"
            f"^FO{at.qr_origin[0]},{at.qr_origin[1]}^BQN,2,{at.qr_module}^FDMA,%s^FS\n"
            "^PQ1^XZ\n"
        )
        self.used: list[Iterable[_Placed]] = []  # every placed text, to find the glyphs

    def _whole(self, field: Field, texts: Iterable[str]) -> list[Iterable[bytes]]:
        """A column of texts that repeat: placed whole, one look-up each."""
        slot = self.slots[field]
        texts = list(texts)
        placed = list(map(slot.cache.get, texts))
        if None in placed:
            text_of = self.at.text
            placed = [p or text_of(slot, t) for p, t in zip(placed, texts, strict=True)]
        self.used.append(placed)  # type: ignore[arg-type]
        return [map(_ZPL, placed)]

    def _two_of(
        self, fields: tuple[Field, Field], keys: Iterable[K], make: Callable[[K], tuple[str, str]]
    ) -> list[Iterable[bytes]]:
        """Two neighbouring fields whose texts are made from keys that repeat (sorting
        code and station; contents and print time): both placed once per key and
        remembered, so a label is one C-level look-up."""
        cache: dict[K, _Placed] = self.at.pairs.setdefault(fields, {})
        keys = list(keys)
        placed = list(map(cache.get, keys))
        if None in placed:
            first, second = (self.slots[field] for field in fields)
            text = self.at.text
            for i, (key, found) in enumerate(zip(keys, placed, strict=True)):
                if found is None:
                    found = cache.get(key)
                    if found is None:
                        if len(cache) >= _FIELD_CACHE:
                            cache.clear()
                        a, b = make(key)
                        one, two = text(first, a), text(second, b)
                        found = cache[key] = _Placed(one.zpl + two.zpl, one.glyphs | two.glyphs)
                    placed[i] = found
        self.used.append(placed)  # type: ignore[arg-type]
        return [map(_ZPL, placed)]

    def _by_runs(self, field: Field, texts: Iterable[str]) -> list[Iterable[bytes]]:
        """A column of texts new on each label (addresses), placed run by run, as the
        columns of its parts: the comment (``^FX``, the text, a line break), then four
        parts of the text's ZPL.

        In a left-aligned box, an address of the usual shape (divisions, street, mask)
        whose three runs have been placed at these pen positions before, on one line,
        is three C-level look-ups (column by column: all first runs, then all second
        runs …, then a line break); any other text is placed by :meth:`_one`, its ZPL
        the first of the four parts."""
        slot = self.slots[field]
        texts = list(texts)
        used: list[_Placed] = []
        comment = [repeat(b"^FX"), list(map(str.encode, texts)), repeat(b"\n")]
        x0 = slot.x
        if x0 is None or not texts:
            body = [self._one(slot, text, used) for text in texts]
            self.used.append(used)
            return [*comment, body, *repeat(repeat(b""), 3)]
        shaped = map(_GROUPS, map(_ADDRESS.fullmatch, texts))
        divisions, streets, masks = zip(*shaped, strict=True)
        get, missing = slot.first.get, repeat(_MISSING)
        first = list(map(get, zip(divisions, repeat(x0)), missing))
        second = list(map(get, zip(streets, map(_END_X, first), strict=True), missing))
        third = list(map(get, zip(masks, map(_END_X, second), strict=True), missing))
        parts = [list(map(_ZPL, first)), list(map(_ZPL, second)), list(map(_ZPL, third))]
        ends = [b"\n"] * len(texts)
        # unknown runs (width infinite), or a line too long or too close to the width:
        # on two lines by known runs where it can be (see _two_lines), else by _one
        two_lines = self._two_lines
        for i in compress(count(), map((slot.max_em - _CLOSE).__le__, map(_EM, third))):
            second[i] = third[i] = _MISSING
            wrapped = two_lines(slot, first[i], (divisions[i], streets[i], masks[i]), used)
            if wrapped is None:
                first[i] = _MISSING
                parts[0][i] = self._one(slot, texts[i], used)
                parts[1][i] = parts[2][i] = ends[i] = b""
            else:
                parts[1][i], parts[2][i], ends[i] = wrapped
        self.used += (first, second, third, used)
        return [*comment, *parts, ends]

    def _two_lines(
        self,
        slot: _Slot,
        first: _Step,
        shape: tuple[str | None, str | None, str | None],
        used: list[_Placed],
    ) -> tuple[bytes, bytes, bytes] | None:
        """An address of the usual shape (divisions, street, mask) that ``fit`` wraps
        onto two lines at the box's own size, after its divisions: the first line is
        the divisions (the known step ``first``) and what follows of the street and the
        mask, the second the rest. The parts after the divisions, or None (the text is
        then placed by :meth:`_one`).

        Where ``fit`` breaks follows from the widths: every character of the divisions
        and the street is full width, one em (checked, per run), and the mask's
        characters have a width exact in binary, so these sums are the ones ``fit``
        makes, to the last bit."""
        divisions, street, mask = shape
        wrap = slot.two_lines
        if wrap is None or divisions is None or street is None or mask is None:
            return None
        if first is _MISSING or not (_full_width(divisions) and _full_width(street)):
            return None
        n1, origin2 = wrap
        cut = n1 - len(divisions)  # characters of the street the first line can take
        if cut < 0:
            return None
        if cut < len(street):
            line1 = [street[:cut]] if cut else []
            line2 = street[cut:] + mask
            width = float(n1)  # where the second line starts
        else:  # the break falls in the mask
            width, limit, star = float(len(divisions) + len(street)), slot.max_em + 1e-9, 0
            for ch in mask:
                if width + advance(ch) > limit:
                    break
                width += advance(ch)
                star += 1
            if star == len(mask):
                return None  # it fits on one line: not a wrap
            line1 = [street, mask[:star]] if star else [street]
            line2 = mask[star:]
        if width + text_width_em(line2) > width + slot.max_em + 1e-9:
            return None  # a third line, or a smaller size
        at, origin, step, head = self.at, (slot.px, slot.y), first, []
        for piece in line1:
            step = at.step(slot, origin, step, piece)
            head.append(step)
        tail = at.line(slot, origin2, line2)
        used += (*head, tail)
        return b"".join(map(_ZPL, head)), b"\n" + tail.zpl, b"\n"

    def _one(self, slot: _Slot, text: str, used: list[_Placed]) -> bytes:
        """The ZPL of one text of a column (after its comment), placed run by run (see
        :meth:`_by_runs`)."""
        at = self.at
        parts: list[bytes] = []
        if slot.x is None:
            parts += at.placed_lines(slot, text, used)
            return b"".join(parts)
        px, lines = at.lines(slot, text)
        if len(lines) == 1 and (px, lines[0][2]) == (slot.px, slot.y):  # as one line
            origin = (px, slot.y)
            step: _Step | None = None
            for piece in _RUN_RE.findall(text):
                step = at.step(slot, origin, step, piece)
                used.append(step)
                parts.append(step.zpl)
            parts.append(b"\n")
            return b"".join(parts)
        for line, _, y in lines:
            placed = at.line(slot, (px, y), line)
            used.append(placed)
            parts += (placed.zpl, b"\n")
        return b"".join(parts)

    def _tails(self, columns: Columns) -> Iterator[bytes]:
        """Tracking number (printer font), Code 128 and QR code: the printer draws them."""
        numbers = columns["tracking_number"]
        shapes = map(str.translate, numbers, repeat(_DIGITS_AS_ZERO))
        xs = map(self.bar_x.__getitem__, map(_CODE128_WIDTH.__getitem__, shapes))
        tails = map(
            self.tail.__mod__,
            zip(numbers, xs, numbers, columns["qr_token"], strict=True),
        )
        return map(str.encode, tails)

    def labels(self, columns: Columns) -> tuple[Iterator[bytes], set[_Glyph]]:
        """The labels' ZPL, one ``^XA…^XZ`` each in order (as parts, to be joined once
        with the rest of the stream), and every glyph they recall."""
        whole, two_of, by_runs = self._whole, self._two_of, self._by_runs
        phones = list(map(phone_line_texts, columns["recipient_phone"]))
        numbers, extensions = zip(*phones, strict=True) if phones else ((), ())
        texts = [
            two_of(
                (Field.SORT_CODE, Field.STATION),
                zip(columns["sort_code"], columns["station"], strict=True),
                _destination,
            ),
            whole(Field.RECIPIENT_NAME, columns["recipient_name"]),
            whole(Field.RECIPIENT_PHONE, numbers),
            whole(Field.RECIPIENT_EXTENSION, extensions),
            by_runs(Field.RECIPIENT_ADDRESS, columns["recipient_address"]),
            whole(Field.SENDER_NAME, columns["sender_name"]),
            whole(Field.SENDER_PHONE, columns["sender_phone"]),
            by_runs(Field.SENDER_ADDRESS, columns["sender_address"]),
            two_of(
                (Field.CONTENTS, Field.PRINTED_AT),
                zip(columns["category"], columns["weight_g"], columns["printed_at"], strict=True),
                _contents,
            ),
        ]
        glyphs: set[_Glyph] = set()
        glyphs.update(*map(_GLYPHS_OF, set(chain(*self.used))))  # distinct placements first
        # each label: its head, the parts of each field, its tail
        parts = chain.from_iterable(
            zip(repeat(self.head), *chain.from_iterable(texts), self._tails(columns))
        )
        return parts, glyphs


# -- the stream ----------------------------------------------------------------------------

Columns = dict[str, list[Any]]
COLUMN_NAMES: Final = tuple(f.name for f in dataclass_fields(LabelData))


def columns_of(datas: Sequence[LabelData]) -> Columns:
    """The labels as columns (each field of every label, in order): how a stream is
    built, and what a render process is sent."""
    return {name: list(map(attrgetter(name), datas)) for name in COLUMN_NAMES}


def label_parts(at: _Layout, columns: Columns) -> tuple[Iterator[bytes], set[_Glyph]]:
    """The ZPL of the labels in ``columns`` (parts, in order) and the glyphs they recall."""
    return _Stream(at).labels(columns)


def glyph_keys(glyphs: Iterable[_Glyph]) -> list[GlyphKey]:
    return [glyph.key for glyph in glyphs]


def glyphs_of(keys: Iterable[GlyphKey]) -> set[_Glyph]:
    return set(map(_GLYPHS.__getitem__, keys))


def assemble(
    at: _Layout, bodies: Iterable[Iterable[bytes | memoryview]], glyphs: set[_Glyph]
) -> bytes:
    """The whole stream: every glyph the labels and the stored format recall, each
    defined once in a fixed order (the stream is the same whichever runs were cached
    when it was made, and however its labels were shared out), the format, the labels."""
    stored = at.stored_format()
    glyphs.update(stored.glyphs)
    definitions = map(_definition, sorted(glyphs, key=_RANK))
    return b"".join(chain(definitions, (stored.zpl,), chain.from_iterable(bodies)))


Layout = _Layout  # as the render pool names it


def layout_at(layout: LabelLayout, dpi: int) -> _Layout:
    """The layout at a resolution, as ZPL places it (built once per process)."""
    return _layout_at(layout, dpi)


def render_zpl(datas: Iterable[LabelData], layout: LabelLayout, dpi: int = 203) -> bytes:
    """One ZPL stream (UTF-8) for the labels, in order: the graphics they recall, the
    stored format, then one ``^XA…^XZ`` per label. (``zpl_pool.ZplPool`` renders a
    large batch on several cores, to the same bytes.)"""
    at = _layout_at(layout, dpi)
    labels = list(datas)
    if not labels:
        raise ValueError("no labels to render")
    with gc_paused():
        parts, glyphs = label_parts(at, columns_of(labels))
        return assemble(at, (parts,), glyphs)
