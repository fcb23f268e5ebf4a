"""Masked waybills page by page, within the caller's view scope, with a cursor.

`waybills.list_waybills` filters one page of rows by the caller's scope, so a courier
paging through a large network sees mostly empty pages and cannot tell where to go
on. Here the store is scanned until the page is full (or a scan budget is spent) and
the position reached is returned as the next cursor: a client follows `next` until it
is None. Like `list_waybills`, the audit event names every waybill shown.
"""

from __future__ import annotations

from typing import Any, Final

from waybillguard.domain.identity import Principal
from waybillguard.services.activity import Actor, emit
from waybillguard.services.app import App
from waybillguard.services.visibility import view_check
from waybillguard.services.waybills import MAX_LIST, masked_view

# Rows looked at per request at most: a scope that matches nothing nearby still
# answers quickly, with a cursor to go on from.
SCAN_BUDGET: Final = 20_000
_CHUNK: Final = 500


def page(
    app: App,
    actor: Actor,
    principal: Principal | None,
    limit: int,
    after: int = 0,
) -> tuple[list[dict[str, Any]], int | None]:
    """Up to `limit` masked waybills after cursor `after`, and the next cursor (None at
    the end of the table)."""
    limit = max(1, min(limit, MAX_LIST))
    decide = view_check(app, principal) if principal is not None else None
    shown: list[Any] = []
    cursor = max(0, after)
    scanned = 0
    exhausted = False
    while len(shown) < limit and scanned < SCAN_BUDGET:
        want = max(_CHUNK, limit - len(shown)) if decide is not None else limit - len(shown)
        rows = app.store.page(want, cursor)
        stopped_early = False
        for i, row in enumerate(rows):
            cursor = row.id
            scanned += 1
            if decide is None or decide(row).allowed:
                shown.append(row)
                if len(shown) >= limit:
                    stopped_early = i < len(rows) - 1
                    break
        if len(rows) < want and not stopped_early:
            exhausted = True  # the end of the table was reached and looked at
            break
    emit(
        app,
        actor,
        "waybill.list",
        waybills=[w.tracking_number for w in shown],
        detail={"count": len(shown), "after_id": max(0, after)},
    )
    return [masked_view(w) for w in shown], None if exhausted else cursor
