"""PNG labels at 203 or 300 dpi, drawn directly with Pillow (no PDF round trip).

Bilevel (1 bit per pixel), as a thermal printer prints: text without anti-aliasing,
barcode bars and QR modules on whole pixels (the Code 128 module is a whole number
of dots, the QR module too), so a scanner sees clean edges at either resolution.

The frame, the rules and the fixed captions of each (size, dpi) are drawn once into a
template; a label copies the template and draws only its own text and codes.
"""

from __future__ import annotations

import io
from functools import cache

from PIL import Image, ImageDraw

from waybillguard.adapters.labels.codes import (
    CODE128_QUIET_MODULES,
    QR_QUIET_MODULES,
    code128,
    qr_matrix,
)
from waybillguard.adapters.labels.glyphs import GLYPHS, fit, line_x, pen_positions, text_width_em
from waybillguard.domain.label import (
    LabelData,
    LabelLayout,
    TextBox,
    baselines,
    field_texts,
)

DPIS = (203, 300)
_BLACK = 0
_WHITE = 1
_MM_PER_INCH = 25.4
_QR_TO_L = str.maketrans("01", "\xff\x00")


def dots(mm: float, dpi: int) -> int:
    return round(mm * dpi / _MM_PER_INCH)


def module_dots(module_mm: float, dpi: int) -> int:
    """A barcode module in whole dots (0.5 mm: 4 dots at 203 dpi, 6 at 300)."""
    return max(1, round(module_mm * dpi / _MM_PER_INCH))


def _draw_text(image: Image.Image, box: TextBox, text: str, dpi: int) -> None:
    fitted = fit(text, box)
    px = dots(fitted.size, dpi)
    scale = dpi / _MM_PER_INCH
    glyphs = GLYPHS
    paste = image.paste
    for line, baseline in zip(fitted.lines, baselines(box, fitted), strict=True):
        x0 = line_x(box, text_width_em(line) * fitted.size) * scale
        y = round(baseline * scale)
        for ch, x in zip(line, pen_positions(line, px, x0), strict=True):
            glyph = glyphs[ch, px, box.bold]
            if not glyph.empty:
                paste(_BLACK, (x + glyph.dx, y + glyph.dy), glyph.image)


@cache
def template(layout: LabelLayout, dpi: int) -> Image.Image:
    """Frame, rules and fixed captions of a label (size, dpi), drawn once."""
    image = Image.new("1", (dots(layout.width, dpi), dots(layout.height, dpi)), _WHITE)
    draw = ImageDraw.Draw(image)
    for frame in layout.frames:
        r = frame.rect
        draw.rectangle(
            (dots(r.x, dpi), dots(r.y, dpi), dots(r.right, dpi) - 1, dots(r.bottom, dpi) - 1),
            outline=_BLACK,
            width=max(1, dots(frame.width, dpi)),
        )
    for rule in layout.rules:
        width = max(1, dots(rule.width, dpi))
        x1, y1 = dots(rule.x1, dpi), dots(rule.y1, dpi) - width // 2
        x2, y2 = dots(rule.x2, dpi), dots(rule.y2, dpi) - width // 2
        draw.rectangle((x1, y1, max(x1, x2 - 1) if x2 > x1 else x1 + width - 1,
                        max(y1, y2 - 1) if y2 > y1 else y1 + width - 1), fill=_BLACK)  # fmt: skip
    for box in layout.static_texts:
        _draw_text(image, box, box.text, dpi)
    return image


def _draw_barcode(draw: ImageDraw.ImageDraw, layout: LabelLayout, number: str, dpi: int) -> None:
    symbol = code128(number)
    module = module_dots(layout.barcode.module_mm, dpi)
    rect = layout.barcode.rect
    left, right = dots(rect.x, dpi), dots(rect.right, dpi)
    while module > 1 and (symbol.modules + 2 * CODE128_QUIET_MODULES) * module > right - left:
        module -= 1
    x0 = (left + right - symbol.modules * module) // 2
    top, bottom = dots(rect.y, dpi), dots(rect.bottom, dpi) - 1
    for start, width in symbol.bars:
        x = x0 + start * module
        draw.rectangle((x, top, x + width * module - 1, bottom), fill=_BLACK)


def _paste_qr(image: Image.Image, layout: LabelLayout, token: str, dpi: int) -> None:
    matrix = qr_matrix(token)
    n = matrix.size
    rect = layout.qr.rect
    side = min(dots(rect.w, dpi), dots(rect.h, dpi))
    module = min(module_dots(layout.qr.module_mm, dpi), side // (n + 2 * QR_QUIET_MODULES))
    module = max(1, module)
    data = "".join(matrix.rows).translate(_QR_TO_L).encode("latin-1")
    symbol = Image.frombytes("L", (n, n), data).resize(
        (n * module, n * module), Image.Resampling.NEAREST
    )
    x = dots(rect.x, dpi) + (dots(rect.w, dpi) - n * module) // 2
    y = dots(rect.y, dpi) + (dots(rect.h, dpi) - n * module) // 2
    image.paste(symbol.convert("1"), (x, y))


def render_image(data: LabelData, layout: LabelLayout, dpi: int) -> Image.Image:
    if dpi not in DPIS:
        raise ValueError(f"PNG labels are 203 or 300 dpi, not {dpi}")
    image = template(layout, dpi).copy()
    draw = ImageDraw.Draw(image)
    texts = field_texts(data)
    for box in layout.field_boxes:
        assert box.field is not None
        _draw_text(image, box, texts[box.field], dpi)
    _draw_barcode(draw, layout, data.tracking_number, dpi)
    _paste_qr(image, layout, data.qr_token, dpi)
    return image


def render_png(data: LabelData, layout: LabelLayout, dpi: int = 203) -> bytes:
    """One label as a bilevel PNG that records its resolution (pHYs)."""
    buffer = io.BytesIO()
    render_image(data, layout, dpi).save(buffer, "PNG", dpi=(dpi, dpi), compress_level=3)
    return buffer.getvalue()
