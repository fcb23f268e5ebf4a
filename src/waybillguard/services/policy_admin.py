"""The access policy in force: validate, apply (as a new audited version), reload.

The policy is a reviewable TOML file; applying it stores the text verbatim as a new
version in `policy_versions` and audits the change. Every process re-reads the newest
version at most `RELOAD_SECONDS` after it was applied, so a change takes effect without
a restart. A file that fails validation never takes effect.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from waybillguard.adapters.db.access_store import AccessStore
from waybillguard.domain.audit_event import letter_digest
from waybillguard.domain.policy import Policy, default_policy_text, parse_policy
from waybillguard.services.activity import SYSTEM, Actor, emit_in
from waybillguard.services.app import App

RELOAD_SECONDS = 1.0


class PolicyVersionError(ValueError):
    def __init__(self, current: int, given: int) -> None:
        super().__init__(
            f"version: the file says {given} but version {current} is in force; "
            "bump `version` above it"
        )


@dataclass
class _Cached:
    version: int
    policy: Policy
    checked_at: float


_cache: dict[str, _Cached] = {}
_lock = threading.Lock()


def access_store(app: App) -> AccessStore:
    store = app.__dict__.get("_access_store")
    if store is None:
        store = AccessStore(app.engine)
        app.__dict__["_access_store"] = store
    return store


def _cache_key(app: App) -> str:
    """The policy cache's key for this app's database. Rendering the engine URL costs
    several microseconds and the reveal path asks on every request; an app's engine
    never changes, so the rendered text is kept on the app like its access store."""
    key = app.__dict__.get("_policy_cache_key")
    if key is None:
        key = str(app.engine.url)
        app.__dict__["_policy_cache_key"] = key
    return key


def check(text: str) -> Policy:
    """Validate a policy file (raises FieldError naming the key and the reason)."""
    return parse_policy(text)


def ensure_initial(app: App) -> int:
    """Put the packaged default policy in force if no policy was ever applied.

    Part of `init`, like creating the schema: recorded in `policy_versions` (applied by
    "system") but not as an audit event — nobody changed anything yet, and the log of a
    fresh home starts empty. Every later `apply` is audited.
    """
    store = access_store(app)
    with store.write() as conn:
        if store.current_policy_version(conn) is not None:
            return 0
        text = default_policy_text()
        policy = parse_policy(text)
        store.add_policy_version(
            conn, policy.version, policy.sha256, text, SYSTEM.name, datetime.now(UTC)
        )
    return policy.version


def apply(app: App, actor: Actor, text: str) -> Policy:
    """Validate and put a policy in force as a new version; audited."""
    policy = parse_policy(text)
    store = access_store(app)
    with store.write() as conn:
        current = store.current_policy_version(conn) or 0
        if policy.version <= current:
            raise PolicyVersionError(current, policy.version)
        store.add_policy_version(
            conn, policy.version, policy.sha256, text, actor.name, datetime.now(UTC)
        )
        emit_in(
            app,
            conn,
            actor,
            "policy.change",
            detail={
                "version": policy.version,
                "text_ref": letter_digest(text),
                "previous": current,
            },
        )
    _cache.pop(_cache_key(app), None)
    return policy


def current(app: App) -> Policy:
    """The policy in force (re-checked at most every RELOAD_SECONDS)."""
    key = _cache_key(app)
    now = time.monotonic()
    cached = _cache.get(key)
    if cached is not None and now - cached.checked_at < RELOAD_SECONDS:
        return cached.policy
    with _lock:
        store = access_store(app)
        with store.read() as conn:
            version = store.current_policy_version(conn)
            if version is None:
                policy = parse_policy(default_policy_text())
                _cache[key] = _Cached(0, policy, now)
                return policy
            if cached is not None and cached.version == version:
                cached.checked_at = now
                return cached.policy
            row = store.current_policy(conn)
        assert row is not None
        # Validated when applied; if the stored text no longer parses it was edited
        # behind our back and parse_policy raises: fail closed rather than guess.
        policy = parse_policy(row[1])
        _cache[key] = _Cached(version, policy, now)
        return policy


def text_in_force(app: App) -> tuple[int, str]:
    store = access_store(app)
    with store.read() as conn:
        row = store.current_policy(conn)
    return row if row is not None else (0, default_policy_text())


def history(app: App) -> list[dict[str, object]]:
    store = access_store(app)
    with store.read() as conn:
        return store.policy_history(conn)
