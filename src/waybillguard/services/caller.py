"""Who is calling a use case: an authenticated principal and how fresh its second
factor is. Entrypoints build it from a session; services decide with it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from waybillguard.domain.identity import Principal
from waybillguard.services.activity import Actor


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
