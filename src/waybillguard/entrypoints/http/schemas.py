"""Request and response bodies. Limits here only bound sizes; the services validate
content (and name the field and reason, never the value)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_ID = 2**31 - 1  # fits the database's 32-bit integer keys

PiiField = Literal[
    "sender.name",
    "sender.phone",
    "sender.address",
    "recipient.name",
    "recipient.phone",
    "recipient.address",
]
Text = Annotated[str, Field(max_length=256)]
ShortText = Annotated[str, Field(max_length=64)]
Secret = Annotated[str, Field(min_length=1, max_length=1024)]
Cursor = Annotated[int, Field(ge=0, le=MAX_ID)]


def _no_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, dict):
        return all(_no_nul(k) and _no_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_no_nul(v) for v in value)
    return True


class Strict(BaseModel):
    """Request bodies: unknown keys and NUL characters (which PostgreSQL cannot store
    and no legitimate value contains) are refused."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        if not _no_nul(data):
            raise ValueError("NUL characters are not accepted")
        return data


# -- errors ------------------------------------------------------------------------------
class ErrorDetail(BaseModel):
    code: str = Field(description="稳定的英文代码 / stable code for programs")
    message: str = Field(description="中文在前的说明 / message for people; never PII")
    model_config = ConfigDict(extra="allow")


class ErrorBody(BaseModel):
    error: ErrorDetail


class Page(BaseModel):
    items: list[Any]
    next: int | None = Field(description="下一页游标 / pass as `after`; null at the end")


# -- auth --------------------------------------------------------------------------------
class LoginIn(Strict):
    username: ShortText
    password: Secret
    totp: Annotated[str | None, Field(max_length=16)] = None
    device: ShortText | None = None


class TokenIn(Strict):
    client_id: ShortText
    client_secret: Secret


class SessionOut(BaseModel):
    token: str
    expires_at: str
    username: str
    role: str
    unit: str
    scopes: list[str]


class StepUpIn(Strict):
    totp: Annotated[str, Field(max_length=16)]


# -- waybills ----------------------------------------------------------------------------
class PartyIn(Strict):
    name: Text
    phone: Annotated[str, Field(max_length=64)]
    address: Text


class ParcelIn(Strict):
    weight_g: int | Annotated[str, Field(max_length=32)]
    category: ShortText


class WaybillIn(Strict):
    order_ref: ShortText
    merchant: ShortText | None = None
    sender: PartyIn
    recipient: PartyIn
    parcel: ParcelIn


class BatchIn(Strict):
    waybills: Annotated[list[WaybillIn], Field(min_length=1, max_length=500)]


class CreatedOut(BaseModel):
    row: int
    tracking_number: str
    merchant: str
    order_ref: str


class BatchOut(BaseModel):
    created: list[CreatedOut]


class EventIn(Strict):
    status: Annotated[str, Field(max_length=32)]
    note: Annotated[str | None, Field(max_length=200)] = None


class AssignIn(Strict):
    courier: ShortText


# -- reveal and lookup -------------------------------------------------------------------
Fields = Annotated[list[PiiField], Field(min_length=1, max_length=6)]
Purpose = Annotated[str, Field(min_length=1, max_length=64)]
Reason = Annotated[str, Field(max_length=200)]


class RevealIn(Strict):
    fields: Fields
    purpose: Purpose
    reason: Reason = ""
    totp: Annotated[str | None, Field(max_length=16)] = None
    approval_id: Annotated[int | None, Field(ge=1, le=MAX_ID)] = None


class RevealOut(BaseModel):
    """The same JSON as `waybillguard reveal --json`."""

    decision: Literal["allow", "deny", "step_up", "approval_required", "locked"]
    rule: str
    message: str
    tracking_number: str | None = None
    fields: dict[str, str] | None = None
    waybills: list[dict[str, Any]] | None = None
    needs: list[str] | None = None
    request_id: int | None = None
    audit_event: int | None = None


class LookupIn(Strict):
    phone: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str | None, Field(max_length=64)] = None
    limit: Annotated[int, Field(ge=1, le=100)] = 20


class LookupRevealIn(Strict):
    phone: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str | None, Field(max_length=64)] = None
    fields: Fields
    purpose: Purpose
    reason: Reason = ""
    totp: Annotated[str | None, Field(max_length=16)] = None


# -- identities --------------------------------------------------------------------------
class UnitIn(Strict):
    code: Annotated[str, Field(max_length=32)]
    kind: Literal["hq", "region", "station"]
    name: Annotated[str, Field(max_length=128)]
    parent: Annotated[str | None, Field(max_length=32)] = None
    covers: Annotated[list[Annotated[str, Field(max_length=6)]], Field(max_length=500)] = []
    franchise: bool = False


class UserIn(Strict):
    username: ShortText
    role: Literal[
        "courier", "station_clerk", "station_manager", "cs_agent", "security", "admin", "data_entry"
    ]
    unit: Annotated[str, Field(max_length=32)]
    grade: Annotated[int | None, Field(ge=0, le=9)] = None
    password: Secret
    device: ShortText | None = None


class ClientIn(Strict):
    name: ShortText
    unit: Annotated[str, Field(max_length=32)]
    merchant: ShortText
    fields: Annotated[list[PiiField], Field(max_length=6)]
    grade: Annotated[int | None, Field(ge=0, le=9)] = None


class ReasonIn(Strict):
    reason: Annotated[str | None, Field(max_length=128)] = None


class GradeIn(Strict):
    grade: Annotated[int, Field(ge=0, le=9)]


class PasswordIn(Strict):
    password: Secret
    reset_totp: bool = False


class DeviceIn(Strict):
    device: ShortText


# -- policy ------------------------------------------------------------------------------
class PolicyTextIn(Strict):
    text: Annotated[str, Field(min_length=1, max_length=1_000_000)]


class ExplainIn(Strict):
    user: ShortText | None = None
    waybill: Annotated[str, Field(max_length=32)]
    fields: Fields
    purpose: Annotated[str | None, Field(max_length=64)] = None


# -- exports, break-glass, tickets ---------------------------------------------------------
class ExportIn(Strict):
    fields: Fields
    purpose: Purpose
    reason: Reason
    station: Annotated[str | None, Field(max_length=32)] = None
    merchant: ShortText | None = None
    status: Annotated[str | None, Field(max_length=32)] = None
    limit: Annotated[int, Field(ge=1, le=10_000)] = 10_000


class ExportDecisionIn(Strict):
    hours: Annotated[int, Field(ge=1, le=168)] = 24


class BreakGlassIn(Strict):
    reason: Reason
    minutes: Annotated[int, Field(ge=1, le=1440)] = 60
    totp: Annotated[str | None, Field(max_length=16)] = None


class TicketIn(Strict):
    ticket_id: Annotated[str, Field(min_length=1, max_length=48)]
    waybill: Annotated[str, Field(max_length=32)]
    party: Literal["sender", "recipient"]
    # The phone the customer called or wrote from: the ticket is verified when it is
    # the party's phone (the default policy accepts only verified tickets).
    contact_phone: Annotated[str | None, Field(max_length=32)] = None
