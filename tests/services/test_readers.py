"""Streaming readers: formats, encodings, row numbers, hostile input, bounded memory."""

from __future__ import annotations

import csv
import io
import random
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest

from waybillguard.services.readers import (
    FIELDS,
    REQUIRED_CSV_FIELDS,
    InputFormatError,
    RawRow,
    count_rows_fast,
    iter_rows,
)
from waybillguard.services.synth import synth_rows, write_synth

ZH_HEADER = [
    "订单号",
    "商家",
    "寄件人",
    "寄件人电话",
    "寄件地址",
    "收件人",
    "收件人电话",
    "收件地址",
    "重量",
    "物品类型",
]


def record(
    i: int, *, name: str = "张三", address: str = "北京市朝阳区建国路88号3栋502室"
) -> dict[str, Any]:
    return {
        "order_ref": f"O{i}",
        "merchant": "小鹿旗舰店",
        "sender": {
            "name": "李四",
            "phone": "0755-26543210",
            "address": "广东省深圳市南山区科技园路1号",
        },
        "recipient": {"name": name, "phone": "13812345678", "address": address},
        "parcel": {"weight_g": 1200, "category": "服饰"},
    }


def flat(obj: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {"order_ref": obj["order_ref"], "merchant": obj["merchant"]}
    for group in ("sender", "recipient", "parcel"):
        for key, value in obj[group].items():
            out[f"{group}.{key}"] = str(value)
    return out


def csv_bytes(header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode(encoding)


def csv_row(obj: dict[str, Any]) -> list[str]:
    values = flat(obj)
    return [values[name] for name in FIELDS]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def read(path: Path, **kwargs: Any) -> list[RawRow]:
    return list(iter_rows(path, **kwargs))


# ---------------------------------------------------------------- JSON Lines


def test_jsonl_round_trip_of_synthetic_rows(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    write_synth(path, 500, seed=4)
    rows = read(path)
    assert [r.row for r in rows] == list(range(1, 501))
    assert all(r.error is None for r in rows)
    assert [r.fields for r in rows] == [flat(obj) for obj in synth_rows(500, 4)]
    assert all(isinstance(v, str) for r in rows for v in r.fields.values())


def test_jsonl_blank_lines_are_counted_not_yielded(tmp_path: Path) -> None:
    lines = [orjson.dumps(record(1)), b"", b"   ", orjson.dumps(record(4)), b"\r", b""]
    path = write(tmp_path / "b.ndjson", b"\n".join(lines) + b"\n")
    rows = read(path)
    assert [(r.row, r.fields["order_ref"]) for r in rows] == [(1, "O1"), (4, "O4")]


def test_jsonl_crlf_and_missing_final_newline(tmp_path: Path) -> None:
    data = orjson.dumps(record(1)) + b"\r\n" + orjson.dumps(record(2))
    rows = read(write(tmp_path / "c.jsonl", data))
    assert [r.fields["order_ref"] for r in rows] == ["O1", "O2"]
    assert all(r.error is None for r in rows)


def test_jsonl_shapes(tmp_path: Path) -> None:
    numbers = record(1)
    numbers["recipient"]["phone"] = 13812345678
    numbers["parcel"]["weight_g"] = 250.0
    partial = {"order_ref": "O2", "recipient": {"name": "王五", "phone": None}}
    lines = [
        orjson.dumps(numbers),
        orjson.dumps(partial),
        b"[1, 2, 3]",
        b'"just a string"',
        orjson.dumps({**record(5), "sender": "张三 13812345678"}),
        orjson.dumps({**record(6), "recipient": {"name": ["张三"]}}),
        orjson.dumps({**record(7), "parcel": {"weight_g": True}}),
        b'{"order_ref": "O8", "recipient": {"name": "\xe5\xbc\xa0',  # cut short
        orjson.dumps({**record(9), "extra": {"ignored": 1}}),
    ]
    rows = read(write(tmp_path / "s.jsonl", b"\n".join(lines)))
    by_row = {r.row: r for r in rows}
    assert by_row[1].error is None
    assert by_row[1].fields["recipient.phone"] == "13812345678"
    assert by_row[1].fields["parcel.weight_g"] == "250"
    assert by_row[2].fields == {"order_ref": "O2", "recipient.name": "王五"}
    assert by_row[3].error == ("row", "not a JSON object")
    assert by_row[4].error == ("row", "not a JSON object")
    assert by_row[5].error == ("sender", "expected a JSON object")
    assert by_row[6].error == ("recipient.name", "expected a string or a number")
    assert by_row[7].error == ("parcel.weight_g", "expected a string or a number")
    assert by_row[8].error == ("row", "not valid JSON")
    assert by_row[9].error is None and "extra" not in str(by_row[9].fields)
    for r in rows:
        if r.error is not None:
            assert r.fields == {}


def test_jsonl_invalid_utf8_in_middle_row(tmp_path: Path) -> None:
    lines = [orjson.dumps(record(i)) for i in range(1, 6)]
    lines[2] = lines[2].replace("张三".encode(), "张三".encode("gbk"))
    rows = read(write(tmp_path / "u.jsonl", b"\n".join(lines) + b"\n"))
    assert [r.row for r in rows] == [1, 2, 3, 4, 5]
    assert [r.error for r in rows] == [None, None, ("row", "not valid UTF-8 text"), None, None]


def test_jsonl_nul_bytes(tmp_path: Path) -> None:
    lines = [
        orjson.dumps(record(1)),
        orjson.dumps(record(2)).replace(b"O2", b"O\x002"),
        orjson.dumps(record(3)),
    ]
    lines.append(orjson.dumps(record(4)).replace(b"O4", b"O\\u00004"))  # escaped NUL
    rows = read(write(tmp_path / "n.jsonl", b"\n".join(lines)))
    assert [r.error for r in rows] == [
        None,
        ("row", "contains NUL bytes"),
        None,
        ("row", "contains NUL bytes"),
    ]


def test_jsonl_gb18030(tmp_path: Path) -> None:
    text = "\n".join(orjson.dumps(record(i, name="刘䶮")).decode() for i in range(3))
    rows = read(write(tmp_path / "g.jsonl", text.encode("gb18030")))
    assert [r.fields["recipient.name"] for r in rows] == ["刘䶮"] * 3


# ----------------------------------------------------------------------- CSV


def test_csv_english_dotted_header(tmp_path: Path) -> None:
    objs = [record(i) for i in range(1, 4)]
    path = write(tmp_path / "e.csv", csv_bytes(list(FIELDS), [csv_row(o) for o in objs]))
    rows = read(path)
    assert [(r.row, r.error) for r in rows] == [(1, None), (2, None), (3, None)]
    assert [r.fields for r in rows] == [flat(o) for o in objs]


def test_csv_underscore_header_and_reordered_unknown_columns(tmp_path: Path) -> None:
    header = [
        "note",
        "recipient_phone",
        "order_ref",
        "sender_name",
        "sender_phone",
        "sender_address",
        "recipient_name",
        "recipient_address",
        "weight_g",
        "category",
    ]
    rows_in = [
        [
            "x",
            "13812345678",
            "O1",
            "李四",
            "13900001111",
            "广东省深圳市南山区1号",
            "张三",
            "北京市朝阳区2号",
            "300",
            "文件",
        ]
    ]
    rows = read(write(tmp_path / "u.csv", csv_bytes(header, rows_in)))
    assert rows[0].fields == {
        "recipient.phone": "13812345678",
        "order_ref": "O1",
        "sender.name": "李四",
        "sender.phone": "13900001111",
        "sender.address": "广东省深圳市南山区1号",
        "recipient.name": "张三",
        "recipient.address": "北京市朝阳区2号",
        "parcel.weight_g": "300",
        "parcel.category": "文件",
    }


def test_csv_gbk_with_chinese_headers(tmp_path: Path) -> None:
    objs = [record(i, name=name) for i, name in enumerate(["张三", "欧阳娜娜", "阿卜杜拉·买买提"])]
    path = write(
        tmp_path / "gbk.csv", csv_bytes(ZH_HEADER, [csv_row(o) for o in objs], encoding="gbk")
    )
    rows = read(path)
    assert [r.fields for r in rows] == [flat(o) for o in objs]


def test_csv_utf8_bom_excel_style(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    write_synth(path, 50, seed=2, headers="zh", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    rows = read(path)
    assert [r.fields for r in rows] == [flat(o) for o in synth_rows(50, 2)]


def test_csv_gbk_synthetic_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "zh.csv"
    write_synth(path, 300, seed=8, headers="zh", encoding="gbk")
    rows = read(path)
    assert [r.fields for r in rows] == [flat(o) for o in synth_rows(300, 8)]


def test_csv_gb18030_rare_characters(tmp_path: Path) -> None:
    names = ["刘䶮", "王𠀀", "李㛃"]  # outside GBK: four-byte GB18030 sequences
    objs = [record(i, name=name) for i, name in enumerate(names)]
    data = csv_bytes(ZH_HEADER, [csv_row(o) for o in objs], encoding="gb18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    rows = read(write(tmp_path / "gb.csv", data))
    assert [r.fields["recipient.name"] for r in rows] == names


def test_csv_invalid_bytes_in_middle_row_utf8(tmp_path: Path) -> None:
    objs = [record(i) for i in range(1, 6)]
    data = csv_bytes(list(FIELDS), [csv_row(o) for o in objs])
    lines = data.split(b"\r\n")
    lines[3] = lines[3].replace("张三".encode(), b"\xff\xfe")
    rows = read(write(tmp_path / "bad.csv", b"\r\n".join(lines)))
    assert [r.row for r in rows] == [1, 2, 3, 4, 5]
    assert [r.error for r in rows] == [None, None, ("row", "not valid UTF-8 text"), None, None]
    assert rows[3].fields == flat(objs[3])


def test_csv_invalid_bytes_in_middle_row_gbk(tmp_path: Path) -> None:
    objs = [record(i) for i in range(1, 6)]
    data = csv_bytes(ZH_HEADER, [csv_row(o) for o in objs], encoding="gbk")
    lines = data.split(b"\r\n")
    lines[3] = lines[3].replace("张三".encode("gbk"), b"\xff\xff")
    rows = read(write(tmp_path / "bad.csv", b"\r\n".join(lines)))
    assert [r.error for r in rows] == [None, None, ("row", "not valid GB18030 text"), None, None]
    assert rows[4].fields == flat(objs[4])


def test_csv_multibyte_character_cut_at_sniff_boundary(tmp_path: Path) -> None:
    header = ",".join(FIELDS).encode() + b"\n"
    row = ",".join(csv_row(record(1))).encode() + b"\n"
    body = row * (70_000 // len(row) + 1)
    for pad in range(200):  # pad the first order_ref until byte 65536 is mid-character
        data = header + b"P" * pad + body
        if 0x80 <= data[65_536] < 0xC0:
            break
    else:  # pragma: no cover - the rows hold Chinese every few bytes
        pytest.fail("could not place a character on the boundary")
    rows = read(write(tmp_path / "edge.csv", data))
    assert len(rows) == len(body) // len(row)
    assert all(r.error is None for r in rows)


def test_utf8_file_with_one_gbk_row_stays_utf8(tmp_path: Path) -> None:
    objs = [record(i) for i in range(1, 21)]
    data = csv_bytes(list(FIELDS), [csv_row(o) for o in objs])
    lines = data.split(b"\r\n")
    lines[10] = lines[10].decode().encode("gbk")  # one row saved in another encoding
    rows = read(write(tmp_path / "mixed.csv", b"\r\n".join(lines)))
    errors = [r.row for r in rows if r.error is not None]
    assert errors == [10]
    assert rows[0].fields["recipient.name"] == "张三"


def test_csv_header_variants_and_units(tmp_path: Path) -> None:
    header = [
        "订单编号",
        "店铺名称",
        "寄件人姓名",
        "寄件人手机",
        "寄件人地址",
        "收件人姓名 ",
        "收件人手机号",
        "收件人地址",
        "重量（kg）",
        "物品类别",
        "备注",
    ]
    rows_in = [
        [
            "O1",
            "小店",
            "李四",
            "13900001111",
            "广东省深圳市南山区1号",
            "张三",
            "13812345678",
            "北京市朝阳区2号",
            "1.25",
            "图书",
            "易碎",
        ]
    ]
    rows = read(write(tmp_path / "v.csv", csv_bytes(header, rows_in)))
    assert rows[0].error is None
    assert rows[0].fields["parcel.weight_g"] == "1250"
    assert rows[0].fields["recipient.name"] == "张三"
    assert "备注" not in rows[0].fields and len(rows[0].fields) == 10
    for grams in ("重量(g)", "重量（克）", "重量g", "Weight_g", "parcel.weight_g"):
        header[8] = grams
        rows_in[0][8] = "300"
        rows = read(write(tmp_path / "g.csv", csv_bytes(header, rows_in)))
        assert rows[0].fields["parcel.weight_g"] == "300", grams


def test_csv_address_split_over_columns(tmp_path: Path) -> None:
    header = [
        "订单号",
        "寄件人",
        "寄件人电话",
        "寄件地址",
        "收件人",
        "收件人电话",
        "收件省",
        "收件市",
        "收件区",
        "收件详细地址",
    ]
    rows_in = [
        [
            "O1",
            "李四",
            "13900001111",
            "广东省深圳市南山区1号",
            "张三",
            "13812345678",
            "北京市",
            "北京市",
            "朝阳区",
            "建国路88号",
        ],
        [
            "O2",
            "李四",
            "13900001111",
            "广东省深圳市南山区1号",
            "张三",
            "13812345678",
            "广东省",
            "深圳市",
            "南山区",
            "广东省深圳市南山区科技园路1号",
        ],
    ]
    rows = read(write(tmp_path / "parts.csv", csv_bytes(header, rows_in)))
    assert rows[0].fields["recipient.address"] == "北京市朝阳区建国路88号"
    assert rows[1].fields["recipient.address"] == "广东省深圳市南山区科技园路1号"


def test_csv_row_numbers_blank_multiline_and_crlf(tmp_path: Path) -> None:
    objs = [record(i) for i in range(1, 6)]
    objs[1]["recipient"]["address"] = "北京市朝阳区\n建国路88号"  # quoted newline
    rows_in = [csv_row(o) for o in objs]
    data = (
        csv_bytes(list(FIELDS), rows_in[:2])
        + b"\r\n"
        + b",,,,,,,,,\r\n"
        + csv_bytes(list(FIELDS), rows_in[2:]).split(b"\r\n", 1)[1]
    )
    rows = read(write(tmp_path / "m.csv", data))
    assert [(r.row, r.fields["order_ref"]) for r in rows] == [
        (1, "O1"),
        (2, "O2"),
        (5, "O3"),
        (6, "O4"),
        (7, "O5"),
    ]
    assert rows[1].fields["recipient.address"] == "北京市朝阳区\n建国路88号"


def test_csv_wrong_column_count_and_nul(tmp_path: Path) -> None:
    rows_in = [csv_row(record(i)) for i in range(1, 5)]
    rows_in[1] = rows_in[1][:-2]
    rows_in[2] = [*rows_in[2], "extra"]
    rows_in[3][5] = "张\x00三"
    rows = read(write(tmp_path / "w.csv", csv_bytes(list(FIELDS), rows_in)))
    assert [r.error for r in rows] == [
        None,
        ("row", "expected 10 columns, found 8"),
        ("row", "expected 10 columns, found 11"),
        ("row", "contains NUL bytes"),
    ]


def test_csv_unbalanced_quote_recovers(tmp_path: Path) -> None:
    good = ",".join(csv_row(record(1))).encode()
    bad = b'O2,"shop' + b"x" * 200_000
    data = ",".join(FIELDS).encode() + b"\n" + good + b"\n" + bad + b"\n" + good + b"\n"
    rows = read(write(tmp_path / "q.csv", data), max_line_bytes=1 << 20)
    assert rows[0].error is None
    assert rows[1].error is not None
    assert rows[-1].error is None and rows[-1].fields["order_ref"] == "O1"


# ------------------------------------------------------------- whole-file errors


def test_missing_required_column(tmp_path: Path) -> None:
    header = [f for f in FIELDS if f != "recipient.phone"]
    path = write(tmp_path / "m.csv", csv_bytes(header, [["x"] * len(header)]))
    with pytest.raises(InputFormatError, match=r"missing required columns: recipient\.phone"):
        iter_rows(path)  # raised before the first row is asked for


def test_every_required_column_is_required(tmp_path: Path) -> None:
    for missing in REQUIRED_CSV_FIELDS:
        header = [f for f in FIELDS if f != missing]
        path = write(tmp_path / "m.csv", csv_bytes(header, []))
        with pytest.raises(InputFormatError, match=missing):
            read(path)


def test_no_header_message_has_no_data(tmp_path: Path) -> None:
    rows_in = [csv_row(record(i)) for i in range(3)]
    data = csv_bytes(rows_in[0], rows_in[1:])  # first row is data, not a header
    with pytest.raises(InputFormatError) as info:
        read(write(tmp_path / "nh.csv", data))
    message = str(info.value)
    for value in rows_in[0]:
        assert value not in message


def test_duplicate_and_odd_columns(tmp_path: Path) -> None:
    header = [*FIELDS, "收件人"]
    with pytest.raises(InputFormatError, match=r"two columns for field recipient\.name"):
        read(write(tmp_path / "d.csv", csv_bytes(header, [])))
    header = [*FIELDS[:8], "重量(斤)", "parcel.category"]
    with pytest.raises(InputFormatError, match="weight unit"):
        read(write(tmp_path / "d.csv", csv_bytes(header, [])))


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("w.txt", b"a,b\n"),
        ("w.xlsx", b"PK"),
        ("e.csv", b""),
        ("bom.csv", b"\xef\xbb\xbf\r\n"),
        ("u16.csv", "订单号,收件人\n".encode("utf-16")),
    ],
)
def test_whole_file_errors(tmp_path: Path, name: str, data: bytes) -> None:
    with pytest.raises(InputFormatError):
        read(write(tmp_path / name, data))


def test_empty_jsonl_is_fine(tmp_path: Path) -> None:
    assert read(write(tmp_path / "e.jsonl", b"")) == []
    assert read(write(tmp_path / "e2.jsonl", b"\n\n")) == []


# ------------------------------------------------------- long lines and memory


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_ten_megabyte_line_is_an_error_row_in_bounded_memory(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"long{suffix}"
    with path.open("wb") as out:
        if suffix == ".csv":
            out.write(",".join(FIELDS).encode() + b"\n")
            good = ",".join(csv_row(record(1))).encode() + b"\n"
        else:
            good = orjson.dumps(record(1)) + b"\n"
        out.write(good)
        out.write(b'{"order_ref": "' if suffix == ".jsonl" else b"O2,")
        for _ in range(10):
            out.write(b"A" * (1 << 20))
        out.write(b"\n")
        out.write(good)
    tracemalloc.start()
    try:
        rows = read(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [r.row for r in rows] == [1, 2, 3]
    assert rows[1].error == ("row", "line longer than 65536 bytes")
    assert rows[0].error is None and rows[2].error is None
    assert peak < 2 * 1024 * 1024, peak


def test_line_length_limit_is_exact_and_chunking_is_invisible(tmp_path: Path) -> None:
    """Random line lengths against small limits: same verdicts as a naive reader."""
    rng = random.Random(5)
    for trial in range(30):
        limit = rng.choice([1, 2, 7, 16, 33, 100, 257])
        lines = [
            b"x" * rng.choice([0, 1, limit - 1, limit, limit + 1, rng.randrange(3 * limit)])
            for _ in range(rng.randrange(1, 40))
        ]
        lines = [b'"' + line + b'"' if line else line for line in lines]  # valid JSON strings
        data = b"\n".join(lines) + (b"\n" if rng.random() < 0.5 else b"")
        path = write(tmp_path / f"t{trial}.jsonl", data)
        got = [(r.row, r.error) for r in read(path, max_line_bytes=limit)]
        expected = []
        for number, line in enumerate(lines, start=1):
            if not line:
                continue
            if len(line) > limit:
                expected.append((number, ("row", f"line longer than {limit} bytes")))
            else:
                expected.append((number, ("row", "not a JSON object")))
        assert got == expected, (limit, [len(line) for line in lines])


def test_errors_never_carry_personal_data(tmp_path: Path) -> None:
    secret_name, secret_phone = "诸葛秘密", "13987654321"
    bad = record(1, name=secret_name)
    bad["recipient"]["phone"] = secret_phone
    lines = [
        orjson.dumps({**bad, "sender": f"{secret_name} {secret_phone}"}),
        orjson.dumps(bad)[:-5],
        orjson.dumps({**bad, "recipient": {"name": [secret_name], "phone": secret_phone}}),
        orjson.dumps(bad).replace(secret_name.encode(), secret_name.encode("gbk")),
    ]
    rows = read(write(tmp_path / "p.jsonl", b"\n".join(lines)))
    assert all(r.error is not None for r in rows)
    for r in rows:
        text = repr(r.error) + repr(r)
        assert secret_name not in text
        assert secret_phone not in text


def test_count_rows_fast(tmp_path: Path) -> None:
    jsonl = tmp_path / "c.jsonl"
    write_synth(jsonl, 123, seed=1)
    assert count_rows_fast(jsonl) == 123
    csv_path = tmp_path / "c.csv"
    write_synth(csv_path, 77, seed=1)
    assert count_rows_fast(csv_path) == 77
    assert count_rows_fast(write(tmp_path / "n.jsonl", b"{}\n{}")) == 2
    assert count_rows_fast(tmp_path / "c.txt") is None
    assert count_rows_fast(tmp_path / "missing.jsonl") is None


def test_classic_mac_line_endings(tmp_path: Path) -> None:
    objs = [record(i) for i in range(1, 2001)]
    data = csv_bytes(list(FIELDS), [csv_row(o) for o in objs]).replace(b"\r\n", b"\r")
    assert b"\n" not in data and len(data) > 200_000
    path = write(tmp_path / "mac.csv", data)
    rows = read(path)
    assert [r.row for r in rows] == list(range(1, 2001))
    assert all(r.error is None for r in rows)
    assert count_rows_fast(path) == 2000
    jsonl = write(tmp_path / "mac.jsonl", b"\r".join(orjson.dumps(o) for o in objs))
    assert [r.fields["order_ref"] for r in read(jsonl)] == [f"O{i}" for i in range(1, 2001)]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_small_blocks_give_the_same_rows(tmp_path: Path, suffix: str) -> None:
    """max_line_bytes also sets the read size: many block boundaries, same result."""
    objs = list(synth_rows(300, 9))
    for i in range(0, 300, 7):
        objs[i]["recipient"]["address"] += "\n（门卫代收）"  # quoted newline in CSV
    path = tmp_path / f"blocks{suffix}"
    if suffix == ".csv":
        write(path, csv_bytes(list(FIELDS), [csv_row(o) for o in objs], encoding="gbk"))
    else:
        write(path, b"\n".join(orjson.dumps(o) for o in objs))
    expected = [flat(o) for o in objs]
    for limit in (500, 777, 4096):
        rows = read(path, max_line_bytes=limit)
        assert [r.fields for r in rows] == expected, limit
