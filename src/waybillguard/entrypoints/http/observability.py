"""Request ids, structured JSON logs and Prometheus metrics — none of them with PII.

* **Request id**: `X-Request-ID` from the client if it is a short token that cannot be
  personal data (letters, digits, `-_.:`, no run of 5+ digits), else a new one; it
  comes back in the response's `X-Request-ID` and in the log line.
* **Logs**: one JSON line per request on stderr — time, request id, method, the
  *route template* (`/api/v1/waybills/{number}`, never the path with its values),
  status, duration, the principal's role and the worker's pid. No token, no query
  string, no body, no username.
* **Metrics**: labels are route templates, methods, status classes (`2xx`) and reveal
  decision names only. With several workers, prometheus-client's multi-process mode
  (PROMETHEUS_MULTIPROC_DIR, set by `serve`) sums all workers.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from waybillguard.entrypoints.http.errors import INTERNAL_MESSAGE, error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOGGER_NAME: Final = "waybillguard.http"
MAX_BODY_BYTES: Final = 2 * 1024 * 1024
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}")
_DIGITS = re.compile(r"\d{5,}")
UNMATCHED: Final = "<unmatched>"

REQUESTS = Counter(
    "waybillguard_http_requests_total",
    "HTTP requests by route template, method and status class",
    ["route", "method", "status"],
)
DURATION = Histogram(
    "waybillguard_http_request_duration_seconds",
    "HTTP request duration by route template and method",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
REVEALS = Counter(
    "waybillguard_reveal_decisions_total",
    "Reveal requests answered over HTTP, by decision",
    ["decision"],
)
DECISIONS: Final = ("allow", "deny", "step_up", "approval_required", "locked")


def count_reveal(decision: str) -> None:
    REVEALS.labels(decision if decision in DECISIONS else "other").inc()


def metrics_payload() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# -- logs --------------------------------------------------------------------------------
class JsonFormatter(logging.Formatter):
    """One JSON object per line. Only the record's message and the fields we put in
    `extra={"fields": {...}}`; exception text is reduced to its type."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            data["exception"] = record.exc_info[0].__name__
        return orjson.dumps(data).decode()


LOG_CONFIG: Final[dict[str, Any]] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "waybillguard.entrypoints.http.observability.JsonFormatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        LOGGER_NAME: {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}


def configure_logging() -> logging.Logger:
    """The request logger, with a JSON handler on stderr if none is configured yet."""
    # These JSON lines never show a record's source file, line, thread or process
    # name, so the server does not collect them for every record (the logging HOWTO's
    # "Optimization" table): walking the stack for the caller cost more than the line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(text) and not _DIGITS.search(text):
                return text
            break
    return os.urandom(16).hex()  # as random as uuid4's, without building a UUID


_TEMPLATES: dict[int, str] = {}  # routes mounted under a prefix: id(route) → full template


def register_template(route: object, template: str) -> None:
    _TEMPLATES[id(route)] = template


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    known = _TEMPLATES.get(id(route))
    if known is not None:
        return known
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


def _status_class(status: int) -> str:
    return f"{status // 100}xx"


class _TooLarge(Exception):
    pass


class ObservabilityMiddleware:
    """Request id, body limit, catch-all 500, per-request log line and metrics."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body
        self.logger = configure_logging()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        rid = request_id(headers)
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                extra = [rid_header, (b"cache-control", b"no-store")]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        received = 0

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _TooLarge()
            return message

        failure: str | None = None
        try:
            length = next((v for k, v in headers if k == b"content-length"), None)
            if length is not None and length.isdigit() and int(length) > self.max_body:
                raise _TooLarge()
            await self.app(scope, receive_wrapper, send_wrapper)
        except _TooLarge:
            if not response_started:
                await _send_json(
                    send_wrapper,
                    413,
                    error_body("too_large", f"请求体过大 / body larger than {self.max_body} bytes"),
                )
        except Exception as exc:  # never a traceback or an exception text to anyone
            failure = type(exc).__name__
            if not response_started:
                await _send_json(send_wrapper, 500, error_body("internal_error", INTERNAL_MESSAGE))
            status = 500
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            method = scope.get("method", "")
            REQUESTS.labels(route, method, _status_class(status)).inc()
            DURATION.labels(route, method).observe(elapsed)
            fields: dict[str, Any] = {
                "request_id": rid,
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "role": state.get("role", "anonymous"),
            }
            if failure is not None:
                fields["exception"] = failure
            self.logger.info("request", extra={"fields": fields})


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
