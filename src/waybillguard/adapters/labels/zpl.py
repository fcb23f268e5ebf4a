"""ZPL II labels for thermal printers (203 or 300 dpi).

Chinese text is sent as **stored graphics** rendered by us with Pillow, not as a
downloaded TrueType font. A stock printer has no Chinese font; downloading one
(``~DY`` + ``^A@``) needs flash space for a 10-20 MB CJK font (or a font subsetter
per batch), firmware that rasterises TrueType (many ZPL-compatible printers sold in
China do not), and the printer's rasteriser then decides how the text looks.
Graphics (``~DG`` to store, ``^XG`` to recall) are ZPL II on every printer that
speaks it, and they print exactly the glyphs of the PNG renderer.

One graphic per distinct glyph (character, size, weight): a batch to all of China
uses a few thousand, each defined once at the head of the stream; a label then
recalls them with ``^FO x,y ^XG``. The positions of runs of text (division names up
to 区/县, streets, digits, masks) are formatted once and reused: Chinese characters
are all one em wide, so a run lands at the same few places label after label.

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from operator import attrgetter
from typing import Any, Final

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
    Field,
    FittedText,
    LabelData,
    LabelLayout,
    TextBox,
    baselines,
    contents_text,
    extension_text,
    phone_number_text,
    printed_text,
    station_text,
)

DPIS: Final = (203, 300)
_MM_PER_INCH: Final = 25.4

# -- graphics ------------------------------------------------------------------------------

# Runs: digits, a mask, the division names (up to the last 省/市/区/县… before a digit
# or mask), or other text (a street).
_RUN_RE: Final = re.compile(
    r"[0-9]+|\*+|[^0-9*]*[省市区县旗州盟：:](?=[^省市区县旗州盟：:]*$|[^省市区县旗州盟：:]*[0-9*])|[^0-9*]+"
)


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
    """Object name of a glyph graphic: weight, size in dots, code point (8 characters)."""
    return f"{'B' if bold else 'R'}{px:02X}{ord(ch):05X}"


class _Definitions(dict[GlyphKey, str]):
    """The ``~DG`` command of each glyph, made on first use."""

    def __missing__(self, key: GlyphKey) -> str:
        glyph = GLYPHS[key]
        row_bytes = (glyph.image.width + 7) // 8
        data = compress_hex(glyph.image.tobytes(), row_bytes)
        total = row_bytes * glyph.image.height
        definition = f"~DGR:{glyph_name(*key)}.GRF,{total},{row_bytes},{data}\n"
        self[key] = definition
        return definition


_DEFINITIONS = _Definitions()


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: sets of them are cheap
class _Placed:
    """ZPL of text placed somewhere, the glyphs it recalls, and where the pen ends."""

    zpl: str
    glyphs: tuple[GlyphKey, ...]
    end_x: float = 0.0


_RUN_CACHE: Final = 200_000


class _Runs(dict[tuple[str, int, bool, float, int], _Placed]):
    """A run of text placed with the pen at (x, y): one ``^FO…^XG`` per inked glyph.
    Runs repeat from label to label (division names end in 省/市/区/县, streets in
    路/街; digits and masks are runs of their own) and, Chinese characters being all
    one em wide, land at the same few positions, so each is formatted once."""

    def __missing__(self, key: tuple[str, int, bool, float, int]) -> _Placed:
        text, px, bold, x, y = key
        parts: list[str] = []
        used: list[GlyphKey] = []
        for ch in text:
            glyph = GLYPHS[ch, px, bold]
            if not glyph.empty:
                used.append((ch, px, bold))
                parts.append(
                    f"^FO{round(x) + glyph.dx},{y + glyph.dy}^XGR:{glyph_name(ch, px, bold)}.GRF^FS"
                )
            x += glyph.advance
        placed = _Placed("".join(parts), tuple(used), x)
        if len(self) >= _RUN_CACHE:
            self.clear()
        self[key] = placed
        return placed


_RUNS = _Runs()


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
    runs: dict[tuple[str, float], _Placed]  # runs of one-line texts, by (run, pen x)


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

    def dots(self, mm: float) -> int:
        return round(mm * self.scale)

    def _slot(self, box: TextBox) -> _Slot:
        one_line = FittedText(box.size, ("",))
        return _Slot(
            box=box,
            field=box.field,
            px=self.dots(box.size),
            max_em=box.rect.w / box.size,
            y=round(baselines(box, one_line)[0] * self.scale),
            x=box.rect.x * self.scale if box.align == "left" else None,
            whole=box.field not in _UNIQUE_FIELDS,
            cache={},
            runs={},
        )

    def run(self, slot: _Slot, piece: str, x: float) -> _Placed:
        """A run of a one-line text in a left-aligned slot, remembered in the slot."""
        run = _RUNS[piece, slot.px, slot.box.bold, x, slot.y]
        if len(slot.runs) >= _RUN_CACHE:
            slot.runs.clear()
        slot.runs[piece, x] = run
        return run

    def lines(self, slot: _Slot, text: str) -> tuple[int, list[tuple[str, float, int]]]:
        """Pixel size and (line, pen x, baseline y) of ``text`` in a slot, in dots."""
        box, scale = slot.box, self.scale
        width = sum(map(advance, text))
        if width <= slot.max_em:  # one line at the box's size: most texts
            return slot.px, [(text, line_x(box, width * box.size) * scale, slot.y)]
        fitted = fit(text, box)
        return self.dots(fitted.size), [
            (line, line_x(box, text_width_em(line) * fitted.size) * scale, round(b * scale))
            for line, b in zip(fitted.lines, baselines(box, fitted), strict=True)
        ]

    def runs(self, slot: _Slot, text: str) -> list[_Placed | str]:
        """The placed runs of ``text`` in a slot, with a line break after each line."""
        px, lines = self.lines(slot, text)
        out: list[_Placed | str] = []
        runs, bold = _RUNS, slot.box.bold
        for line, x, y in lines:
            for piece in _RUN_RE.findall(line):
                run = runs.get((piece, px, bold, x, y)) or runs[piece, px, bold, x, y]
                out.append(run)
                x = run.end_x
            out.append("\n")
        return out

    def text(self, slot: _Slot, text: str) -> _Placed:
        """A comment naming the (masked) text, then its glyph graphics; remembered per
        slot where texts repeat whole (names, masked phones, stations, contents)."""
        placed = slot.cache.get(text)
        if placed is not None:
            return placed
        parts = [f"^FX{text}\n"]
        used: list[GlyphKey] = []
        for item in self.runs(slot, text):
            if isinstance(item, str):
                parts.append(item)
            else:
                parts.append(item.zpl)
                used += item.glyphs
        placed = _Placed("".join(parts), tuple(dict.fromkeys(used)))
        if slot.whole:
            if len(slot.cache) >= _FIELD_CACHE:
                slot.cache.clear()
            slot.cache[text] = placed
        return placed

    def stored_format(self) -> _Placed:
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
        used: list[GlyphKey] = []
        for slot in self.slots:
            if slot.field is None:
                placed = self.text(slot, slot.box.text)
                parts.append(placed.zpl)
                used += placed.glyphs
        parts.append("^XZ\n")
        return _Placed("".join(parts), tuple(used))


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


def _composed(cache: dict[Any, str], make: Callable[..., str]) -> Callable[..., str]:
    """``make`` remembered in ``cache`` (stations, contents, print times repeat)."""

    def get(*key: Any) -> str:
        k = key if len(key) > 1 else key[0]
        found = cache.get(k)
        if found is None:
            found = cache[k] = make(*key)
        return found

    return get


class _Stream:
    """The labels of one stream, column by column (all labels' recipient names, then
    all their phones …: a column of repeated texts is a few C-level dictionary
    look-ups), and every glyph they recall, defined once at the head of the stream."""

    def __init__(self, at: _Layout) -> None:
        self.at = at
        self.glyphs: dict[GlyphKey, None] = {}  # in first-use order
        self._seen: set[_Placed] = set()
        slots = {slot.field: slot for slot in at.slots if slot.field is not None}
        station = _composed({}, station_text)
        contents = _composed({}, contents_text)
        printed = _composed({}, printed_text)
        self.columns: list[tuple[_Slot, Callable[[Iterable[LabelData]], Iterable[str]]]] = [
            (slots[Field.SORT_CODE], partial(map, attrgetter("sort_code"))),
            (slots[Field.STATION], lambda ds: map(station, map(attrgetter("station"), ds))),
            (slots[Field.RECIPIENT_NAME], partial(map, attrgetter("recipient_name"))),
            (
                slots[Field.RECIPIENT_PHONE],
                lambda ds: map(phone_number_text, map(attrgetter("recipient_phone"), ds)),
            ),
            (
                slots[Field.RECIPIENT_EXTENSION],
                lambda ds: map(extension_text, map(attrgetter("recipient_phone"), ds)),
            ),
            (slots[Field.RECIPIENT_ADDRESS], partial(map, attrgetter("recipient_address"))),
            (slots[Field.SENDER_NAME], partial(map, attrgetter("sender_name"))),
            (slots[Field.SENDER_PHONE], partial(map, attrgetter("sender_phone"))),
            (slots[Field.SENDER_ADDRESS], partial(map, attrgetter("sender_address"))),
            (
                slots[Field.CONTENTS],
                lambda ds: map(contents, map(attrgetter("category"), ds), map(_weight, ds)),
            ),
            (slots[Field.PRINTED_AT], lambda ds: map(printed, map(attrgetter("printed_at"), ds))),
        ]
        number = slots[Field.TRACKING_NUMBER].box
        height = at.dots(number.size * 0.85)
        self.number_prefix = (
            f"^FO{at.dots(number.rect.x)},{at.dots(number.rect.y)}^A0N,{height},{height}"
            f"^FB{at.dots(number.rect.w)},1,0,C^FD"
        )
        self.head = f"^XA^XFR:{at.format_name}.ZPL^FS\n"
        self.qr_prefix = f"^FO{at.qr_origin[0]},{at.qr_origin[1]}^BQN,2,{at.qr_module}^FDMA,"
        self.bar_suffix = (
            f",{at.bar_top}^BY{at.bar_module},3,{at.bar_height}^BCN,{at.bar_height},N,N,N,A^FD"
        )

    def track(self, placed: Iterable[_Placed]) -> None:
        """Count the glyphs of placed texts not seen before in this stream."""
        new = set(placed) - self._seen
        if new:
            self._seen |= new
            for item in new:
                self.glyphs.update(dict.fromkeys(item.glyphs))

    def use(self, placed: _Placed) -> str:
        self.track((placed,))
        return placed.zpl

    def _whole(self, slot: _Slot, texts: list[str]) -> list[str]:
        """A column of texts that repeat: placed whole, one look-up each."""
        placed = list(map(slot.cache.get, texts))
        if None in placed:
            text_of = self.at.text
            placed = [p or text_of(slot, t) for p, t in zip(placed, texts, strict=True)]
        self.track(placed)  # type: ignore[arg-type]
        return list(map(_ZPL, placed))

    def _by_runs(self, slot: _Slot, texts: list[str]) -> list[str]:
        """A column of texts new on each label: placed run by run."""
        at, findall, runs_of = self.at, _RUN_RE.findall, self.at.runs
        runs = slot.runs
        x0, max_em = slot.x, slot.max_em
        used: list[_Placed] = []
        out: list[str] = []
        for text in texts:
            parts = ["^FX", text, "\n"]
            if x0 is not None and sum(map(advance, text)) <= max_em:
                x = x0
                for piece in findall(text):
                    run = runs.get((piece, x)) or at.run(slot, piece, x)
                    used.append(run)
                    parts.append(run.zpl)
                    x = run.end_x
                parts.append("\n")
            else:
                for item in runs_of(slot, text):
                    if isinstance(item, str):
                        parts.append(item)
                    else:
                        used.append(item)
                        parts.append(item.zpl)
            out.append("".join(parts))
        self.track(used)
        return out

    def labels(self, datas: list[LabelData]) -> list[str]:
        at = self.at
        columns = [
            (self._whole if slot.whole else self._by_runs)(slot, list(texts(datas)))
            for slot, texts in self.columns
        ]
        left, right = at.bar_span
        module = at.bar_module
        number_prefix, bar_suffix, qr_prefix = self.number_prefix, self.bar_suffix, self.qr_prefix
        tails = [
            f"{number_prefix}{d.tracking_number}^FS\n"
            f"^FO{(left + right - code128_width(d.tracking_number) * module) // 2}"
            f"{bar_suffix}{d.tracking_number}^FS\n"
            f"{qr_prefix}{d.qr_token}^FS\n^PQ1^XZ\n"
            for d in datas
        ]
        return list(map("".join, zip(repeat(self.head), *columns, tails)))


def _weight(data: LabelData) -> int:
    return data.weight_g


_ZPL = attrgetter("zpl")


def render_zpl(datas: Iterable[LabelData], layout: LabelLayout, dpi: int = 203) -> bytes:
    """One ZPL stream (UTF-8) for the labels, in order: the graphics they recall, the
    stored format, then one ``^XA…^XZ`` per label."""
    with gc_paused():
        return _render(datas, layout, dpi)


def _render(datas: Iterable[LabelData], layout: LabelLayout, dpi: int) -> bytes:
    at = _layout_at(layout, dpi)
    stream = _Stream(at)
    stored = stream.use(at.stored_format())
    labels = stream.labels(list(datas))
    if not labels:
        raise ValueError("no labels to render")
    head = "".join(map(_DEFINITIONS.__getitem__, stream.glyphs))
    return (head + stored + "".join(labels)).encode("utf-8")
