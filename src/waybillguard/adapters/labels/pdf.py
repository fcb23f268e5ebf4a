"""PDF labels: vector, one page per label, any number of labels in one file.

* Chinese text in the CJK TrueType font, embedded as a subset (reportlab's TTFont,
  /FontFile2 with a ToUnicode map), so every viewer shows it and the text layer can
  be searched and checked;
* the Code 128 bars and the QR modules are filled rectangles (no images): a bar is a
  whole number of 203-dpi dots wide and starts on that grid, so a 203-dpi thermal
  printer or ``pdftoppm -r 203`` reproduces the PNG's bars exactly;
* the frame, rules and fixed captions are one form XObject per file, drawn on every
  page by reference.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Final

from reportlab import rl_config
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas

from waybillguard.adapters.fonts import register_reportlab_cjk_font
from waybillguard.adapters.labels.codes import (
    CODE128_QUIET_MODULES,
    QR_QUIET_MODULES,
    code128,
    qr_matrix,
)
from waybillguard.adapters.labels.glyphs import advance, fit, gc_paused, line_x, text_width_em
from waybillguard.domain.label import (
    FittedText,
    LabelData,
    LabelLayout,
    TextBox,
    baselines,
    field_texts,
)

GRID_DPI = 203  # bars and modules snap to this printer grid
_DOT = 72 / GRID_DPI  # one 203-dpi dot in points
_FORM = "wgLabelTemplate"
_BOLD_LINE = 0.035  # stroke width of fake bold, in em
_TEXT_CACHE = 50_000
_DARK_RUN = re.compile("1+")


def _dots(value_mm: float) -> int:
    return round(value_mm * GRID_DPI / 25.4)


# PDF literal-string escapes for the bytes of a subset-encoded string.
_ESCAPES: Final = tuple(
    chr(b) if 32 <= b < 127 and chr(b) not in "()\\" else f"\\{b:03o}" for b in range(256)
)


def _pdf_string(data: bytes) -> str:
    return "".join(map(_ESCAPES.__getitem__, data))


class _Page:
    """Draws one label after another on a canvas. Text goes out as PDF text operators
    over the font's subsets (reportlab's documented ``splitString`` /
    ``getSubsetInternalName`` route for TrueType fonts), remembered per (box, text):
    names, stations and categories repeat from label to label."""

    def __init__(self, canvas: Canvas, layout: LabelLayout, font_name: str) -> None:
        self.canvas = canvas
        self.layout = layout
        self.font = pdfmetrics.getFont(font_name)
        self.doc = canvas._doc  # the document the font's subsets belong to
        self.height_pt = layout.height * mm
        self._texts: dict[tuple[int, str], str] = {}  # by (id of the box, text)
        self._barcode = self._barcode_geometry()
        self._qr_box = layout.qr

    def text_ops(self, box: TextBox, text: str) -> str:
        key = (id(box), text)
        ops = self._texts.get(key)
        if ops is not None:
            return ops
        # One line at the box's own size (most texts) needs no fitting.
        one_line = sum(map(advance, text)) <= box.rect.w / box.size
        fitted = FittedText(box.size, (text,)) if one_line else fit(text, box)
        size_pt = fitted.size * mm
        # The rendering mode is graphics state that outlives ET: set it every time.
        if box.bold:  # fill, then stroke the outline
            parts = [f"BT 0 g 2 Tr 0 G {size_pt * _BOLD_LINE:.3f} w\n"]
        else:
            parts = ["BT 0 g 0 Tr\n"]
        font, doc = self.font, self.doc
        for line, baseline in zip(fitted.lines, baselines(box, fitted), strict=True):
            x = line_x(box, text_width_em(line) * fitted.size) * mm
            parts.append(f"1 0 0 1 {x:.2f} {self.height_pt - baseline * mm:.2f} Tm\n")
            for subset, chunk in font.splitString(line, doc):
                name = font.getSubsetInternalName(subset, doc)
                parts.append(f"{name} {size_pt:.2f} Tf ({_pdf_string(chunk)}) Tj\n")
        parts.append("ET\n")
        ops = "".join(parts)
        if len(self._texts) > _TEXT_CACHE:
            self._texts.clear()
        self._texts[key] = ops
        return ops

    def _barcode_geometry(self) -> tuple[int, int, int, int, int]:
        box = self.layout.barcode
        module = max(1, _dots(box.module_mm))
        left, right = _dots(box.rect.x), _dots(box.rect.right)
        top, height = _dots(box.rect.y), _dots(box.rect.bottom) - _dots(box.rect.y)
        return module, left, right, top, height

    def barcode_ops(self, number: str) -> str:
        symbol = code128(number)
        module, left, right, top, height = self._barcode
        while module > 1 and (symbol.modules + 2 * CODE128_QUIET_MODULES) * module > right - left:
            module -= 1
        x0 = (left + right - symbol.modules * module) // 2
        ops = [f"q 0 g {_DOT:.6f} 0 0 {-_DOT:.6f} 0 {self.height_pt:.4f} cm\n"]
        ops += [
            f"{x0 + start * module} {top} {width * module} {height} re\n"
            for start, width in symbol.bars
        ]
        ops.append("f Q\n")
        return "".join(ops)

    def qr_ops(self, token: str) -> str:
        box = self._qr_box
        matrix = qr_matrix(token)
        n = matrix.size
        side = min(_dots(box.rect.w), _dots(box.rect.h))
        module = max(1, min(_dots(box.module_mm), side // (n + 2 * QR_QUIET_MODULES)))
        x0 = _dots(box.rect.x) + (_dots(box.rect.w) - n * module) // 2
        y0 = _dots(box.rect.y) + (_dots(box.rect.h) - n * module) // 2
        scale = module * _DOT
        ops = [
            f"q 0 g {scale:.6f} 0 0 {-scale:.6f} {x0 * _DOT:.4f} "
            f"{self.height_pt - y0 * _DOT:.4f} cm\n"
        ]
        # Each row goes out as the rectangles of its 8-module chunks (precomputed per
        # chunk position and value), filled, then the origin steps down one module.
        tables = _chunk_tables((n + 7) // 8)
        pad = "0" * (-n % 8)
        nbytes = len(tables)
        getitem = list.__getitem__
        for row in matrix.rows:
            chunks = int(row + pad, 2).to_bytes(nbytes, "big")
            ops.append("".join(map(getitem, tables, chunks)))
            ops.append("f 1 0 0 1 0 1 cm\n")
        ops.append("Q\n")
        return "".join(ops)


@cache
def _chunk_tables(chunks: int) -> list[list[str]]:
    """For chunk k of a QR row and each byte value, the rectangles (module units, y = 0)
    of its dark modules, runs merged within the chunk."""
    tables: list[list[str]] = []
    for k in range(chunks):
        table = []
        for value in range(256):
            bits = format(value, "08b")
            table.append(
                "".join(
                    f"{8 * k + m.start()} 0 {m.end() - m.start()} 1 re\n"
                    for m in _DARK_RUN.finditer(bits)
                )
            )
        tables.append(table)
    return tables


def _template(page: _Page) -> None:
    canvas, layout = page.canvas, page.layout
    canvas.beginForm(_FORM)
    canvas.setStrokeGray(0)
    for frame in layout.frames:
        r = frame.rect
        canvas.setLineWidth(frame.width * mm)
        half = frame.width / 2
        canvas.rect(
            (r.x + half) * mm,
            page.height_pt - (r.bottom - half) * mm,
            (r.w - frame.width) * mm,
            (r.h - frame.width) * mm,
            stroke=1,
            fill=0,
        )
    for rule in layout.rules:
        canvas.setLineWidth(rule.width * mm)
        canvas.line(
            rule.x1 * mm,
            page.height_pt - rule.y1 * mm,
            rule.x2 * mm,
            page.height_pt - rule.y2 * mm,
        )
    canvas.addLiteral("".join(page.text_ops(box, box.text) for box in layout.static_texts))
    canvas.endForm()


@contextmanager
def _binary_streams() -> Iterator[None]:
    """Flate-compressed streams without the ASCII85 layer reportlab adds by default:
    the file is a fifth smaller and, without reportlab's optional C accelerator,
    ASCII85 in Python would take 40% of the time of a batch."""
    saved = rl_config.useA85
    rl_config.useA85 = 0
    try:
        yield
    finally:
        rl_config.useA85 = saved


def render_pdf(datas: Iterable[LabelData], layout: LabelLayout) -> bytes:
    """One PDF with a page per label (in order)."""
    with _binary_streams(), gc_paused():
        return _render(datas, layout)


def _render(datas: Iterable[LabelData], layout: LabelLayout) -> bytes:
    font = register_reportlab_cjk_font()
    buffer = io.BytesIO()
    canvas = Canvas(
        buffer,
        pagesize=(layout.width * mm, layout.height * mm),
        pageCompression=1,
        invariant=1,
    )
    canvas.setTitle("快递电子运单 shipping labels")
    canvas.setCreator("waybillguard")
    canvas.setSubject(f"{layout.size.value} mm")
    page = _Page(canvas, layout, font)
    _template(page)
    field_boxes = [(box, box.field) for box in layout.field_boxes if box.field is not None]
    pages = 0
    for data in datas:
        canvas.doForm(_FORM)
        texts = field_texts(data)
        ops = [page.text_ops(box, texts[field]) for box, field in field_boxes]
        ops.append(page.barcode_ops(data.tracking_number))
        ops.append(page.qr_ops(data.qr_token))
        canvas.addLiteral("".join(ops))
        canvas.showPage()
        pages += 1
    if pages == 0:
        raise ValueError("no labels to render")
    canvas.save()
    return buffer.getvalue()
