"""Why someone wants to see personal data: the purpose every reveal must name.

Spelled on the command line and in the API as ``delivery``, ``return``, ``claim``,
``ticket:ID`` (a customer-service ticket) or ``legal:REF`` (a legal request). The
reference must look like a ticket or case number, never like personal data: it is
written into the audit log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

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
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/]{0,47}")
_DIGIT_RUN = re.compile(r"\d{9,}")  # a ticket number, not a phone or identity number


@dataclass(frozen=True, slots=True)
class Purpose:
    kind: PurposeKind
    ref: str = ""

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.ref}" if self.ref else self.kind.value


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
            raise FieldError(
                field_name, "references are 1-48 letters, digits, '-', '_', '.', '/'"
            )
        if _DIGIT_RUN.search(ref):
            raise FieldError(field_name, "references may not contain nine or more digits in a row")
        return Purpose(kind, ref)
    if sep:
        raise FieldError(field_name, f"purpose {kind.value} takes no reference")
    return Purpose(kind)
