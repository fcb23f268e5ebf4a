"""Tables of access control: who exists, how they prove it, what they were allowed.

Nothing here holds personal data of customers. Credentials are stored as argon2id
hashes (passwords, client secrets), a SHA-256 of each session token, and TOTP
secrets sealed by the vault (AES-GCM, bound to the principal).

* `units`            headquarters → region → station tree (franchise stations flagged).
* `principals`       staff users and partner clients: role, unit, grade, state.
* `credentials`      password/secret hashes, sealed TOTP secret, failed-login counter.
* `sessions`         short-lived session tokens (hash only) and when MFA was last shown.
* `assignments`      which courier delivers which waybill.
* `tickets`          customer-service tickets bound to one waybill and one party.
* `quota_charges`    the reveal ledger: records charged to a principal, by time.
* `quota_hours`      the same charges summed per principal and clock hour, so a rolling
                     window's usage reads at most one hour of the ledger (see AccessStore.usage).
* `approval_requests` / `approval_votes`  step-up beyond a grade: manager, then security.
* `exports`          bulk exports under the two-person rule.
* `alerts`           what the security team must look at.
* `policy_versions`  every policy file ever applied, verbatim, with who applied it.
* `break_glass`      time-boxed emergency widening of one principal's scope.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from waybillguard.adapters.db.tables import metadata

_ID = BigInteger().with_variant(Integer(), "sqlite")

units = Table(
    "units",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(128), nullable=False),
    Column("parent_code", String(32), ForeignKey("units.code"), nullable=True),
    Column("franchise", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

principals = Table(
    "principals",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("username", String(32), nullable=False, unique=True),
    Column("kind", String(8), nullable=False),
    Column("role", String(24), nullable=False),
    Column("unit_code", String(32), ForeignKey("units.code"), nullable=False),
    Column("grade", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("state_reason", String(128), nullable=True),
    Column("merchant", String(64), nullable=True),
    Column("contract_fields", String(256), nullable=True),
    Column("device_id", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_principals_unit", "unit_code"),
)

credentials = Table(
    "credentials",
    metadata,
    Column("principal_id", _ID, ForeignKey("principals.id"), primary_key=True),
    Column("password_hash", String(256), nullable=True),
    Column("client_secret_hash", String(256), nullable=True),
    Column("totp_sealed", LargeBinary, nullable=True),
    # Last TOTP time step accepted: a code is never accepted twice.
    Column("totp_last_step", BigInteger, nullable=True),
    Column("failed_attempts", Integer, nullable=False, default=0),
    Column("locked_until", DateTime(timezone=True), nullable=True),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("principal_id", _ID, ForeignKey("principals.id"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("mfa_at", DateTime(timezone=True), nullable=True),
    Column("device_id", String(64), nullable=True),
    Column("client_address", String(64), nullable=True),
    Column("scopes", String(256), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Index("ix_sessions_principal", "principal_id"),
)

assignments = Table(
    "assignments",
    metadata,
    Column("tracking_number", String(15), primary_key=True),
    Column("courier_id", _ID, ForeignKey("principals.id"), nullable=False),
    Column("assigned_by", String(64), nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=False),
    Index("ix_assignments_courier", "courier_id"),
)

tickets = Table(
    "tickets",
    metadata,
    Column("ticket_id", String(48), primary_key=True),
    Column("tracking_number", String(15), nullable=False),
    Column("party", String(16), nullable=False),
    Column("opened_by", String(64), nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    # How the party was verified when the ticket was opened ("phone": the customer's
    # phone matched the party's, by blind index); NULL: not verified (migration 0007).
    Column("verified_by", String(16), nullable=True),
)

quota_charges = Table(
    "quota_charges",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("principal_id", _ID, ForeignKey("principals.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("records", Integer, nullable=False),
    Column("audit_event_id", BigInteger, nullable=True),
    # The written reason of a step-up reveal. Kept here, not in the audit log (which
    # holds only its hash): free text may name a person, and the log is never edited.
    Column("reason", String(256), nullable=True),
    # `records` too: the usage query reads an hour of a principal's ledger from the index
    # alone, without visiting each row (migration 0006).
    Index("ix_quota_charges_principal_at_records", "principal_id", "at", "records"),
)

# Records charged per principal and clock hour (`hour` = whole hours since 1970-01-01
# UTC), kept in the transaction of each charge: the sum of `quota_charges` rows of that
# principal in that hour, always.
quota_hours = Table(
    "quota_hours",
    metadata,
    Column("principal_id", _ID, ForeignKey("principals.id"), primary_key=True),
    Column("hour", BigInteger, primary_key=True, autoincrement=False),
    Column("records", Integer, nullable=False),
    sqlite_with_rowid=False,
)

approval_requests = Table(
    "approval_requests",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # reveal | unlock | export
    Column("requester_id", _ID, ForeignKey("principals.id"), nullable=False),
    Column("tracking_number", String(15), nullable=True),
    Column("fields", String(256), nullable=False, default=""),
    Column("purpose", String(64), nullable=False, default=""),
    Column("reason", String(256), nullable=False, default=""),
    Column("records", Integer, nullable=False, default=0),
    Column("needs", String(64), nullable=False),  # e.g. "manager,security"
    Column("state", String(16), nullable=False),  # pending | approved | denied | used | expired
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Index("ix_approval_requests_state", "state", "id"),
)

approval_votes = Table(
    "approval_votes",
    metadata,
    Column("request_id", _ID, ForeignKey("approval_requests.id"), primary_key=True),
    Column("approver_id", _ID, ForeignKey("principals.id"), primary_key=True),
    Column("capacity", String(16), nullable=False),  # manager | security | reviewer
    Column("decision", String(8), nullable=False),  # approve | deny
    Column("at", DateTime(timezone=True), nullable=False),
)

exports = Table(
    "exports",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("requester_id", _ID, ForeignKey("principals.id"), nullable=False),
    Column("fields", String(256), nullable=False),
    Column("filter", Text, nullable=False),  # JSON, no personal data
    Column("purpose", String(64), nullable=False),
    Column("reason", String(256), nullable=False),
    Column("state", String(16), nullable=False),  # requested | approved | denied | expired
    Column("approver_id", _ID, ForeignKey("principals.id"), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    # Reserved for tracing a leaked copy back to this export and its recipient.
    Column("trace_id", String(32), nullable=False, unique=True),
    Column("row_count", Integer, nullable=True),
    Column("downloads", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("principal_id", _ID, ForeignKey("principals.id"), nullable=True),
    Column("unit_code", String(32), nullable=True),
    Column("message", String(256), nullable=False),
    Column("acknowledged_by", String(32), nullable=True),
    Column("acknowledged_at", DateTime(timezone=True), nullable=True),
    Index("ix_alerts_open", "acknowledged_at", "id"),
)

policy_versions = Table(
    "policy_versions",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("sha256", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("applied_by", String(64), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

break_glass = Table(
    "break_glass",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("principal_id", _ID, ForeignKey("principals.id"), nullable=False),
    Column("reason", String(256), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Index("ix_break_glass_principal", "principal_id", "expires_at"),
)
