"""A local simulated telephony provider: a small HTTP process that stands in for the
carrier's virtual-number platform, so the whole call flow runs on one machine.

It plays both sides of the carrier:

* **the phone network** — `POST /calls {"virtual_number", "extension", "caller"}` is a
  phone dialling `virtual_number` and keying `extension`. The simulator asks
  waybillguard's routing endpoint (the documented callback of
  `waybillguard.adapters.telephony.provider`) and answers what the caller would
  experience: ``{"call_id", "outcome": "connected" | "refused", "target",
  "callee_masked", "rule", "announcement"}``. The real number it was told to connect to
  is used for the (simulated) connection and never returned: `callee_masked` is masked
  the way a label masks a phone (GB/T 41833-2022), so a test can see whose phone rang.
  If the routing endpoint fails, times out or answers anything malformed, the call is
  refused (fail closed).
* **the provisioning API** — `POST /bindings`, `DELETE /bindings/<X>/<ext>`,
  `GET /bindings` (what `HttpProvider` calls).

`GET /calls` lists the call records (call id, line, outcome, rule — no caller or callee
digits), `GET /health` answers ``{"ok": true}``. Nothing is persisted; nothing is
logged but one line on start-up.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from waybillguard.adapters.telephony.provider import (
    CallEvent,
    RouteReply,
    decode_reply,
    encode_call,
)
from waybillguard.domain.errors import FieldError
from waybillguard.domain.phone import mask_phone, parse_phone
from waybillguard.domain.virtual_number import parse_extension, parse_virtual_number

MAX_BODY: Final = 4096
MAX_RECORDS: Final = 10_000
REFUSED_ANNOUNCEMENT: Final = "您拨打的号码无法接通 / the number you dialled cannot be connected"


class Switch:
    """The simulated carrier's state: provisioned lines and call records."""

    def __init__(self, route_url: str, token: str, timeout: float = 3.0) -> None:
        self.route_url = route_url
        self._token = token
        self.timeout = timeout
        self.bindings: dict[tuple[str, str], str] = {}
        self.records: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def ask(self, event: CallEvent) -> RouteReply:
        """The routing callback; any failure is a refusal."""
        request = urllib.request.Request(  # noqa: S310 - the operator configures the URL
            self.route_url,
            data=json.dumps(encode_call(event)).encode("utf-8"),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self._token}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                body = response.read(MAX_BODY + 1)
            if len(body) > MAX_BODY:
                return RouteReply("refuse", "provider.bad_reply")
            return decode_reply(json.loads(body))
        except urllib.error.HTTPError as exc:
            return RouteReply("refuse", f"provider.http_{exc.code}")
        except (OSError, ValueError):
            return RouteReply("refuse", "provider.unreachable")

    def call(self, virtual_number: str, extension: str, caller: str) -> dict[str, str]:
        call_id = f"c-{next(self._ids)}"
        event = CallEvent(call_id, virtual_number, extension, caller)
        reply = self.ask(event)
        result = {
            "call_id": call_id,
            "outcome": "refused",
            "rule": reply.rule,
            "target": "",
            "callee_masked": "",
            "announcement": reply.announcement or REFUSED_ANNOUNCEMENT,
        }
        if reply.action == "connect" and reply.connect_to:
            try:
                callee = mask_phone(parse_phone(reply.connect_to, "connect_to"))
            except FieldError:
                result["rule"] = "provider.bad_number"
            else:
                result.update(
                    outcome="connected",
                    target=reply.target or "",
                    callee_masked=callee,
                    announcement="",
                )
        with self._lock:
            if len(self.records) >= MAX_RECORDS:
                del self.records[: MAX_RECORDS // 2]
            self.records.append(
                {
                    "call_id": call_id,
                    "virtual_number": virtual_number,
                    "extension": extension,
                    "outcome": result["outcome"],
                    "rule": result["rule"],
                }
            )
        return result


def _handler(switch: Switch) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "wg-telephony-sim/1"

        def log_message(self, format: str, *args: Any) -> None:
            return None  # request lines and bodies may carry numbers: no access log

        def _json(self, status: int, body: Any = None) -> None:
            data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                raise FieldError("body", f"1-{MAX_BODY} bytes of JSON")
            try:
                return json.loads(self.rfile.read(length))
            except ValueError:
                raise FieldError("body", "is not JSON") from None

        def _guard(self, action: Callable[[], None]) -> None:
            try:
                action()
            except FieldError as exc:
                self._json(400, {"error": str(exc)})

        def do_GET(self) -> None:
            if self.path == "/health":
                self._json(200, {"ok": True})
            elif self.path == "/calls":
                with switch._lock:
                    self._json(200, list(switch.records))
            elif self.path == "/bindings":
                with switch._lock:
                    items = [
                        {"virtual_number": x, "extension": e, "expires_at": until}
                        for (x, e), until in sorted(switch.bindings.items())
                    ]
                self._json(200, items)
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self) -> None:
            if self.path == "/calls":
                self._guard(self._call)
            elif self.path == "/bindings":
                self._guard(self._bind)
            else:
                self._json(404, {"error": "not found"})

        def do_DELETE(self) -> None:
            parts = self.path.strip("/").split("/")
            if len(parts) != 3 or parts[0] != "bindings":
                self._json(404, {"error": "not found"})
                return

            def unbind() -> None:
                key = (parse_virtual_number(parts[1]), parse_extension(parts[2]))
                with switch._lock:
                    found = switch.bindings.pop(key, None)
                self._json(204 if found is not None else 404)

            self._guard(unbind)

        def _call(self) -> None:
            data = self._body()
            if not isinstance(data, dict):
                raise FieldError("body", "must be a JSON object")
            number = parse_virtual_number(str(data.get("virtual_number", "")))
            extension = parse_extension(str(data.get("extension", "")))
            caller = data.get("caller", "")
            if not isinstance(caller, str) or len(caller) > 32:
                raise FieldError("caller", "text of at most 32 characters")
            self._json(200, switch.call(number, extension, caller.strip()))

        def _bind(self) -> None:
            data = self._body()
            if not isinstance(data, dict):
                raise FieldError("body", "must be a JSON object")
            number = parse_virtual_number(str(data.get("virtual_number", "")))
            extension = parse_extension(str(data.get("extension", "")))
            until = str(data.get("expires_at", ""))[:40]
            with switch._lock:
                switch.bindings[(number, extension)] = until
            self._json(204)

    return Handler


def make_server(host: str, port: int, route_url: str, token: str) -> ThreadingHTTPServer:
    """A bound (not yet serving) simulator; port 0 picks a free port."""
    server = ThreadingHTTPServer((host, port), _handler(Switch(route_url, token)))
    server.daemon_threads = True
    return server


def serve(host: str, port: int, route_url: str, token: str) -> None:
    """Run the simulator until interrupted. Prints one line with the address it listens
    on (to standard error), so a parent process knows it is ready."""
    server = make_server(host, port, route_url, token)
    bound_host, bound_port = server.server_address[:2]
    print(f"simulator listening on http://{bound_host!s}:{bound_port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
