"""Storage of units, principals, their credentials and their sessions (SQLAlchemy Core).

The store moves rows; every decision (who may log in, when a lockout ends, whether a
session is still alive) is made by `waybillguard.services.auth` and
`waybillguard.services.identities`, which run these calls inside one transaction per
step (`write()` takes SQLite's write lock up front, PostgreSQL rows are locked with
`SELECT … FOR UPDATE` where a read decides a write).

Nothing here holds a secret in the clear: passwords and client secrets are argon2id
hashes, TOTP secrets are sealed by the vault, sessions are stored as SHA-256 of the
token.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from waybillguard.adapters.db.access_tables import credentials, principals, sessions, units
from waybillguard.adapters.db.engine import TurnTakingWriter, is_sqlite
from waybillguard.adapters.db.tables import station_coverage
from waybillguard.domain.identity import (
    Principal,
    PrincipalKind,
    PrincipalState,
    Role,
    Unit,
    UnitKind,
)

# Rows of any width: SQLAlchemy types a Row by its column tuple.
_AnyRow = Row[*tuple[Any, ...]]

# Units form a tree headquarters → region → station; anything deeper is corrupt data,
# and the bound keeps a cycle written behind our back from looping forever.
MAX_UNIT_DEPTH = 8


class AlreadyExists(RuntimeError):
    """A unique key (unit code, username) was taken, possibly by a concurrent writer."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} already exists")
        self.what = what


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    # SQLite keeps the wall-clock digits and drops the offset: store UTC only.
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class StoredPrincipal:
    principal: Principal
    # The principal's unit or one above it is disabled: nobody in it may act.
    unit_disabled: bool
    state_reason: str | None = None


@dataclass(frozen=True, slots=True)
class CredentialRow:
    principal_id: int
    password_hash: str | None
    client_secret_hash: str | None
    totp_sealed: bytes | None
    totp_last_step: int | None
    failed_attempts: int
    locked_until: datetime | None

    def __repr__(self) -> str:  # hashes and sealed secrets stay out of logs and tracebacks
        return (
            f"CredentialRow(principal_id={self.principal_id}, "
            f"failed_attempts={self.failed_attempts}, locked_until={self.locked_until!r})"
        )


@dataclass(frozen=True, slots=True)
class SessionRow:
    token_hash: bytes
    principal_id: int
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime
    mfa_at: datetime | None
    device_id: str | None
    client_address: str | None
    scopes: tuple[str, ...]
    revoked_at: datetime | None

    def __repr__(self) -> str:
        return (
            f"SessionRow(id={self.token_hash[:4].hex()}…, principal_id={self.principal_id}, "
            f"expires_at={self.expires_at!r}, revoked={self.revoked_at is not None})"
        )


_UNIT_COLUMNS = (
    units.c.code,
    units.c.kind,
    units.c.name,
    units.c.parent_code,
    units.c.franchise,
    units.c.disabled,
)
_PRINCIPAL_COLUMNS = (
    principals.c.id,
    principals.c.username,
    principals.c.kind,
    principals.c.role,
    principals.c.unit_code,
    principals.c.grade,
    principals.c.state,
    principals.c.state_reason,
    principals.c.merchant,
    principals.c.contract_fields,
    principals.c.device_id,
)
_CREDENTIAL_COLUMNS = (
    credentials.c.principal_id,
    credentials.c.password_hash,
    credentials.c.client_secret_hash,
    credentials.c.totp_sealed,
    credentials.c.totp_last_step,
    credentials.c.failed_attempts,
    credentials.c.locked_until,
)
_SESSION_COLUMNS = (
    sessions.c.token_hash,
    sessions.c.principal_id,
    sessions.c.created_at,
    sessions.c.expires_at,
    sessions.c.last_seen_at,
    sessions.c.mfa_at,
    sessions.c.device_id,
    sessions.c.client_address,
    sessions.c.scopes,
    sessions.c.revoked_at,
)


