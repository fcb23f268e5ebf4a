"""The telephony provider interface and the call-routing callback's wire format.

A carrier's virtual-number platform ("AXN with extension") does two things for us:

1. **Binding notifications** (`TelephonyProvider.bind` / `unbind`): waybillguard tells
   the carrier which (X, extension) lines are in use and until when, so the carrier can
   answer calls to unused lines with an announcement without asking anyone.
   Notifications are advisory: the routing callback below is the authority.
2. **The routing callback**: for every call to a line the carrier POSTs a `CallEvent`
   to waybillguard's routing endpoint and connects or refuses the call as the
   `RouteReply` says. Waybillguard decides from the binding, the waybill and the
   caller's number; the carrier never holds a standing mapping to a real number.

Wire format (JSON, UTF-8; documented in docs/virtual-numbers.md):

    request   POST <route-url>   Authorization: Bearer <provider token>
              {"call_id": "c-…", "virtual_number": "17012345678",
               "extension": "4821", "caller": "+8613812345678"}
              (`caller` is "" when the caller withholds their number)
    response  200 {"action": "connect", "connect_to": "+8613900001111",
                   "target": "recipient", "rule": "route.courier"}
           or 200 {"action": "refuse", "rule": "route.stranger",
                   "announcement": "此号码不可接通 / …"}
              401 without a valid token; anything but a 200 with a well-formed
              body is treated by the carrier as a refusal (fail closed).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, Protocol, runtime_checkable

from waybillguard.domain.errors import FieldError
from waybillguard.domain.virtual_number import parse_extension, parse_virtual_number

__all__ = [
    "CallEvent",
    "HttpProvider",
    "NullProvider",
    "RouteReply",
    "TelephonyProvider",
    "decode_call",
    "decode_reply",
    "encode_call",
    "encode_reply",
]

MAX_CALL_ID: Final = 64
MAX_CALLER: Final = 32
_CALL_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
Action = Literal["connect", "refuse"]


@dataclass(frozen=True, slots=True)
class CallEvent:
    """A call arriving at a virtual line, as the carrier reports it."""

    call_id: str
    virtual_number: str
    extension: str
    caller: str = field(default="", repr=False)  # the calling number; "" when withheld


@dataclass(frozen=True, slots=True)
class RouteReply:
    """What the carrier should do with the call."""

    action: Action
    rule: str
    connect_to: str | None = field(default=None, repr=False)  # E.164, only to connect
    target: str | None = None  # recipient | courier
    announcement: str = ""


def encode_call(event: CallEvent) -> dict[str, str]:
    return {
        "call_id": event.call_id,
        "virtual_number": event.virtual_number,
        "extension": event.extension,
        "caller": event.caller,
    }


def decode_call(data: Any) -> CallEvent:
    """Validate a callback body; raises FieldError naming the field (never the value)."""
    if not isinstance(data, dict):
        raise FieldError("body", "must be a JSON object")
    call_id = data.get("call_id", "")
    if not isinstance(call_id, str) or not _CALL_ID.fullmatch(call_id):
        raise FieldError("call_id", f"1-{MAX_CALL_ID} characters A-Z a-z 0-9 . _ : -")
    number = data.get("virtual_number")
    extension = data.get("extension")
    caller = data.get("caller", "")
    if not isinstance(number, str):
        raise FieldError("virtual_number", "is required")
    if not isinstance(extension, str):
        raise FieldError("extension", "is required")
    if not isinstance(caller, str) or len(caller) > MAX_CALLER:
        raise FieldError("caller", f"text of at most {MAX_CALLER} characters")
    return CallEvent(
        call_id=call_id,
        virtual_number=parse_virtual_number(number),
        extension=parse_extension(extension),
        caller=caller.strip(),
    )


def encode_reply(reply: RouteReply) -> dict[str, str]:
    if reply.action == "connect":
        return {
            "action": "connect",
            "connect_to": reply.connect_to or "",
            "target": reply.target or "",
            "rule": reply.rule,
        }
    return {"action": "refuse", "rule": reply.rule, "announcement": reply.announcement}


def decode_reply(data: Any) -> RouteReply:
    """The carrier's reading of a reply: anything malformed is a refusal."""
    if not isinstance(data, dict):
        return RouteReply("refuse", "provider.bad_reply")
    rule = data.get("rule") if isinstance(data.get("rule"), str) else ""
    if data.get("action") == "connect":
        target = data.get("connect_to")
        if isinstance(target, str) and target.startswith("+") and target[1:].isdigit():
            who = data.get("target")
            return RouteReply("connect", rule or "", target, who if isinstance(who, str) else None)
        return RouteReply("refuse", "provider.bad_reply")
    announcement = data.get("announcement")
    return RouteReply(
        "refuse",
        rule or "provider.refused",
        announcement=announcement if isinstance(announcement, str) else "",
    )


@runtime_checkable
class TelephonyProvider(Protocol):
    """The carrier's virtual-number platform, as waybillguard uses it."""

    name: str

    def bind(self, virtual_number: str, extension: str, expires_at: datetime) -> None:
        """The line now carries a binding until `expires_at` (advisory)."""

    def unbind(self, virtual_number: str, extension: str) -> None:
        """The line no longer carries a binding (advisory)."""


class NullProvider:
    """No carrier attached: notifications go nowhere (routing still works through the
    callback endpoint)."""

    name = "none"

    def bind(self, virtual_number: str, extension: str, expires_at: datetime) -> None:
        return None

    def unbind(self, virtual_number: str, extension: str) -> None:
        return None


class HttpProvider:
    """A carrier (or the local simulator) reached over HTTP:

    POST   <base>/bindings  {"virtual_number", "extension", "expires_at"}  → 204
    DELETE <base>/bindings/<virtual_number>/<extension>                    → 204
    """

    name = "http"

    def __init__(self, base_url: str, timeout: float = 2.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _send(self, method: str, path: str, body: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the operator configures the URL
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            response.read()

    def bind(self, virtual_number: str, extension: str, expires_at: datetime) -> None:
        self._send(
            "POST",
            "/bindings",
            {
                "virtual_number": virtual_number,
                "extension": extension,
                "expires_at": expires_at.isoformat(),
            },
        )

    def unbind(self, virtual_number: str, extension: str) -> None:
        try:
            self._send("DELETE", f"/bindings/{virtual_number}/{extension}")
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
