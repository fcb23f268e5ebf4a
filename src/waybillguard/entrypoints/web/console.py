"""The web console: HTML shells under `/console/…` and two small JSON endpoints.

The pages carry no data: each is a Jinja2 shell whose script (shipped with the package,
no CDN) calls the JSON API with the session token kept in `sessionStorage`. Nothing
personal ever appears in a URL: phone searches travel in POST bodies, tokens in the
`Authorization` header. The console's own endpoints (`/console/api/…`) serve what the
API has no route for (a manager's team against its tiers, reveal counts over time) and
authenticate exactly like the API (`Authorization: Bearer`, `deps.current_caller`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape

from waybillguard.domain.identity import Role
from waybillguard.entrypoints.http.common import ERROR_RESPONSES
from waybillguard.entrypoints.http.deps import AppDep, CallerDep, require
from waybillguard.entrypoints.web.i18n import MESSAGES
from waybillguard.services import audit, identities, reveal

PREFIX: Final = "/console"
STATIC_DIR: Final = Path(__file__).parent / "static"
STATIC_URL: Final = f"{PREFIX}/static"

# Which page each role lands on after logging in (a station clerk works the desk too:
# search, then reveal for delivery, return or claim).
PAGES: Final[dict[str, tuple[str, str]]] = {
    "courier": ("courier.html.j2", "courier.title"),
    "desk": ("desk.html.j2", "desk.title"),
    "manager": ("manager.html.j2", "manager.title"),
    "security": ("security.html.j2", "security.title"),
    "admin": ("admin.html.j2", "admin.title"),
}
HOME_OF_ROLE: Final[dict[str, str]] = {
    Role.COURIER.value: "courier",
    Role.CS_AGENT.value: "desk",
    Role.STATION_CLERK.value: "desk",
    Role.STATION_MANAGER.value: "manager",
    Role.SECURITY.value: "security",
    Role.ADMIN.value: "admin",
}
# Script, styles, data and API calls come from this origin only; no inline script runs.
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; media-src 'self'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
}
TEAM_ROLES: Final = (Role.STATION_MANAGER, Role.SECURITY, Role.ADMIN)
CHART_ROLES: Final = (Role.SECURITY, Role.ADMIN)

_env = Environment(
    loader=PackageLoader("waybillguard", "templates/console"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _zh(key: str) -> str:
    return MESSAGES[key][0]


_env.globals["t"] = _zh
_MESSAGES_JSON: Final = orjson.dumps(
    {key: {"zh": zh, "en": en} for key, (zh, en) in MESSAGES.items()}
).decode()

router = APIRouter(prefix=PREFIX, include_in_schema=False)
api_router = APIRouter(
    prefix=f"{PREFIX}/api", tags=["console"], responses=ERROR_RESPONSES, include_in_schema=False
)


def render(template: str, page: str, title_key: str) -> HTMLResponse:
    html = _env.get_template(template).render(
        page=page,
        title_key=title_key,
        static=STATIC_URL,
        prefix=PREFIX,
        messages_json=_MESSAGES_JSON,
        homes_json=orjson.dumps(HOME_OF_ROLE).decode(),
    )
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.get("", response_class=HTMLResponse)
def console_root() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/", status_code=307)


@router.get("/", response_class=HTMLResponse)
def login_page() -> HTMLResponse:
    return render("login.html.j2", "login", "login.title")


def _page_route(page: str, template: str, title_key: str) -> None:
    def show() -> HTMLResponse:
        return render(template, page, title_key)

    show.__name__ = f"console_{page}"
    router.add_api_route(f"/{page}", show, methods=["GET"], response_class=HTMLResponse)


for _page, (_template, _title) in PAGES.items():
    _page_route(_page, _template, _title)


# -- JSON the API has no route for -----------------------------------------------------------
@api_router.get("/team", summary="团队用量与额度 / the team's reveals against their tiers")
def team(app: AppDep, caller: CallerDep) -> dict[str, Any]:
    """Each staff member of the caller's unit and beneath it (a manager's team; all of
    headquarters for security and administrators there), with their usage per window."""
    require(caller, *TEAM_ROLES)
    me = caller.principal
    people = [
        p
        for p in identities.list_users(app)
        if p.within(me.unit) and p.role not in (Role.ADMIN, Role.SECURITY, Role.DATA_ENTRY)
    ]
    people.sort(key=lambda p: (p.unit, p.role.value, p.username))
    rows = [
        {
            "username": p.username,
            "role": p.role.value,
            "unit": p.unit,
            "grade": p.grade,
            "state": p.state.value,
            "windows": reveal.allowance(app, p),
        }
        for p in people[:500]
    ]
    return {"unit": me.unit, "items": rows}


@api_router.get("/people", summary="员工编号与用户名 / principal ids to usernames")
def people(app: AppDep, caller: CallerDep) -> dict[str, Any]:
    """Usernames of the staff and partner clients within the caller's unit, by id: the
    API's approval and export rows name requesters by id only."""
    require(caller, *TEAM_ROLES)
    me = caller.principal
    everyone = [*identities.list_users(app), *identities.list_clients(app)]
    return {"items": {str(p.id): p.username for p in everyone if p.within(me.unit)}}


def _bucket_edges(span: str, now: datetime) -> list[tuple[datetime, datetime]]:
    if span == "week":
        end = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        step, count = timedelta(days=1), 14
    else:
        end = (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        step, count = timedelta(hours=1), 24
    starts = [end - step * (count - i) for i in range(count)]
    return [(s, s + step) for s in starts]


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@api_router.get("/reveal-series", summary="查看明文次数（按时间、角色、网点）/ reveals over time")
def reveal_series(
    app: AppDep,
    caller: CallerDep,
    span: Annotated[str, Query(pattern="^(day|week)$")] = "day",
) -> dict[str, Any]:
    """Reveal requests per hour (last 24 h) or per day (last 14 days), split by role,
    plus the window's totals by unit. Counts only: no actor, no waybill, no value."""
    require(caller, *CHART_ROLES)
    now = datetime.now(UTC)
    edges = _bucket_edges(span, now)
    buckets = []
    for start, end in edges:
        rows = audit.top_revealers(app, start, end, 100)
        by_role: dict[str, int] = {}
        for r in rows:
            by_role[r["role"]] = by_role.get(r["role"], 0) + int(r["events"])
        buckets.append({"from": _stamp(start), "to": _stamp(end), "by_role": by_role})
    totals = audit.top_revealers(app, edges[0][0], edges[-1][1], 100)
    by_unit: dict[str, dict[str, int]] = {}
    for r in totals:
        entry = by_unit.setdefault(r["unit"] or "-", {"events": 0, "allowed": 0, "denied": 0})
        for key in entry:
            entry[key] += int(r[key])
    stations = [{"unit": unit, **counts} for unit, counts in sorted(by_unit.items())]
    return {"span": span, "buckets": buckets, "by_unit": stations}


def mount(app: FastAPI) -> None:
    """Serve the console on `app` (the API's FastAPI application): pages, the console's
    JSON endpoints and the packaged static assets."""
    app.include_router(router)
    app.include_router(api_router)
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="console-static")
