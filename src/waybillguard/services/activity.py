"""Who is acting, and the audit events the use cases of this release emit.

Without a login session, command-line actions are charged to the
operating-system account that ran them (`os:<user>`, role `operator`). Every event
is written to the audit log before the command reports success; if it cannot be
written, the command fails (deny by default).
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from waybillguard.domain.audit_event import AuditEvent, format_timestamp
from waybillguard.domain.identity import Principal
from waybillguard.services import audit
from waybillguard.services.app import App


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    role: str
    unit: str = ""
    client: str = ""

    @classmethod
    def local_operator(cls) -> Actor:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return cls(
            name=f"os:{user}"[:64], role="operator", client=f"cli@{socket.gethostname()}"[:64]
        )

    @classmethod
    def for_principal(cls, principal: Principal, client: str = "") -> Actor:
        """A logged-in user or partner client; `client` is the device or address."""
        return cls(
            name=principal.username,
            role=principal.role.value,
            unit=principal.unit,
            client=client[:64],
        )


SYSTEM = Actor(name="system", role="system", client="waybillguard")


def event_of(
    actor: Actor,
    action: str,
    *,
    waybills: Sequence[str] = (),
    fields: Sequence[str] = (),
    subject_refs: Sequence[str] = (),
    purpose: str = "",
    decision: str = "allow",
    rule: str = "",
    detail: Mapping[str, str | int] | None = None,
) -> AuditEvent:
    return AuditEvent(
        action=action,
        actor=actor.name,
        role=actor.role,
        unit=actor.unit,
        decision=decision,
        rule=rule,
        purpose=purpose,
        waybills=tuple(waybills),
        fields=tuple(fields),
        subject_refs=tuple(subject_refs),
        client=actor.client,
        at=format_timestamp(datetime.now(UTC)),
        detail=dict(detail or {}),
    )


def emit(app: App, actor: Actor, action: str, **event: Any) -> int:
    """Write one audit event durably in its own transaction; returns its id. Raises if
    it cannot be written."""
    return audit.record(app, event_of(actor, action, **event))


def emit_in(app: App, conn: Connection, actor: Actor, action: str, **event: Any) -> int:
    """Write one audit event inside the caller's write transaction, so the change it
    describes and the event commit together: no unaudited change, no event for a change
    that rolled back."""
    return audit.record_in(app, conn, [event_of(actor, action, **event)])[0]
