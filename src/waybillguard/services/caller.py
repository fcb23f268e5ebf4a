"""Who is calling a use case: an authenticated principal and how fresh its second
factor is. Entrypoints build it from a session; services decide with it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from waybillguard.domain.identity import Principal
from waybillguard.services import auth
from waybillguard.services.activity import Actor
from waybillguard.services.app import App


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    client: str = ""  # device id or network address, for the audit log
    mfa_at: datetime | None = None  # when the session last proved a TOTP code
    session_token: str | None = None  # to record a step-up on the session

    @property
    def actor(self) -> Actor:
        return Actor.for_principal(self.principal, self.client)

    def mfa_fresh(self, now: datetime, valid: timedelta) -> bool:
        return self.mfa_at is not None and timedelta(0) <= now - self.mfa_at <= valid


def from_session(app: App, token: str, client: str = "") -> Caller:
    """The caller behind a session token (raises auth.AuthError if it is not alive)."""
    context = auth.authenticate(app, token)
    return Caller(context.principal, client=client, mfa_at=context.mfa_at, session_token=token)


def session_step_up(app: App, caller: Caller, code: str) -> datetime | None:
    """Prove a fresh TOTP code for the caller's session; the time it was proven, or None."""
    now = datetime.now(UTC)
    if auth.step_up(app, caller.principal, code, token=caller.session_token, now=now):
        return now
    return None
