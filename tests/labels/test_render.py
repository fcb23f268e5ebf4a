"""Labels rendered and read back: barcodes decoded by zxing-cpp, the PDF rasterised by
the real pdftoppm, the ZPL rasterised by a small interpreter below, every output
scanned for the seeded personal data, golden images per size, and the audit trail.

Golden images: ``tests/labels/golden/label-<size>.png`` (203 dpi, from fixed data).
After an intended layout change, regenerate them and look at them:

    WAYBILLGUARD_REGEN_GOLDEN=1 .venv/bin/pytest tests/labels/test_render.py -k golden
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image, ImageChops, ImageDraw

from tests.conftest import scan_bytes, scan_text
from tests.labels.conftest import PHONE_LINE, Seeded, fixed_label
from waybillguard.domain.label import LabelData, LabelSize, layout
from waybillguard.services import audit, labels
from waybillguard.services.labels import LabelRefused, label_data, render, write_labels

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("WAYBILLGUARD_REGEN_GOLDEN") == "1"
SIZES = [s.value for s in LabelSize]
DPIS = [203, 300]


def decode(image: Image.Image) -> dict[str, str]:
    """Barcode format name -> text of every symbol zxing-cpp finds."""
    return {r.format.name: r.text for r in zxingcpp.read_barcodes(image.convert("L"))}


def datas_of(seeded: Seeded, count: int = 3) -> list[LabelData]:
    return [label_data(seeded.app, n, PHONE_LINE) for n in seeded.numbers[:count]]


# -- codes read back ---------------------------------------------------------------------


@pytest.mark.parametrize("dpi", DPIS)
@pytest.mark.parametrize("size", SIZES)
def test_png_barcode_and_qr_decode(seeded: Seeded, size: str, dpi: int) -> None:
    data = datas_of(seeded, 1)[0]
    pngs = render([data], "png", size, dpi)
    assert isinstance(pngs, list) and len(pngs) == 1
    image = Image.open(io.BytesIO(pngs[0]))
    assert image.info["dpi"] == pytest.approx((dpi, dpi), abs=0.5)
    width_mm, height_mm = (float(v) for v in size.split("x"))
    assert image.size == (round(width_mm * dpi / 25.4), round(height_mm * dpi / 25.4))
    found = decode(image)
    assert found["Code128"] == data.tracking_number
    assert found["QRCode"] == data.qr_token
    # The token is the vault's: it opens to this waybill, and says nothing by itself.
    number, expires = seeded.app.vault.open_delivery_token(found["QRCode"])
    assert number == data.tracking_number and expires > data.printed_at.timestamp()
    assert data.tracking_number not in found["QRCode"]


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")
@pytest.mark.parametrize("size", SIZES)
def test_pdf_rasterised_by_pdftoppm_decodes(seeded: Seeded, size: str, tmp_path: Path) -> None:
    datas = datas_of(seeded, 3)
    pdf = render(datas, "pdf", size)
    assert isinstance(pdf, bytes)
    source = tmp_path / "labels.pdf"
    source.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", "203", "-png", str(source), str(tmp_path / "page")],
        check=True,
        timeout=120,
    )
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == 3
    for page, data in zip(pages, datas, strict=True):
        found = decode(Image.open(page))
        assert found["Code128"] == data.tracking_number
        assert found["QRCode"] == data.qr_token


# -- no personal data --------------------------------------------------------------------


def pdf_text(pdf: bytes) -> str:
    document = pdfium.PdfDocument(pdf)
    try:
        return "\n".join(page.get_textpage().get_text_range() for page in document)
    finally:
        document.close()


def test_outputs_carry_no_personal_data(seeded: Seeded) -> None:
    datas = [label_data(seeded.app, n, PHONE_LINE) for n in seeded.numbers]
    pdf = render(datas, "pdf")
    zpl = render(datas, "zpl")
    assert isinstance(pdf, bytes) and isinstance(zpl, bytes)
    text = pdf_text(pdf)
    joined = re.sub(r"\s+", "", text)  # lines of a wrapped address, joined
    # The text layer works (the masked values are there) …
    for data in datas:
        assert data.recipient_name in text and data.sender_phone in text
        assert data.recipient_address in joined
    # … and none of the seeded names, phone numbers or house/room parts is.
    assert scan_text(text, seeded.pii) == []
    assert scan_bytes(zpl, seeded.pii) == []
    payloads = []
    pngs = render(datas[:6], "png", "76x130")
    assert isinstance(pngs, list)
    for png in pngs:
        payloads.append(decode(Image.open(io.BytesIO(png)))["QRCode"])
    assert scan_text("\n".join(payloads), seeded.pii) == []
    assert all(re.fullmatch(r"wgq1\.[A-Za-z0-9_-]{68}", p) for p in payloads)
    # The recipient's real number never appears, not even its visible digits' neighbours.
    for row in seeded.rows:
        assert row["recipient"]["phone"] not in text
        assert row["recipient"]["phone"].encode() not in zpl


def test_a_label_shows_only_the_virtual_number(seeded: Seeded) -> None:
    number = seeded.numbers[0]
    with pytest.raises(LabelRefused):
        label_data(seeded.app, number, "13812345678")  # a real-looking number, no extension
    with pytest.raises(LabelRefused):
        label_data(seeded.app, number, "138******34")  # the masked real number is no line
    assert label_data(seeded.app, number, PHONE_LINE).recipient_phone == PHONE_LINE


# -- batches, formats, audit -------------------------------------------------------------


def test_batch_pdf_of_1000_labels_has_1000_pages() -> None:
    datas = labels.synthetic_label_data(1000)
    pdf = render(datas, "pdf")
    assert isinstance(pdf, bytes)
    document = pdfium.PdfDocument(pdf)
    try:
        assert len(document) == 1000
        first = document[0].get_textpage().get_text_range()
        last = document[999].get_textpage().get_text_range()
    finally:
        document.close()
    assert datas[0].tracking_number in first and datas[999].tracking_number in last
    # Chinese is embedded: one TrueType font program (subsets), no external font.
    assert pdf.count(b"/FontFile2") >= 1 and b"/ToUnicode" in pdf


def test_write_labels_audits_every_waybill_before_writing(seeded: Seeded, tmp_path: Path) -> None:
    numbers = seeded.numbers[:5]
    out = tmp_path / "batch.zpl"
    batch = write_labels(seeded.app, numbers, [PHONE_LINE] * 5, "zpl", "76x130", out, 203)
    assert batch.count == 5 and batch.paths == (out,) and out.stat().st_size > 0
    assert len(batch.audit_events) == 1
    for number in numbers:
        events = [e for e in audit.by_waybill(seeded.app, number) if e["action"] == "label.print"]
        assert len(events) == 1
        assert events[0]["detail"]["format"] == "zpl"
        assert events[0]["detail"]["size"] == "76x130"
        assert sorted(events[0]["waybills"]) == sorted(numbers)
    pngs = write_labels(seeded.app, numbers[:2], {n: PHONE_LINE for n in numbers[:2]}, "png",
                        "100x150", tmp_path / "png", 300)  # fmt: skip
    assert [p.name for p in pngs.paths] == [f"{n}.png" for n in numbers[:2]]
    assert scan_bytes(out.read_bytes(), seeded.pii) == []
    everything = str(audit.by_actor(seeded.app, None))
    assert scan_text(everything, seeded.pii) == []


def test_a_refused_label_stops_the_batch_before_anything_is_written(
    seeded: Seeded, tmp_path: Path
) -> None:
    out = tmp_path / "refused.pdf"
    lines = [PHONE_LINE, "13812345678"]
    with pytest.raises(LabelRefused):
        write_labels(seeded.app, seeded.numbers[:2], lines, "pdf", "100x180", out, 203)
    assert not out.exists()
    assert not [
        e for e in audit.by_waybill(seeded.app, seeded.numbers[0]) if e["action"] == "label.print"
    ]


def test_shredded_waybills_get_no_label(seeded: Seeded) -> None:
    from waybillguard.services import shredding

    number = seeded.numbers[1]
    shredding.shred(seeded.app, [number])
    with pytest.raises(LabelRefused, match="shredded"):
        label_data(seeded.app, number, PHONE_LINE)


# -- ZPL ---------------------------------------------------------------------------------


def test_zpl_structure(seeded: Seeded) -> None:
    datas = datas_of(seeded, 4)
    zpl = render(datas, "zpl", "100x180", 203)
    assert isinstance(zpl, bytes)
    text = zpl.decode("utf-8")
    formats = re.findall(r"\^XA(.*?)\^XZ", text, flags=re.S)
    assert len(formats) == 1 + len(datas)  # the stored format, then one per label
    assert formats[0].startswith("^DFR:WG100180.ZPL^FS")
    defined = set(re.findall(r"~DGR:(\w+)\.GRF,", text))
    recalled = set(re.findall(r"\^XGR:(\w+)\.GRF", text))
    assert recalled and recalled <= defined
    for body, data in zip(formats[1:], datas, strict=True):
        assert body.startswith("^XFR:WG100180.ZPL^FS")
        assert f"^BCN,{128},N,N,N,A^FD{data.tracking_number}^FS" in body
        assert f"^BQN,2,4^FDMA,{data.qr_token}^FS" in body
        assert f"^FX{data.recipient_address}" in body  # the masked text, as a comment
        assert body.rstrip().endswith("^PQ1")
    assert text.index("~DG") < text.index("^XA^DF") < text.index("^XA^XF")


class ZplRaster:
    """Just enough of ZPL II to draw what the label renderer emits: ~DG graphics
    (ASCII hex with the compression scheme), ^DF/^XF formats, ^FO with ^XG and ^GB."""

    def __init__(self, stream: str) -> None:
        self.graphics: dict[str, Image.Image] = {}
        self.formats: dict[str, str] = {}
        for name, total, row_bytes, data in re.findall(
            r"~DGR:(\w+)\.GRF,(\d+),(\d+),([0-9A-Za-z,:!]*)", stream
        ):
            self.graphics[name] = self._graphic(int(total), int(row_bytes), data)
        for name, body in re.findall(r"\^XA\^DFR:(\w+)\.ZPL\^FS(.*?)\^XZ", stream, re.S):
            self.formats[name] = body
        self.labels = re.findall(r"\^XA\^XFR:(\w+)\.ZPL\^FS(.*?)\^XZ", stream, re.S)

    @staticmethod
    def _graphic(total: int, row_bytes: int, data: str) -> Image.Image:
        width = 2 * row_bytes
        rows: list[str] = []
        for token in re.findall(r"[G-Yg-z]*[0-9A-F]|[,:!]", data):
            if token == ":":
                rows.append(rows[-1])
                continue
            if not rows or len(rows[-1]) == width:
                rows.append("")
            if token == ",":
                rows[-1] = rows[-1].ljust(width, "0")
            elif token == "!":
                rows[-1] = rows[-1].ljust(width, "F")
            else:
                count = 0
                for ch in token[:-1]:
                    count += ord(ch) - ord("F") if ch.isupper() else 20 * (ord(ch) - ord("f"))
                rows[-1] += token[-1] * max(1, count)
        raw = bytes.fromhex("".join(rows))
        assert len(raw) == total
        return Image.frombytes("1", (row_bytes * 8, total // row_bytes), raw)

    def draw(self, index: int, size: tuple[int, int]) -> Image.Image:
        image = Image.new("1", size, 1)
        name, body = self.labels[index]
        for fields in (self.formats[name], body):
            for x, y, command in re.findall(r"\^FO(\d+),(\d+)(\^(?:XG|GB)[^^]*)", fields):
                at = (int(x), int(y))
                if command.startswith("^XG"):
                    graphic = self.graphics[re.match(r"\^XGR:(\w+)", command).group(1)]  # type: ignore[union-attr]
                    image.paste(0, at, graphic)
                else:
                    w, h, t = (int(v) for v in command[3:].split(","))
                    box = (at[0], at[1], at[0] + w - 1, at[1] + h - 1)
                    if min(w, h) <= t:
                        ImageDraw.Draw(image).rectangle(box, fill=0)
                    else:
                        ImageDraw.Draw(image).rectangle(box, outline=0, width=t)
        return image


@pytest.mark.parametrize("dpi", DPIS)
@pytest.mark.parametrize("size", SIZES)
def test_zpl_draws_what_the_png_shows(size: str, dpi: int) -> None:
    """Rasterised, the ZPL's text and lines match the PNG (printer-drawn codes aside)."""
    data = fixed_label()
    shape = layout(size)
    zpl = render([data], "zpl", size, dpi)
    png = render([data], "png", size, dpi)
    assert isinstance(zpl, bytes) and isinstance(png, list)
    expected = Image.open(io.BytesIO(png[0])).convert("1")
    drawn = ZplRaster(zpl.decode("utf-8")).draw(0, expected.size)
    mask = Image.new("1", expected.size, 1)
    scale = dpi / 25.4
    number_box = next(b for b in shape.texts if b.field and b.field.value == "tracking_number")
    for rect in (shape.barcode.rect, shape.qr.rect, number_box.rect):
        ImageDraw.Draw(mask).rectangle(
            (rect.x * scale, rect.y * scale, rect.right * scale, rect.bottom * scale), fill=0
        )
    diff = ImageChops.logical_and(
        ImageChops.logical_xor(expected, drawn).convert("1"), mask
    )  # 1 where they differ outside the masked areas
    differing = diff.convert("L").histogram()[255]
    inked = expected.convert("L").histogram()[0]
    assert differing <= 0.01 * inked, (differing, inked)


# -- golden images -----------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_golden_image(size: str) -> None:
    png = render([fixed_label()], "png", size, 203)
    assert isinstance(png, list)
    actual = Image.open(io.BytesIO(png[0])).convert("L")
    path = GOLDEN / f"label-{size}.png"
    if REGENERATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(png[0])
        pytest.skip(f"regenerated {path.name}")
    assert path.exists(), f"no golden image; run with WAYBILLGUARD_REGEN_GOLDEN=1 ({path})"
    golden = Image.open(path).convert("L")
    assert golden.size == actual.size
    differing = ImageChops.difference(golden, actual).point(lambda v: 255 if v else 0)
    changed = differing.histogram()[255]
    # A few pixels may move with another FreeType build; a layout change moves thousands.
    assert changed <= 0.002 * actual.size[0] * actual.size[1], changed
