"""`POST /api/v1/labels` over a real uvicorn server (SQLite and PostgreSQL): a clerk
prints PDF, ZPL, one PNG and a ZIP of PNGs for their own station's waybills (the
codes decode from the rasterised bytes); out-of-scope and unknown waybills answer 404
with nothing audited; roles that do not print answer 403; a batch over the HTTP
maximum and bad format/size/dpi answer 422 naming the field; the audit event is there
after a print and no label leaves when the audit write fails; no response carries
personal data."""

from __future__ import annotations

import io
import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import row_pii, scan_bytes
from tests.http.harness import API, Seeded, Server, backend_url, seed_home, tokens_for
from waybillguard.entrypoints.http.app import create_app
from waybillguard.entrypoints.http.routes_labels import MAX_HTTP_BATCH
from waybillguard.services import labels, virtual_numbers
from waybillguard.services.activity import Actor
from waybillguard.services.app import open_app

USERS = ["clerk1", "manager1", "admin1", "courier1", "cs1", "sec1", "shopx"]
# Every response body, for the PII scan at the end of the module.
BODIES: list[bytes] = []


@pytest.fixture(scope="module")
def seeded(
    http_backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Seeded:
    """The HTTP tests' network plus a virtual-number pool (a label prints the
    recipient's virtual number, which the API binds on the first print)."""
    tmp = tmp_path_factory.mktemp(f"http-labels-{http_backend}")
    home = seed_home(tmp, backend_url(http_backend, request))
    with open_app(home.settings) as app:
        virtual_numbers.add_numbers(app, Actor.local_operator(), ["17000001234"], 200)
    return home


@pytest.fixture(scope="module")
def tokens(server: Server, seeded: Seeded) -> dict[str, str]:
    return tokens_for(server, seeded, USERS)


@pytest.fixture(scope="module")
def needles(seeded: Seeded) -> set[str]:
    return set().union(*(row_pii(r) for r in seeded.net.rows))


def post_labels(server: Server, token: str | None, **body: Any) -> httpx.Response:
    r = server.request(token, "POST", f"{API}/labels", json=body)
    BODIES.append(r.content)
    return r


def label_events(server: Server, tokens: dict[str, str], number: str) -> list[dict[str, Any]]:
    r = server.request(
        tokens["sec1"], "GET", f"{API}/audit/waybills/{number}", params={"limit": 500}
    )
    assert r.status_code == 200, r.text
    return [e for e in r.json()["items"] if e["action"] == "label.print"]


def decoded(image: Image.Image) -> dict[str, str]:
    return {r.format.name: r.text for r in zxingcpp.read_barcodes(image)}


def own_numbers(seeded: Seeded, count: int) -> list[str]:
    numbers = seeded.net.s1_numbers[:count]
    assert len(numbers) == count
    return numbers


def test_clerk_prints_pdf_one_page_per_label(
    server: Server, seeded: Seeded, tokens: dict[str, str], tmp_path: Path, needles: set[str]
) -> None:
    numbers = own_numbers(seeded, 3)
    # Lower case and a repeat: normalised and printed once, in order.
    r = post_labels(server, tokens["clerk1"], tracking_numbers=[numbers[0].lower(), *numbers])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"] == 'attachment; filename="labels.pdf"'
    assert r.headers["x-label-count"] == "3"
    assert r.content.startswith(b"%PDF")
    pdf = tmp_path / "labels.pdf"
    pdf.write_bytes(r.content)
    subprocess.run(["pdftoppm", "-r", "203", "-png", str(pdf), str(tmp_path / "p")], check=True)
    pages = sorted(tmp_path.glob("p-*.png"))
    assert len(pages) == 3
    for number, page in zip(numbers, pages, strict=True):
        codes = decoded(Image.open(page))
        assert codes.get("Code128") == number
        assert codes.get("QRCode", "").startswith("wgq1.")
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], check=True, capture_output=True
    ).stdout.decode("utf-8")
    assert re.search(r"170\d{8}\s*转\d{1,4}", text), "the virtual number with its extension"
    assert scan_bytes(text.encode("utf-8"), needles) == []
    # The audit event of the batch names every waybill, written as the clerk.
    event_ids = [int(e) for e in r.headers["x-audit-event"].split(",")]
    for number in numbers:
        events = label_events(server, tokens, number)
        assert [e["event_id"] for e in events] == event_ids
        assert events[0]["actor"] == "clerk1" and events[0]["role"] == "station_clerk"
        assert events[0]["detail"]["format"] == "pdf" and events[0]["detail"]["count"] == 3


