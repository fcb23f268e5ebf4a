"""The CJK font as the label renderers use it: advance widths for layout, Pillow faces
for raster output, and the fitted lines of each (text, box), computed once.

All three renderers lay text out with the same advances (the font's own, in em), so
a line breaks at the same character in the PDF, the PNG and the ZPL.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, lru_cache

from PIL import Image, ImageDraw, ImageFont

from waybillguard.adapters.fonts import cjk_font
from waybillguard.domain.label import FittedText, TextBox, fit_text

_MEASURE_PX = 1000


@cache
def pil_font(px: int) -> ImageFont.FreeTypeFont:
    """The CJK face at ``px`` pixels per em (loaded once per size)."""
    font = cjk_font()
    return ImageFont.truetype(str(font.path), px, index=font.subfont_index)


class _Advances(dict[str, float]):
    """Advance width of a character in em; measured on first use."""

    def __missing__(self, ch: str) -> float:
        width = pil_font(_MEASURE_PX).getlength(ch) / _MEASURE_PX
        self[ch] = width
        return width


ADVANCES = _Advances()
advance = ADVANCES.__getitem__


def text_width_em(text: str) -> float:
    return sum(map(advance, text))


@lru_cache(maxsize=1 << 16)
def fit(text: str, box: TextBox) -> FittedText:
    """``fit_text`` with this font's advances, remembered per (text, box)."""
    return fit_text(text, box, advance)


def line_x(box: TextBox, width: float) -> float:
    """Left edge (in the box's unit, mm) of a line ``width`` wide, by the alignment."""
    if box.align == "center":
        return box.rect.x + (box.rect.w - width) / 2
    if box.align == "right":
        return box.rect.right - width
    return box.rect.x


def bold_stroke(px: int) -> int:
    """Stroke width (pixels) that fakes a bold weight; the font has only a regular one."""
    return max(1, round(px * 0.035))


@dataclass(frozen=True, slots=True)
class Glyph:
    """One character rendered once at one pixel size: its ink as a bilevel image
    (ink = 1), where that ink sits relative to the pen on the baseline, and how far
    the pen then moves (in pixels, unrounded)."""

    image: Image.Image
    dx: int
    dy: int
    advance: float
    empty: bool  # no ink (a space)


class _GlyphCache(dict[tuple[str, int, bool], Glyph]):
    """Glyphs by (character, pixels per em, bold); rendered on first use. FreeType
    takes about 0.2 ms to render one CJK glyph of this font, so a label (a few hundred
    glyphs in three formats) is drawn from this cache, not from the font."""

    def __missing__(self, key: tuple[str, int, bool]) -> Glyph:
        ch, px, bold = key
        stroke = bold_stroke(px) if bold else 0
        pad = px + 2 * stroke
        canvas = Image.new("1", (2 * pad + px, 2 * pad + px), 0)
        ImageDraw.Draw(canvas).text(
            (pad, pad + px),
            ch,
            fill=1,
            font=pil_font(px),
            anchor="ls",
            stroke_width=stroke,
            stroke_fill=1,
        )
        box = canvas.getbbox()
        if box is None:
            glyph = Glyph(Image.new("1", (1, 1)), 0, 0, advance(ch) * px, True)
        else:
            ink = canvas.crop(box)
            glyph = Glyph(ink, box[0] - pad, box[1] - pad - px, advance(ch) * px, False)
        self[key] = glyph
        return glyph


GLYPHS = _GlyphCache()


def pen_positions(line: str, px: int, x0: float) -> list[int]:
    """Whole-pixel pen position of each character of a line starting at ``x0``."""
    positions: list[int] = []
    x = x0
    for ch in line:
        positions.append(round(x))
        x += advance(ch) * px
    return positions


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch renders. A batch allocates millions of
    small strings and tuples but no cycles, and the collector would walk the caches
    above again and again (it costs a third of a ZPL batch); reference counting frees
    everything as usual."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
