"""Who can act: organisation units, staff roles, partner clients and their grades.

Units form a tree: headquarters → region → station (网点). A franchise station is a
unit of its own, so its staff never share a scope with a company-run station.
Every principal (a staff user or a partner client) belongs to exactly one unit and
has a permission grade; the policy file says what each role may do and what each
grade may reveal (see `waybillguard.domain.policy`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from waybillguard.domain.errors import FieldError


class Role(StrEnum):
    COURIER = "courier"
    STATION_CLERK = "station_clerk"
    STATION_MANAGER = "station_manager"
    CS_AGENT = "cs_agent"
    SECURITY = "security"
    ADMIN = "admin"
    DATA_ENTRY = "data_entry"
    PARTNER = "partner"


STAFF_ROLES: Final = tuple(r for r in Role if r is not Role.PARTNER)

ROLE_LABELS: Final[dict[Role, tuple[str, str]]] = {
    Role.COURIER: ("快递员", "courier"),
    Role.STATION_CLERK: ("网点文员", "station clerk"),
    Role.STATION_MANAGER: ("网点负责人", "station manager"),
    Role.CS_AGENT: ("客服", "customer-service agent"),
    Role.SECURITY: ("安全审计员", "security auditor"),
    Role.ADMIN: ("管理员", "administrator"),
    Role.DATA_ENTRY: ("录单员", "data-entry clerk"),
    Role.PARTNER: ("合作方", "partner client"),
}

# Grade a principal gets when none is given; what a grade allows is policy data.
DEFAULT_GRADES: Final[dict[Role, int]] = {
    Role.COURIER: 1,
    Role.STATION_CLERK: 1,
    Role.STATION_MANAGER: 2,
    Role.CS_AGENT: 2,
    Role.SECURITY: 1,
    Role.ADMIN: 1,
    Role.DATA_ENTRY: 0,
    Role.PARTNER: 3,
}
MAX_GRADE: Final = 9


class UnitKind(StrEnum):
    HQ = "hq"
    REGION = "region"
    STATION = "station"


# Which kinds of unit may be the parent of each kind (a station may hang directly
# under headquarters in a small network).
PARENT_KINDS: Final[dict[UnitKind, tuple[UnitKind, ...]]] = {
    UnitKind.HQ: (),
    UnitKind.REGION: (UnitKind.HQ,),
    UnitKind.STATION: (UnitKind.REGION, UnitKind.HQ),
}


class PrincipalState(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    # Ran into a reveal ceiling: nothing but review (two people) brings it back.
    LOCKED = "locked"


class PrincipalKind(StrEnum):
    USER = "user"
    CLIENT = "client"


_UNIT_CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]{1,31}")
_USERNAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")
# A username is written into every audit event; a long digit run could be a phone
# number, which the audit log refuses, so refuse it here with a clearer message.
_DIGIT_RUN = re.compile(r"\d{5,}")


def parse_unit_code(text: str, field_name: str = "unit") -> str:
    raw = text.strip()
    # Check before upper-casing: "ſt" or "ﬁ" must not turn into another unit's "ST"/"FI".
    if not raw.isascii():
        raise FieldError(field_name, "unit codes are 2-32 letters, digits, '-' or '_'")
    code = raw.upper()
    if not _UNIT_CODE.fullmatch(code):
        raise FieldError(field_name, "unit codes are 2-32 letters, digits, '-' or '_'")
    if _DIGIT_RUN.search(code):
        raise FieldError(field_name, "unit codes may not contain five or more digits in a row")
    return code


def parse_username(text: str, field_name: str = "username") -> str:
    name = text.strip()
    if not _USERNAME.fullmatch(name):
        raise FieldError(
            field_name,
            "usernames are 2-32 characters: lowercase letters, digits, '.', '-', '_', "
            "starting with a letter",
        )
    if _DIGIT_RUN.search(name):
        raise FieldError(field_name, "usernames may not contain five or more digits in a row")
    return name


def parse_role(text: str, field_name: str = "role") -> Role:
    try:
        return Role(text.strip())
    except ValueError:
        raise FieldError(field_name, f"unknown role; one of {', '.join(Role)}") from None


def parse_unit_kind(text: str, field_name: str = "kind") -> UnitKind:
    try:
        return UnitKind(text.strip())
    except ValueError:
        raise FieldError(field_name, "unit kind must be hq, region or station") from None


def parse_grade(value: int, field_name: str = "grade") -> int:
    if not 0 <= value <= MAX_GRADE:
        raise FieldError(field_name, f"grade must be between 0 and {MAX_GRADE}")
    return value


def requires_totp(role: Role) -> bool:
    """Every staff role above courier needs a second factor; partners use client
    credentials instead of passwords."""
    return role not in (Role.COURIER, Role.PARTNER)


@dataclass(frozen=True, slots=True)
class Unit:
    code: str
    kind: UnitKind
    name: str
    parent: str | None = None
    franchise: bool = False
    disabled: bool = False


def check_parent(kind: UnitKind, parent: Unit | None) -> None:
    """Raise FieldError('parent', …) if `parent` cannot hold a unit of `kind`."""
    allowed = PARENT_KINDS[kind]
    if parent is None:
        if allowed:
            raise FieldError("parent", f"a {kind.value} needs a parent unit")
        return
    if parent.kind not in allowed:
        raise FieldError("parent", f"a {kind.value} cannot sit under a {parent.kind.value}")


@dataclass(frozen=True, slots=True)
class Principal:
    """A staff user or partner client as the policy sees it (no credentials)."""

    id: int
    username: str
    role: Role
    unit: str
    grade: int
    kind: PrincipalKind = PrincipalKind.USER
    state: PrincipalState = PrincipalState.ACTIVE
    # Units above `unit`, nearest first: a manager of a region oversees its stations.
    unit_path: tuple[str, ...] = ()
    # Partners only: the merchant whose shipments they may see and the fields their
    # contract lists.
    merchant: str | None = None
    contract_fields: frozenset[str] = field(default_factory=frozenset)
    # Couriers only: the registered device their sessions must come from.
    device_id: str | None = None

    @property
    def active(self) -> bool:
        return self.state is PrincipalState.ACTIVE

    def within(self, unit_code: str) -> bool:
        """True if this principal's unit is `unit_code` or lies beneath it."""
        return unit_code == self.unit or unit_code in self.unit_path