def test_zpl_stream(server: Server, seeded: Seeded, tokens: dict[str, str]) -> None:
    numbers = own_numbers(seeded, 2)
    r = post_labels(
        server, tokens["manager1"], tracking_numbers=numbers, format="zpl", size="76x130", dpi=300
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zpl"
    assert r.headers["content-disposition"] == 'attachment; filename="labels.zpl"'
    printed = re.findall(rb"\^BCN,[^\^]*\^FD([A-Z0-9]+)\^FS", r.content)
    assert printed == [n.encode() for n in numbers]
    event = label_events(server, tokens, numbers[0])[-1]
    assert event["detail"] == {
        "format": "zpl",
        "size": "76x130",
        "dpi": 300,
        "count": 2,
        "token_ttl_days": labels.DEFAULT_TOKEN_TTL_DAYS,
    }


def test_one_png_is_an_image_several_are_a_zip(
    server: Server, seeded: Seeded, tokens: dict[str, str]
) -> None:
    numbers = own_numbers(seeded, 3)
    one = post_labels(server, tokens["clerk1"], tracking_numbers=numbers[:1], format="png")
    assert one.status_code == 200, one.text
    assert one.headers["content-type"] == "image/png"
    assert one.headers["content-disposition"] == f'attachment; filename="{numbers[0]}.png"'
    assert decoded(Image.open(io.BytesIO(one.content))).get("Code128") == numbers[0]

    many = post_labels(server, tokens["admin1"], tracking_numbers=numbers, format="png")
    assert many.status_code == 200, many.text
    assert many.headers["content-type"] == "application/zip"
    assert many.headers["content-disposition"] == 'attachment; filename="labels.zip"'
    with zipfile.ZipFile(io.BytesIO(many.content)) as archive:
        assert archive.namelist() == [f"{n}.png" for n in numbers]
        for number in numbers:
            image = Image.open(io.BytesIO(archive.read(f"{number}.png")))
            assert decoded(image).get("Code128") == number


def test_out_of_scope_and_unknown_waybills_are_not_found_and_not_audited(
    server: Server, seeded: Seeded, tokens: dict[str, str]
) -> None:
    own = own_numbers(seeded, 1)[0]
    other = seeded.net.other_numbers[0]
    before = len(label_events(server, tokens, own))
    unknown = "WG9999999999999"
    for batch in ([other], [own, other], [unknown]):
        r = post_labels(server, tokens["clerk1"], tracking_numbers=batch)
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "waybill.not_found"
        assert other not in r.text and unknown not in r.text
    assert label_events(server, tokens, other) == []
    assert len(label_events(server, tokens, own)) == before  # the batch stopped whole
    # Nor was a virtual number bound for the other station's waybill.
    trail = server.request(tokens["sec1"], "GET", f"{API}/audit/waybills/{other}").json()
    assert not [e for e in trail["items"] if e["action"].startswith("numbers.")]


@pytest.mark.parametrize("user", ["courier1", "cs1", "sec1", "shopx"])
def test_roles_that_do_not_print_are_refused(
    server: Server, seeded: Seeded, tokens: dict[str, str], user: str
) -> None:
    number = seeded.assigned  # in courier1's deliveries, in every HQ role's view
    before = len(label_events(server, tokens, number))
    r = post_labels(server, tokens[user], tracking_numbers=[number])
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "not_allowed"
    assert len(label_events(server, tokens, number)) == before


def test_no_session_is_refused(server: Server, seeded: Seeded) -> None:
    r = post_labels(server, None, tracking_numbers=own_numbers(seeded, 1))
    assert r.status_code == 401


def test_batch_too_large_and_bad_options_answer_422_naming_the_field(
    server: Server, seeded: Seeded, tokens: dict[str, str]
) -> None:
    number = own_numbers(seeded, 1)[0]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tracking_numbers": [number] * (MAX_HTTP_BATCH + 1)}, "body.tracking_numbers"),
        ({"tracking_numbers": []}, "body.tracking_numbers"),
        ({"tracking_numbers": [number], "format": "svg"}, "body.format"),
        ({"tracking_numbers": [number], "size": "100x100"}, "body.size"),
        ({"tracking_numbers": [number], "dpi": 600}, "body.dpi"),
    ]
    for body, location in cases:
        r = post_labels(server, tokens["clerk1"], **body)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_request"
        assert [p["location"] for p in error["problems"]] == [location]
    # A batch of exactly the maximum is accepted by the schema (then found unknown).
    r = post_labels(
        server,
        tokens["clerk1"],
        tracking_numbers=[f"WG{9_000_000_000_000 + i}" for i in range(MAX_HTTP_BATCH)],
    )
    assert r.status_code == 404, r.text


