"""Small helpers shared by the route modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson
from fastapi import Query
from fastapi.responses import JSONResponse

from waybillguard.entrypoints.http.schemas import ErrorBody

API_PREFIX: Final = "/api/v1"
DEFAULT_LIMIT: Final = 50
# Ids and cursors fit the database's 32-bit integer keys (a larger one is a 422, not an
# overflow inside the database).
MAX_ID: Final = 2**31 - 1
MAX_LIMIT: Final = 500

LimitQuery = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="每页条数 / page size")
AfterQuery = Query(
    0, ge=0, le=MAX_ID, description="游标（上页的 next）/ cursor: `next` of the previous page"
)

# Every error status a route may answer with, documented once for all of them.
ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "请求无法解析 / bad request"),
        (401, "未登录或会话失效 / not logged in, or the session ended"),
        (403, "不允许 / not allowed"),
        (404, "不存在或不在你的范围内 / not found, or outside your scope"),
        (409, "与当前状态冲突 / conflicts with the current state"),
        (410, "已不可用 / gone"),
        (413, "请求体过大 / body too large"),
        (422, "输入无效（不回显输入值）/ invalid input (values are never echoed)"),
        (503, "服务未就绪 / not ready"),
    )
}


class JsonResponse(JSONResponse):
    """JSON rendered by orjson (a JSONResponse, so OpenAPI documents the models)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def page_of(items: Sequence[Any], limit: int, after: int) -> dict[str, Any]:
    """An offset page of a list the service returned whole (cursor = offset)."""
    chunk = list(items[after : after + limit])
    more = after + limit < len(items)
    return {"items": chunk, "next": after + limit if more else None}
