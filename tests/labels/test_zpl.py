"""The ZPL stream does not depend on what the process printed before: a label placed
from cached runs (an address is three look-ups once its runs are known) is the label
placed glyph by glyph, and what the printer draws is still what the PNG shows."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image, ImageChops

from tests.labels.test_render import ZplRaster
from waybillguard.adapters.labels.glyphs import fit
from waybillguard.domain.label import Field, LabelData, layout, parse_size
from waybillguard.services import labels
from waybillguard.services.labels import render


def bodies(stream: bytes) -> list[str]:
    return re.findall(r"\^XA\^XF.*?\^XZ", stream.decode("utf-8"), flags=re.S)


def zpl(datas: list[LabelData], size: str = "100x180", dpi: int = 203) -> bytes:
    out = render(datas, "zpl", size, dpi)
    assert isinstance(out, bytes)
    return out


@pytest.mark.parametrize("size", ["100x180", "76x130"])
def test_a_label_is_the_same_alone_or_in_a_batch(size: str) -> None:
    datas = labels.synthetic_label_data(300, seed=31)
    alone = [bodies(zpl([data], size))[0] for data in datas[:40]]
    zpl(labels.synthetic_label_data(300, seed=32), size)  # other labels in between
    batch = bodies(zpl(datas, size))
    assert batch[:40] == alone
    assert len(batch) == len(datas)


def test_a_stream_does_not_depend_on_earlier_streams() -> None:
    datas = labels.synthetic_label_data(200, seed=41)
    first = zpl(datas, "100x150", 300)
    zpl(labels.synthetic_label_data(400, seed=42), "100x150", 300)
    assert zpl(datas, "100x150", 300) == first


def test_a_stream_defines_exactly_the_glyphs_it_recalls() -> None:
    zpl(labels.synthetic_label_data(500, seed=51))  # runs known from other labels
    text = zpl(labels.synthetic_label_data(200, seed=52)).decode("utf-8")
    defined = re.findall(r"~DGR:(\w+)\.GRF,", text)
    recalled = set(re.findall(r"\^XGR:(\w+)\.GRF", text))
    assert len(defined) == len(set(defined))  # each once
    assert set(defined) == recalled


def test_addresses_wrap_where_the_pdf_and_png_wrap() -> None:
    """Each address shows as many lines as ``fit`` gives it (the one-line check of the
    cached path adds run widths, fit adds character widths)."""
    shape = layout("100x180")
    boxes = {box.field: box for box in shape.texts if box.field is not None}
    datas = labels.synthetic_label_data(600, seed=61)
    zpl(datas)  # a second time, every address from cached runs
    for body, data in zip(bodies(zpl(datas)), datas, strict=True):
        for field, text in (
            (Field.RECIPIENT_ADDRESS, data.recipient_address),
            (Field.SENDER_ADDRESS, data.sender_address),
        ):
            lines = body.split(f"^FX{text}\n", 1)[1].split("\n^FX", 1)[0]  # next field
            assert lines.count("\n") + 1 == len(fit(text, boxes[field]).lines), text


def test_wrapped_addresses_print_what_the_png_shows() -> None:
    shape = layout("100x180")
    box = next(b for b in shape.texts if b.field is Field.RECIPIENT_ADDRESS)
    datas = labels.synthetic_label_data(400, seed=71)
    wrapped = [d for d in datas if len(fit(d.recipient_address, box).lines) > 1][:3]
    single = [d for d in datas if len(fit(d.recipient_address, box).lines) == 1][:2]
    assert wrapped and single
    zpl(datas)
    stream = ZplRaster(zpl(wrapped + single).decode("utf-8"))  # runs from the cache
    for index, data in enumerate(wrapped + single):
        png = render([data], "png", "100x180", 203)
        assert isinstance(png, list)
        expected = Image.open(io.BytesIO(png[0])).convert("1")
        drawn = stream.draw(index, expected.size)
        # the codes are drawn by the printer: compare the text and rules above them
        top = (0, round(50 * 203 / 25.4), expected.size[0], round(136 * 203 / 25.4))
        diff = ImageChops.logical_xor(expected.crop(top), drawn.crop(top))
        differing = diff.convert("L").histogram()[255]
        inked = expected.crop(top).convert("L").histogram()[0]
        assert differing <= 0.01 * inked, (differing, inked)


def test_bench_reports_a_settled_glyph_cache() -> None:
    result = labels.bench_labels(40, log=lambda _: None)
    assert result["zpl_labels_per_s"] > 0 and result["zpl_bytes_per_label"] > 0
    assert result["zpl_warmup_labels"] >= 40
    assert isinstance(result["zpl_new_glyphs"], int) and result["zpl_new_glyphs"] >= 0


def test_the_address_shortcut_splits_as_the_runs_do() -> None:
    from waybillguard.adapters.labels.zpl import _ADDRESS, _RUN_RE

    datas = labels.synthetic_label_data(300, seed=81)
    texts = [d.recipient_address for d in datas] + [d.sender_address for d in datas]
    texts += [
        "中山市场路****",
        "广东省深圳市****",
        "北京市朝阳区**",
        "中山路12号****",
        "",
        "A区B路*",
    ]
    shaped = 0
    for text in texts:
        match = _ADDRESS.fullmatch(text)
        assert match is not None
        if match.group(1) is not None:
            shaped += 1
            assert list(match.groups()) == _RUN_RE.findall(text), text
    assert shaped >= 600


@pytest.mark.parametrize(("size", "dpi"), [("100x180", 203), ("76x130", 300), ("100x150", 203)])
def test_addresses_wrapped_from_known_runs_are_placed_as_fit_places_them(
    size: str, dpi: int
) -> None:
    """The two-line shortcut (breaks computed from whole-em widths) gives the bytes of
    placing the text through ``fit``, line by line, for every address it takes: breaks
    inside the street, right after the divisions, and inside the mask."""
    from waybillguard.adapters.labels.zpl import _ADDRESS, _MISSING, _layout_at, _Stream

    at = _layout_at(layout(parse_size(size)), dpi)
    stream = _Stream(at)
    datas = labels.synthetic_label_data(4000, seed=83)
    extra = ["新疆维吾尔自治区乌鲁木齐市天山区" + "解放南路" + "*" * n for n in range(1, 12)]
    extra += ["广东省深圳市南山区" + "科技园中区北环大道" * k + "****" for k in (1, 2, 3)]
    extra += ["广东省深圳市南山区" + "Ｋ" * 7 + "*" * 9, "广东省深圳市南山区　科技路****"]
    taken: dict[str, int] = {}
    for field in (Field.RECIPIENT_ADDRESS, Field.SENDER_ADDRESS):
        slot = stream.slots[field]
        texts = [getattr(d, field.value) for d in datas] + extra
        for text in texts:
            stream._one(slot, text, [])  # learn the runs, as a batch does
        for text in texts:
            match = _ADDRESS.fullmatch(text)
            assert match is not None
            shape: tuple[str | None, str | None, str | None] = match.group(1, 2, 3)
            if shape[0] is None or slot.x is None:
                continue
            first = slot.first.get((shape[0], slot.x), _MISSING)
            fast = stream._two_lines(slot, first, shape, [])
            if fast is None:
                continue
            assert first.zpl + b"".join(fast) == stream._one(slot, text, []), text
            lines = fit(text, slot.box).lines
            kind = "mask" if "*" in lines[0] else "street" if lines[0] != shape[0] else "after"
            taken[kind] = taken.get(kind, 0) + 1
    assert taken.get("street", 0) >= 100
    assert taken.get("mask", 0) >= 10