def test_finished_waybills_are_refused_whole_batch(
    server: Server, seeded: Seeded, tokens: dict[str, str]
) -> None:
    """A cancelled waybill gets no label: printed before (its virtual number still
    bound), the label itself is refused; never printed, no number is bound for it.
    Either way the batch stops whole and nothing is audited."""
    own = own_numbers(seeded, 8)
    printed, fresh, fine = own[5], own[6], own[7]
    assert post_labels(server, tokens["clerk1"], tracking_numbers=[printed]).status_code == 200
    for number in (printed, fresh):
        r = server.request(
            tokens["clerk1"],
            "POST",
            f"{API}/waybills/{number}/events",
            json={"status": "cancelled"},
        )
        assert r.status_code == 200, r.text
    before = {n: len(label_events(server, tokens, n)) for n in (printed, fresh, fine)}
    for batch, code in (
        ([fine, printed], "label.refused"),
        ([fine, fresh], "numbers.waybill_closed"),
    ):
        r = post_labels(server, tokens["clerk1"], tracking_numbers=batch)
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == code
        assert not any(n in r.text for n in batch)
    assert {n: len(label_events(server, tokens, n)) for n in before} == before


def test_no_label_leaves_when_the_audit_write_fails(
    server: Server, seeded: Seeded, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same app in this process (the server's database), with the audit write
    failing: the answer is a bare 500, never the label, and no event is recorded."""
    number = own_numbers(seeded, 4)[3]
    before = len(label_events(server, tokens, number))

    def failing_emit(*_args: Any, **_kwargs: Any) -> int:
        raise OSError("audit log unavailable")

    monkeypatch.setattr(labels, "emit", failing_emit)
    with TestClient(create_app(seeded.settings), raise_server_exceptions=False) as client:
        r = client.post(
            f"{API}/labels",
            json={"tracking_numbers": [number]},
            headers={"Authorization": f"Bearer {tokens['clerk1']}"},
        )
    BODIES.append(r.content)
    assert r.status_code == 500
    assert not r.content.startswith(b"%PDF") and r.json()["error"]["code"] == "internal_error"
    assert len(label_events(server, tokens, number)) == before


def test_no_response_carries_personal_data(needles: set[str]) -> None:
    assert len(BODIES) > 10
    for body in BODIES:
        assert scan_bytes(body, needles) == []


@pytest.fixture(scope="module", autouse=True)
def _fresh_bodies(http_backend: str) -> Iterator[None]:
    # One list per backend run of the module.
    BODIES.clear()
    yield
