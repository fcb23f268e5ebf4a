"""The reveal route's fast lane: `POST /api/v1/waybills/{number}/reveal` without the
framework's per-request machinery, and with reveals committed in groups.

Why. A reveal through FastAPI cost ~2–3 ms of server CPU against ~0.6 ms for
`/healthz`; the reveal service itself is ~0.4 ms of it. The rest was routing over
every route, dependency solving, body validation, and two thread hand-offs per
request; and each reveal held SQLite's single write lock through its own WAL sync.

What. `RevealFastLane` sits inside `ObservabilityMiddleware` (so request ids, the body
limit, the log line and the metrics are the same for both lanes) and takes only the
plain case: a bearer token of a live session (looked up as `current_caller` does,
through `deps.caller_for`), a JSON body that `RevealIn` accepts, no TOTP step-up.
Anything else — no or unknown token, a malformed body, a step-up, a vault not open
yet — is handed to
the FastAPI route unchanged (the body replayed), which answers exactly as before. So
both lanes answer the same request the same way, and the OpenAPI schema still
describes the route.

`RevealLane` runs the fast lane's reveals. On SQLite one thread per worker takes
every reveal waiting when it gets to them and passes them to
`services.reveal.reveal_batch`: each is decided, charged and audited in turn, all of
them are committed with one synced commit, and only then decrypted and answered. On
PostgreSQL (which flushes concurrent commits together by itself, and locks rows, not
the database) each reveal runs on the server's thread pool on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections import deque
from typing import Any, Final

import anyio.to_thread
import orjson
from fastapi.routing import APIRoute
from pydantic import ValidationError

from waybillguard.entrypoints.http import routes_core
from waybillguard.entrypoints.http.common import API_PREFIX
from waybillguard.entrypoints.http.deps import caller_for, host_label
from waybillguard.entrypoints.http.errors import from_exception
from waybillguard.entrypoints.http.observability import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    count_reveal,
)
from waybillguard.entrypoints.http.schemas import RevealIn
from waybillguard.services import auth, policy_admin
from waybillguard.services.app import App
from waybillguard.services.reveal import RevealCall, RevealOutcome, reveal_batch

# The route's path parameter: one segment of 1–32 characters (`routes_core.Number`).
_REVEAL_PATH: Final = re.compile(re.escape(API_PREFIX) + r"/waybills/([^/]{1,32})/reveal")
_JSON_TYPES: Final = (b"application/json", b"application/json; charset=utf-8")
MAX_BATCH: Final = 64
_JSON_HEADER: Final = (b"content-type", b"application/json")

Pending = tuple[RevealCall, asyncio.Future[RevealOutcome], asyncio.AbstractEventLoop]


class RevealLane:
    """Runs the fast lane's reveals of one worker process (see the module's doc)."""

    def __init__(self, app: App, max_batch: int = MAX_BATCH) -> None:
        self.app = app
        self.max_batch = max_batch
        self.grouped = policy_admin.access_store(app).groups_writes
        self._queue: deque[Pending] = deque()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self.batches = 0  # groups committed (or failed) by the thread: for tests, a gauge
        self.calls = 0  # reveals this lane was given

    async def reveal(self, call: RevealCall) -> RevealOutcome:
        self.calls += 1
        if not self.grouped:
            [result] = await anyio.to_thread.run_sync(reveal_batch, self.app, [call])
            return _unwrap(result)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RevealOutcome] = loop.create_future()
        with self._ready:
            if self._closing:
                raise RuntimeError("the reveal lane is closed")
            if self._thread is None:
                self._start()
            self._queue.append((call, future, loop))
            self._ready.notify()
        return await future

    def close(self) -> None:
        """Finish every queued reveal, then stop the thread (blocking)."""
        with self._ready:
            self._closing = True
            self._ready.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _start(self) -> None:  # with self._ready held
        self._thread = threading.Thread(target=self._run, name="wg-reveal-lane", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                with self._ready:
                    while not self._queue and not self._closing:
                        self._ready.wait()
                    if not self._queue:
                        return
                    batch = [
                        self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch))
                    ]
                self._answer(batch)
        finally:
            policy_admin.access_store(self.app).close()  # this thread's kept connection
            with self._ready:  # stopped, or died: whoever queued meanwhile gets a new one
                if self._thread is threading.current_thread():
                    self._thread = None
                    if self._queue and not self._closing:
                        self._start()

    def _answer(self, batch: list[Pending]) -> None:
        results: list[RevealOutcome | Exception]
        self.batches += 1
        try:
            results = reveal_batch(self.app, [call for call, _f, _l in batch])
        except Exception as exc:  # the shared commit failed: nobody gets plaintext
            results = [exc] * len(batch)
        except BaseException:
            results = [RuntimeError("the reveal lane stopped")] * len(batch)
            _deliver(batch, results)
            raise
        _deliver(batch, results)


def _deliver(batch: list[Pending], results: list[RevealOutcome | Exception]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any]]] = {}
    for (_call, future, loop), result in zip(batch, results, strict=True):
        by_loop.setdefault(loop, []).append((future, result))
    for loop, answers in by_loop.items():  # one wake-up of each loop per batch
        with contextlib.suppress(RuntimeError):  # a loop closed meanwhile awaits nothing
            loop.call_soon_threadsafe(_settle, answers)


def _settle(answers: list[tuple[asyncio.Future[RevealOutcome], Any]]) -> None:
    for future, result in answers:
        if future.done():  # the request was cancelled meanwhile (client gone)
            continue
        if isinstance(result, Exception):
            future.set_exception(result)
        else:
            future.set_result(result)


def _unwrap(result: RevealOutcome | Exception) -> RevealOutcome:
    if isinstance(result, Exception):
        raise result
    return result


class RevealFastLane:
    """ASGI middleware: the plain reveal request answered here, every other request
    (and every unusual reveal request) passed on to the app unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._route = _reveal_route()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            _REVEAL_PATH.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if match is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        taken = self._take(scope, body)
        if taken is None:
            await self.app(scope, _replay(body, receive), send)
            return
        lane, token, request = taken
        client = scope.get("client")
        try:
            caller = await caller_for(lane.app, token, host_label(client[0] if client else None))
        except auth.AuthError:  # the route answers 401 the same way
            await self.app(scope, _replay(body, receive), send)
            return
        scope["route"] = self._route  # the route template in the log line and the metrics
        scope.setdefault("state", {})["role"] = caller.principal.role.value
        call = RevealCall(
            caller=caller,
            number=match.group(1),
            fields=request.fields,
            purpose=request.purpose,
            reason=request.reason,
            approval_id=request.approval_id,
        )
        try:
            outcome = await lane.reveal(call)
        except Exception as exc:
            mapped = from_exception(exc)
            if mapped is None:
                raise  # the observability middleware answers a bare 500
            await _send_json(send, mapped.status, mapped.body())
            return
        count_reveal(outcome.decision.effect.value)
        await _send_json(send, 200 if outcome.allowed else 403, outcome.as_json(single=True))

    def _take(self, scope: Scope, body: bytes) -> tuple[RevealLane, str, RevealIn] | None:
        """The lane, the token and the request, if this request is the plain case."""
        state = getattr(scope.get("app"), "state", None)
        lane: RevealLane | None = getattr(state, "wg_reveal_lane", None)
        if lane is None or getattr(state, "wg_app", None) is not lane.app:
            return None
        token, content_type = _headers(scope)
        if token is None or content_type not in _JSON_TYPES:
            return None
        try:
            request = RevealIn.model_validate(orjson.loads(body))
        except (orjson.JSONDecodeError, ValidationError):
            return None
        if request.totp:
            return None
        return lane, token, request


