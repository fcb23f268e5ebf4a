"""HTTP routes of virtual numbers and the courier flow (FastAPI).

`router` is mounted by the main HTTP app under `/api/v1` (it reads the application
from `request.app.state.wg_app`, the main app's convention); `create_app(settings)`
serves the router on its own (`waybillguard telephony serve`), at the same paths.

* `POST /api/v1/telephony/route` — the carrier's call-routing callback (see
  `adapters/telephony/provider.py` and docs/virtual-numbers.md). Authenticated with a
  provider token (`Authorization: Bearer …`, issued by `telephony token`), not a
  session. Answers 200 connect / refuse, 401 without a valid token, 422 for a
  malformed call, 503 if the decision could not be audited or the number decrypted —
  the carrier refuses the call on anything but a 200 connect.
* `POST /api/v1/courier/resolve {"token"}` and `POST /api/v1/courier/deliver
  {"tracking_number", "proof_ref"}` — the courier's device, with the courier's session
  (device-bound: the session's device must be the one registered for the courier).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from waybillguard.config import Settings
from waybillguard.domain.errors import FieldError
from waybillguard.services import auth, courier_flow, virtual_numbers
from waybillguard.services.app import App, open_app
from waybillguard.services.caller import Caller

API_PREFIX: Final = "/api/v1"
ROUTE_PATH: Final = "/telephony/route"

bearer = HTTPBearer(auto_error=False, description="令牌 / bearer token")
router = APIRouter(tags=["telephony"])


class CallIn(BaseModel):
    call_id: str = Field(default="c-0", max_length=64)
    virtual_number: str = Field(max_length=24)
    extension: str = Field(max_length=8)
    caller: str = Field(default="", max_length=32)


class ResolveIn(BaseModel):
    token: str = Field(max_length=128)


class DeliverIn(BaseModel):
    tracking_number: str = Field(max_length=32)
    proof_ref: str = Field(max_length=64)


def _refusal(status: int, rule: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"action": "refuse", "rule": rule, "announcement": message}, status_code=status
    )


def get_app(request: Request) -> App:
    app: App | None = getattr(request.app.state, "wg_app", None)
    if app is None:
        raise RuntimeError("the waybillguard app is not open")
    return app


AppDep = Annotated[App, Depends(get_app)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


@router.post(ROUTE_PATH, summary="话务路由回调 / the carrier's call-routing callback")
def route_call(body: CallIn, app: AppDep, credentials: BearerDep) -> JSONResponse:
    token = credentials.credentials if credentials is not None else None
    actor = virtual_numbers.provider_actor(app, token)
    if actor is None:
        return _refusal(401, "provider.unauthenticated", "未授权 / provider token required")
    try:
        result = virtual_numbers.route_call(
            app, body.virtual_number, body.extension, body.caller or None, actor=actor
        )
    except virtual_numbers.RouteFailed:
        return _refusal(503, "route.unavailable", "暂时无法接通 / temporarily unavailable")
    except Exception:  # the audit event could not be written: fail closed, no number
        return _refusal(503, "route.unavailable", "暂时无法接通 / temporarily unavailable")
    decision = result.decision
    if result.allowed and result.connect_to:
        return JSONResponse(
            {
                "action": "connect",
                "connect_to": result.connect_to,
                "target": decision.target.value if decision.target else "",
                "rule": decision.rule,
            }
        )
    return _refusal(200, decision.rule, decision.message)


def courier_caller(request: Request, app: AppDep, credentials: BearerDep) -> Caller:
    """The courier behind a device-bound session: `Caller.client` is the session's
    device (checked against the registered one by the courier flow)."""
    if credentials is None:
        raise HTTPException(401, "请先登录 / log in first")
    try:
        context = auth.authenticate(app, credentials.credentials)
    except auth.AuthError as exc:
        raise HTTPException(401, exc.message) from None
    return Caller(
        context.principal,
        client=context.device_id or "",
        mfa_at=context.mfa_at,
        session_token=credentials.credentials,
    )


CourierDep = Annotated[Caller, Depends(courier_caller)]


@router.post("/courier/resolve", summary="扫码派送 / resolve a label's QR token")
def courier_resolve(body: ResolveIn, app: AppDep, caller: CourierDep) -> JSONResponse:
    result = courier_flow.resolve(app, caller, body.token)
    return JSONResponse(result.as_json(), status_code=200 if result.allowed else 403)


@router.post("/courier/deliver", summary="签收 / mark delivered with a proof reference")
def courier_deliver(body: DeliverIn, app: AppDep, caller: CourierDep) -> JSONResponse:
    try:
        done = courier_flow.deliver(app, caller, body.tracking_number, body.proof_ref)
    except FieldError as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)
    except courier_flow.CourierRefused as exc:
        return JSONResponse(
            {"decision": "deny", "rule": exc.code, "message": exc.message}, status_code=403
        )
    return JSONResponse(done)


def create_app(settings: Settings) -> FastAPI:
    """The telephony routes served on their own (the main API mounts `router`)."""

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        application = open_app(settings)
        api.state.wg_app = application
        try:
            yield
        finally:
            application.close()

    api = FastAPI(title="waybillguard telephony", lifespan=lifespan, docs_url=None, redoc_url=None)
    api.include_router(router, prefix=API_PREFIX)

    @api.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, Any]:
        return {"ok": True}

    return api
