"""Why someone wants to see personal data: the purpose every reveal must name.

Spelled on the command line and in the API as ``delivery``, ``return``, ``claim``,
``ticket:ID`` (a customer-service ticket) or ``legal:REF`` (a legal request). The
reference must look like a ticket or case number, never like personal data: it is
written into the audit log.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from waybillguard.domain.audit_event import check_free_text
from waybillguard.domain.errors import FieldError


class PurposeKind(StrEnum):
    DELIVERY = "delivery"
    TICKET = "ticket"
    RETURN = "return"
    CLAIM = "claim"
    LEGAL = "legal"


PURPOSE_LABELS: Final[dict[PurposeKind, tuple[str, str]]] = {
    PurposeKind.DELIVERY: ("派送", "delivery"),
    PurposeKind.TICKET: ("客服工单", "customer-service ticket"),
    PurposeKind.RETURN: ("退货", "return"),
    PurposeKind.CLAIM: ("理赔", "claim"),
    PurposeKind.LEGAL: ("司法/监管请求", "legal request"),
}

_NEEDS_REF: Final = frozenset({PurposeKind.TICKET, PurposeKind.LEGAL})
_SEPARATORS = re.compile(r"[\s\-./_]")
_MOBILE_LOOSE = re.compile(r"1[3-9]\d{9}")
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/]{0,47}")


@dataclass(frozen=True, slots=True)
class Purpose:
    kind: PurposeKind
    ref: str = ""

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.ref}" if self.ref else self.kind.value


def _check_not_personal(ref: str, field_name: str) -> None:
    """The reference is written into the audit log: refuse what the log refuses, and a
    mobile number hidden behind separators (138.1234.5678)."""
    try:
        check_free_text(field_name, ref)
        if _MOBILE_LOOSE.search(_SEPARATORS.sub("", ref)):
            raise FieldError(field_name, "mobile number")
    except FieldError:
        raise FieldError(
            field_name, "references may not look like a phone or identity number"
        ) from None


# Every reveal parses one; most name the same few purposes (delivery, return). The
# result is immutable and a pure function of the arguments; a refusal raises and is
# never cached.
@functools.lru_cache(maxsize=256)
def parse_purpose(text: str, field_name: str = "purpose") -> Purpose:
    raw = text.strip()
    kind_text, sep, ref = raw.partition(":")
    try:
        kind = PurposeKind(kind_text.strip().lower())
    except ValueError:
        raise FieldError(
            field_name, "purpose must be delivery, return, claim, ticket:ID or legal:REF"
        ) from None
    ref = ref.strip()
    if kind in _NEEDS_REF:
        if not sep or not ref:
            raise FieldError(field_name, f"purpose {kind.value} needs a reference: {kind.value}:ID")
        if not _REF.fullmatch(ref):
            raise FieldError(field_name, "references are 1-48 letters, digits, '-', '_', '.', '/'")
        _check_not_personal(ref, field_name)
        return Purpose(kind, ref)
    if sep:
        raise FieldError(field_name, f"purpose {kind.value} takes no reference")
    return Purpose(kind)