def _reveal_route() -> APIRoute:
    """The FastAPI route this lane stands in for (its template labels the metrics)."""
    for route in routes_core.router.routes:
        if isinstance(route, APIRoute) and route.endpoint is routes_core.reveal_waybill:
            return route
    raise LookupError("the reveal route is not in routes_core")  # pragma: no cover


def _headers(scope: Scope) -> tuple[str | None, bytes]:
    """The bearer token (as FastAPI's HTTPBearer reads it) and the content type."""
    authorization: bytes | None = None
    content_type: bytes | None = None
    for name, value in scope.get("headers", ()):  # the first of each, as Starlette's
        if name == b"authorization" and authorization is None:
            authorization = value
        elif name == b"content-type" and content_type is None:
            content_type = value.lower()
    token: str | None = None
    if authorization is not None:
        scheme, _, credentials = authorization.decode("latin-1").partition(" ")
        token = credentials if scheme.lower() == "bearer" and credentials else None
    return token, content_type or b""


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # disconnected: the app sees an empty body
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive channel that gives the body already read, then the original's."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _send_json(send: Send, status: int, content: dict[str, Any]) -> None:
    payload = orjson.dumps(content)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(payload)).encode()), _JSON_HEADER],
        }
    )
    await send({"type": "http.response.body", "body": payload})