def _unit(row: _AnyRow) -> Unit:
    m = row._mapping
    return Unit(
        code=m["code"],
        kind=UnitKind(m["kind"]),
        name=m["name"],
        parent=m["parent_code"],
        franchise=bool(m["franchise"]),
        disabled=bool(m["disabled"]),
    )


def _split(text: str | None, sep: str) -> tuple[str, ...]:
    return tuple(part for part in (text or "").split(sep) if part)


def _credential(row: _AnyRow) -> CredentialRow:
    m = row._mapping
    sealed = m["totp_sealed"]
    return CredentialRow(
        principal_id=int(m["principal_id"]),
        password_hash=m["password_hash"],
        client_secret_hash=m["client_secret_hash"],
        totp_sealed=bytes(sealed) if sealed is not None else None,
        totp_last_step=m["totp_last_step"],
        failed_attempts=int(m["failed_attempts"] or 0),
        locked_until=_aware(m["locked_until"]),
    )


def _session(row: _AnyRow) -> SessionRow:
    m = row._mapping
    created, expires, seen = m["created_at"], m["expires_at"], m["last_seen_at"]
    return SessionRow(
        token_hash=bytes(m["token_hash"]),
        principal_id=int(m["principal_id"]),
        created_at=_aware(created) or created,
        expires_at=_aware(expires) or expires,
        last_seen_at=_aware(seen) or seen,
        mfa_at=_aware(m["mfa_at"]),
        device_id=m["device_id"],
        client_address=m["client_address"],
        scopes=_split(m["scopes"], " "),
        revoked_at=_aware(m["revoked_at"]),
    )


class IdentityStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = TurnTakingWriter(engine)

    # -- transactions --------------------------------------------------------------
    def write(self) -> AbstractContextManager[Connection]:
        """A write transaction (`engine.TurnTakingWriter`; a session's touch runs in the
        middle of a request)."""
        return self._writer.write()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _locked(self, query: Any) -> Any:
        # SQLite has no row locks; BEGIN IMMEDIATE in write() already serialises writers.
        return query if is_sqlite(self.engine) else query.with_for_update()

    # -- units ---------------------------------------------------------------------
    def unit(self, conn: Connection, code: str) -> Unit | None:
        row = conn.execute(select(*_UNIT_COLUMNS).where(units.c.code == code)).first()
        return _unit(row) if row is not None else None

    def units(self, conn: Connection) -> list[Unit]:
        return [_unit(r) for r in conn.execute(select(*_UNIT_COLUMNS).order_by(units.c.code))]

    def insert_unit(self, conn: Connection, unit: Unit, now: datetime) -> None:
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(units).values(
                        code=unit.code,
                        kind=unit.kind.value,
                        name=unit.name,
                        parent_code=unit.parent,
                        franchise=unit.franchise,
                        disabled=unit.disabled,
                        created_at=_utc(now),
                    )
                )
        except IntegrityError:
            raise AlreadyExists("unit") from None

    def set_unit_disabled(self, conn: Connection, code: str, disabled: bool) -> bool:
        result = conn.execute(update(units).where(units.c.code == code).values(disabled=disabled))
        return bool(result.rowcount)

    def unit_chain(self, conn: Connection, code: str) -> list[Unit]:
        """The unit `code` and its ancestors, nearest first (empty if unknown)."""
        chain: list[Unit] = []
        current: str | None = code
        while current is not None and len(chain) < MAX_UNIT_DEPTH:
            unit = self.unit(conn, current)
            if unit is None:
                break
            chain.append(unit)
            current = unit.parent
        return chain

    def coverage(self, conn: Connection) -> dict[str, list[str]]:
        """station code → district codes it covers, sorted."""
        found: dict[str, list[str]] = {}
        query = select(station_coverage.c.station_code, station_coverage.c.adcode).order_by(
            station_coverage.c.station_code, station_coverage.c.adcode
        )
        for station, adcode in conn.execute(query):
            found.setdefault(station, []).append(adcode)
        return found

    def covering_stations(self, conn: Connection, adcodes: Sequence[str]) -> dict[str, str]:
        """adcode → station already covering it, for the given codes."""
        if not adcodes:
            return {}
        query = select(station_coverage.c.adcode, station_coverage.c.station_code).where(
            station_coverage.c.adcode.in_(list(adcodes))
        )
        return {adcode: station for adcode, station in conn.execute(query)}

    def member_counts(self, conn: Connection) -> dict[str, int]:
        """unit code → number of active principals in it."""
        query = (
            select(principals.c.unit_code, func.count())
            .where(principals.c.state == PrincipalState.ACTIVE.value)
            .group_by(principals.c.unit_code)
        )
        return {code: int(n) for code, n in conn.execute(query)}

    # -- principals ----------------------------------------------------------------
    def _stored(self, conn: Connection, row: _AnyRow) -> StoredPrincipal:
        m = row._mapping
        chain = self.unit_chain(conn, m["unit_code"])
        fields = frozenset(_split(m["contract_fields"], ","))
        principal = Principal(
            id=int(m["id"]),
            username=m["username"],
            role=Role(m["role"]),
            unit=m["unit_code"],
            grade=int(m["grade"]),
            kind=PrincipalKind(m["kind"]),
            state=PrincipalState(m["state"]),
            unit_path=tuple(u.code for u in chain[1:]),
            merchant=m["merchant"],
            contract_fields=fields,
            device_id=m["device_id"],
        )
        return StoredPrincipal(
            principal=principal,
            unit_disabled=not chain or any(u.disabled for u in chain),
            state_reason=m["state_reason"],
        )

    def principal(
        self,
        conn: Connection,
        *,
        username: str | None = None,
        principal_id: int | None = None,
    ) -> StoredPrincipal | None:
        query = select(*_PRINCIPAL_COLUMNS)
        if username is not None:
            query = query.where(principals.c.username == username)
        elif principal_id is not None:
            query = query.where(principals.c.id == principal_id)
        else:
            raise ValueError("give a username or a principal id")
        row = conn.execute(query).first()
        return self._stored(conn, row) if row is not None else None

    def principals(
        self,
        conn: Connection,
        *,
        unit: str | None = None,
        role: Role | None = None,
        kind: PrincipalKind | None = None,
        limit: int = 10_000,
    ) -> list[StoredPrincipal]:
        query = select(*_PRINCIPAL_COLUMNS).order_by(principals.c.username).limit(limit)
        if unit is not None:
            query = query.where(principals.c.unit_code == unit)
        if role is not None:
            query = query.where(principals.c.role == role.value)
        if kind is not None:
            query = query.where(principals.c.kind == kind.value)
        return [self._stored(conn, row) for row in conn.execute(query).all()]

    def insert_principal(
        self,
        conn: Connection,
        *,
        username: str,
        kind: PrincipalKind,
        role: Role,
        unit: str,
        grade: int,
        now: datetime,
        merchant: str | None = None,
        contract_fields: Iterable[str] = (),
        device_id: str | None = None,
    ) -> int:
        at = _utc(now)
        try:
            with conn.begin_nested():
                result = conn.execute(
                    insert(principals).values(
                        username=username,
                        kind=kind.value,
                        role=role.value,
                        unit_code=unit,
                        grade=grade,
                        state=PrincipalState.ACTIVE.value,
                        merchant=merchant,
                        contract_fields=",".join(sorted(contract_fields)) or None,
                        device_id=device_id,
                        created_at=at,
                        updated_at=at,
                    )
                )
        except IntegrityError:
            raise AlreadyExists("username") from None
        key = result.inserted_primary_key
        if key is None:
            raise RuntimeError("the database did not return the new principal's id")
        return int(key[0])

    def update_principal(
        self, conn: Connection, principal_id: int, now: datetime, **values: Any
    ) -> bool:
        result = conn.execute(
            update(principals)
            .where(principals.c.id == principal_id)
            .values(updated_at=_utc(now), **values)
        )
        return bool(result.rowcount)

    # -- credentials ---------------------------------------------------------------
    def insert_credentials(
        self,
        conn: Connection,
        principal_id: int,
        now: datetime,
        *,
        password_hash: str | None = None,
        client_secret_hash: str | None = None,
        totp_sealed: bytes | None = None,
    ) -> None:
        conn.execute(
            insert(credentials).values(
                principal_id=principal_id,
                password_hash=password_hash,
                client_secret_hash=client_secret_hash,
                totp_sealed=totp_sealed,
                totp_last_step=None,
                failed_attempts=0,
                locked_until=None,
                changed_at=_utc(now),
            )
        )

    def credentials(
        self, conn: Connection, principal_id: int, *, for_update: bool = False
    ) -> CredentialRow | None:
        query = select(*_CREDENTIAL_COLUMNS).where(credentials.c.principal_id == principal_id)
        if for_update:
            query = self._locked(query)
        row = conn.execute(query).first()
        return _credential(row) if row is not None else None

    def update_credentials(self, conn: Connection, principal_id: int, **values: Any) -> bool:
        for key in ("locked_until", "changed_at"):
            if values.get(key) is not None:
                values[key] = _utc(values[key])
        result = conn.execute(
            update(credentials).where(credentials.c.principal_id == principal_id).values(**values)
        )
        return bool(result.rowcount)

    # -- sessions ------------------------------------------------------------------
    def insert_session(
        self,
        conn: Connection,
        token_hash: bytes,
        principal_id: int,
        *,
        created_at: datetime,
        expires_at: datetime,
        mfa_at: datetime | None,
        device_id: str | None,
        client_address: str | None,
        scopes: Iterable[str] = (),
    ) -> None:
        conn.execute(
            insert(sessions).values(
                token_hash=token_hash,
                principal_id=principal_id,
                created_at=_utc(created_at),
                expires_at=_utc(expires_at),
                last_seen_at=_utc(created_at),
                mfa_at=_utc(mfa_at) if mfa_at is not None else None,
                device_id=device_id,
                client_address=client_address,
                scopes=" ".join(scopes) or None,
                revoked_at=None,
            )
        )

    def session(self, conn: Connection, token_hash: bytes) -> SessionRow | None:
        row = conn.execute(
            select(*_SESSION_COLUMNS).where(sessions.c.token_hash == token_hash)
        ).first()
        return _session(row) if row is not None else None

    def touch_session(self, conn: Connection, token_hash: bytes, now: datetime) -> None:
        at = _utc(now)
        # Never moves backwards when two requests of one session race.
        conn.execute(
            update(sessions)
            .where(sessions.c.token_hash == token_hash, sessions.c.last_seen_at < at)
            .values(last_seen_at=at)
        )

    def set_session_mfa(self, conn: Connection, token_hash: bytes, now: datetime) -> bool:
        result = conn.execute(
            update(sessions)
            .where(sessions.c.token_hash == token_hash, sessions.c.revoked_at.is_(None))
            .values(mfa_at=_utc(now), last_seen_at=_utc(now))
        )
        return bool(result.rowcount)

    def revoke_session(self, conn: Connection, token_hash: bytes, now: datetime) -> bool:
        result = conn.execute(
            update(sessions)
            .where(sessions.c.token_hash == token_hash, sessions.c.revoked_at.is_(None))
            .values(revoked_at=_utc(now))
        )
        return bool(result.rowcount)

    def revoke_sessions_of(self, conn: Connection, principal_id: int, now: datetime) -> int:
        result = conn.execute(
            update(sessions)
            .where(sessions.c.principal_id == principal_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=_utc(now))
        )
        return int(result.rowcount)
