"""What every route depends on: the application, the authenticated caller, role checks.

Deny by default: a route gets a caller only through `current_caller`, which requires
`Authorization: Bearer <token>` of a live session (a staff login or a partner's client
token). Routes of other engineers (labels, courier/telephony) use the same two
dependencies: `Depends(get_app)` and `Depends(current_caller)`.

Both are coroutines: FastAPI runs a plain function dependency on the thread pool, one
hand-off per dependency per request, and behind the single thread of a SQLite server
(see `app.thread_count`), so each of them queued behind whole reveals. They touch no
database except on a session-cache miss, which `current_caller` sends to the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Annotated, Final

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from waybillguard.domain.identity import Role
from waybillguard.entrypoints.http.errors import ApiError
from waybillguard.services import auth
from waybillguard.services.app import App
from waybillguard.services.caller import Caller, from_session

bearer = HTTPBearer(
    auto_error=False, scheme_name="SessionToken", description="会话令牌 / session token (wg_…)"
)

NOT_LOGGED_IN: Final = "请先登录 / log in first (Authorization: Bearer <token>)"
NOT_ALLOWED: Final = "不允许 / not allowed for your role"
SESSION_CACHE_SECONDS: Final = 1.0


async def get_app(request: Request) -> App:
    app: App | None = getattr(request.app.state, "wg_app", None)
    if app is None:  # lifespan not run (or failed): never serve without a vault
        raise ApiError(503, "not_ready", "服务未就绪 / service not ready")
    return app


def client_label(request: Request) -> str:
    return host_label(request.client.host if request.client else None)


def host_label(host: str | None) -> str:
    """How sessions and audit events name an HTTP client: by its address only."""
    return auth.client_label(f"http:{host or 'unknown'}")


class _SessionCache:
    """Sessions authenticated in this worker during the last `ttl` seconds.

    Authenticating costs three queries (session, principal, unit chain); a client
    making many calls a second pays them once a second instead. What a cached entry
    can skip is bounded: the reveal path re-reads the principal's state under its lock
    (a disabled or locked account is refused there at once), a logout evicts the
    token in the worker that served it, and any other change (logout through another
    worker, disable, expiry) takes effect within `ttl`."""

    def __init__(self, ttl: float = SESSION_CACHE_SECONDS, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, tuple[float, Caller]] = {}
        self._lock = threading.Lock()

    def get(self, token: str, client: str) -> Caller | None:
        entry = self._entries.get(token)
        if entry is None or entry[0] < time.monotonic() or entry[1].client != client:
            return None
        return entry[1]

    def put(self, token: str, caller: Caller) -> None:
        with self._lock:
            if len(self._entries) >= self.size:
                self._entries.clear()
            self._entries[token] = (time.monotonic() + self.ttl, caller)

    def evict(self, token: str) -> None:
        with self._lock:
            self._entries.pop(token, None)


SESSION_CACHE = _SessionCache()


async def current_caller(
    request: Request,
    app: Annotated[App, Depends(get_app)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "auth.required", NOT_LOGGED_IN)
    try:
        caller = await caller_for(app, credentials.credentials, client_label(request))
    except auth.AuthError as exc:
        raise ApiError(401, exc.code, exc.message) from None
    request.state.role = caller.principal.role.value
    return caller


async def caller_for(app: App, token: str, client: str) -> Caller:
    """The caller behind a session token, from the cache or (on the thread pool) the
    database; raises auth.AuthError if the session is not alive.

    When a cached session expires, every request of that client arriving meanwhile
    would look it up again; they wait for the one lookup in flight instead (and if it
    fails, each looks up on its own, so each gets its own answer)."""
    caller = SESSION_CACHE.get(token, client)
    if caller is not None:
        return caller
    loop = asyncio.get_running_loop()
    key = (token, client)
    pending = _LOOKUPS.get(key)
    if pending is not None and pending.get_loop() is loop:
        with contextlib.suppress(Exception):
            return await asyncio.shield(pending)
    future: asyncio.Future[Caller] = loop.create_future()
    future.add_done_callback(_retrieved)
    _LOOKUPS[key] = future
    try:
        caller = await run_in_threadpool(from_session, app, token, client)
    except BaseException as exc:
        if isinstance(exc, auth.AuthError):
            SESSION_CACHE.evict(token)
        future.set_exception(RuntimeError("session lookup failed"))
        raise
    else:
        SESSION_CACHE.put(token, caller)
        future.set_result(caller)
    finally:
        if _LOOKUPS.get(key) is future:
            del _LOOKUPS[key]
    return caller


# Session look-ups in flight, by (token, client): touched only on an event loop.
_LOOKUPS: dict[tuple[str, str], asyncio.Future[Caller]] = {}


def _retrieved(future: asyncio.Future[Caller]) -> None:
    if not future.cancelled():
        future.exception()  # a failure nobody waited for is not an error to report


AppDep = Annotated[App, Depends(get_app)]
CallerDep = Annotated[Caller, Depends(current_caller)]


def require(caller: Caller, *roles: Role) -> None:
    if caller.principal.role not in roles:
        raise ApiError(403, "not_allowed", NOT_ALLOWED)


def token_of(caller: Caller) -> str:
    assert caller.session_token is not None
    return caller.session_token
