"""The FastAPI application: `/api/v1` routes, operations endpoints, error shapes.

Thin like the CLI: each route parses its request, calls one service, and formats the
answer. Services' refusals map to HTTP statuses as the CLI maps them to exit codes
(`errors.from_exception`). Every route except `/healthz`, `/readyz`, `/metrics`,
`/api/v1/auth/login` and `/api/v1/auth/token` needs a session (deny by default).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from waybillguard.config import Settings
from waybillguard.entrypoints.http import (
    routes_admin,
    routes_audit,
    routes_core,
    routes_labels,
    routes_review,
)
from waybillguard.entrypoints.http.common import API_PREFIX, ERROR_RESPONSES, JsonResponse
from waybillguard.entrypoints.http.errors import HANDLED, error_body, from_exception
from waybillguard.entrypoints.http.errors import validation_body as _validation_body
from waybillguard.entrypoints.http.observability import (
    ObservabilityMiddleware,
    metrics_payload,
    register_template,
)
from waybillguard.entrypoints.http.reveal_lane import RevealFastLane, RevealLane
from waybillguard.services import health
from waybillguard.services.app import open_app

VERSION: Final = "1.0.0"
# Threads per worker process for the (synchronous) services; each keeps at most one
# database connection of the reveal path open. On SQLite every request writes (at least
# its audit event) and all writers share one database lock, which waiting threads poll
# with growing sleeps: one thread per process, queued on a Python lock, is much faster
# than many threads polling. PostgreSQL queues row locks properly and runs threads in
# parallel, but each thread keeps one pooled connection for the reveal path and may
# need a second one meanwhile: threads × 2 must stay within the engine's pool (5 + 10
# overflow), or threads wait on the pool while holding row locks others wait on.
# WAYBILLGUARD_THREADS overrides either.
THREADS_ENV: Final = "WAYBILLGUARD_THREADS"
SQLITE_THREADS: Final = 1
SERVER_DB_THREADS: Final = 6


def thread_count(settings: Settings) -> int:
    given = os.environ.get(THREADS_ENV, "")
    if given.isdigit() and 1 <= int(given) <= 256:
        return int(given)
    return SQLITE_THREADS if settings.uses_embedded_database else SERVER_DB_THREADS


# Routers other engineers are writing (courier/telephony). Each module, once it
# exists, exposes `router: fastapi.APIRouter`; it is mounted under /api/v1 with the
# same error responses. Use `deps.get_app` and `deps.current_caller` for the app and
# the authenticated caller.
OPTIONAL_ROUTERS: Final = ("waybillguard.entrypoints.telephony_http",)

_STATUS_CODES: Final = {
    400: "bad_request",
    401: "auth.required",
    403: "not_allowed",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
}


def _optional_routers() -> list[APIRouter]:
    found: list[APIRouter] = []
    for name in OPTIONAL_ROUTERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            found.append(router)
    return found


def create_app(settings: Settings, *, reveal_lane: bool = True) -> FastAPI:
    """The API for the home in `settings`. The vault is opened when the server starts
    (lifespan) and closed on shutdown; building the app touches nothing. Without
    `reveal_lane` every reveal goes through its FastAPI route (`reveal_lane` module)."""

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = thread_count(settings)
        application = open_app(settings)
        lane = RevealLane(application) if reveal_lane else None
        api.state.wg_reveal_lane = lane
        api.state.wg_app = application
        try:
            yield
        finally:
            api.state.wg_app = None
            api.state.wg_reveal_lane = None
            if lane is not None:
                await anyio.to_thread.run_sync(lane.close)
            application.close()

    api = FastAPI(
        title="waybillguard",
        version=VERSION,
        summary="快递运单客户数据保险库 / customer-data vault for express waybills",
        description=(
            "认证：`Authorization: Bearer <会话令牌>`（员工 POST /api/v1/auth/login，合作方 "
            'POST /api/v1/auth/token）。错误：`{"error": {"code", "message"}}`，从不含个人'
            "数据。电话只出现在请求体中，从不出现在 URL 中。\n\n"
            "Auth: `Authorization: Bearer <session token>` (staff: POST /api/v1/auth/login; "
            'partners: POST /api/v1/auth/token). Errors: `{"error": {"code", "message"}}`, '
            "never with personal data. Phone numbers only ever travel in request bodies."
        ),
        lifespan=lifespan,
        # Metrics and request logs are ours (observability.py: Prometheus, JSON lines,
        # route templates, no PII). FastAPI's native OpenTelemetry stays off rather than
        # asking the global providers whether they are configured on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        default_response_class=JsonResponse,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    api.state.wg_settings = settings
    api.state.wg_app = None
    api.state.wg_reveal_lane = None
    _install_error_handlers(api)
    api.add_middleware(RevealFastLane)  # inside the observability middleware (added last)
    api.add_middleware(ObservabilityMiddleware)

    for router in (
        routes_core.auth_router,
        routes_core.router,
        routes_review.router,
        routes_admin.router,
        routes_audit.router,
        routes_labels.router,
    ):
        api.include_router(router)
    # --- courier/telephony routers (other engineers) mount here ------------------------
    for extra in _optional_routers():
        api.include_router(extra, prefix=API_PREFIX, responses=ERROR_RESPONSES)
        for route in extra.routes:
            register_template(route, API_PREFIX + getattr(route, "path", ""))
    # -------------------------------------------------------------------------------------
    from waybillguard.entrypoints.web import mount  # the console, served by this process

    mount(api)
    _add_operations(api)
    return api


def _install_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        return JsonResponse(_validation_body(list(exc.errors())), status_code=422)

    @api.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return JsonResponse(
            error_body(code, f"请求无法处理 / request refused ({exc.status_code})"),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def _service(_request: Request, exc: Exception) -> Response:
        mapped = from_exception(exc)
        if mapped is None:  # pragma: no cover - HANDLED lists only mapped classes
            raise exc
        return JsonResponse(mapped.body(), status_code=mapped.status)

    # Only the services' known refusals are answered here; anything else reaches the
    # observability middleware, which answers a bare 500 and logs the type only.
    for cls in HANDLED:
        api.add_exception_handler(cls, _service)


def _add_operations(api: FastAPI) -> None:
    ops = APIRouter(tags=["operations"])

    @ops.get("/healthz", summary="进程存活 / the process is up")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @ops.get(
        "/readyz",
        summary="可服务（数据库、结构版本、密钥环）/ database, schema at head, keyring",
        responses={503: {"description": "未就绪 / not ready"}},
    )
    def readyz(request: Request) -> Response:
        app = getattr(request.app.state, "wg_app", None)
        if app is None:
            report: dict[str, Any] = {"ready": False, "checks": {"app": "not_started"}}
        else:
            report = health.readiness(app)
        return JsonResponse(report, status_code=200 if report["ready"] else 503)

    @ops.get(
        "/metrics",
        summary="Prometheus 指标 / metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def metrics() -> Response:
        payload, content_type = metrics_payload()
        return Response(payload, media_type=content_type)

    api.include_router(ops)
