"""The application context every use case runs in: settings, store and vault."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine

from waybillguard.adapters.db import schema
from waybillguard.adapters.db.engine import make_engine
from waybillguard.adapters.db.waybill_store import WaybillStore
from waybillguard.config import DEFAULT_CONFIG, Settings
from waybillguard.vault import Vault, initialise_keyring


class NotInitialised(RuntimeError):
    def __init__(
        self, message: str = "this home is not initialised; run `waybillguard init` first"
    ) -> None:
        super().__init__(message)


@dataclass
class App:
    settings: Settings
    engine: Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = make_engine(self.settings.database_url)

    @cached_property
    def store(self) -> WaybillStore:
        return WaybillStore(self.engine)

    @cached_property
    def vault(self) -> Vault:
        return Vault.from_keyring_file(self.settings.keyring_path)

    def close(self) -> None:
        for name in ("_access_store", "_telephony_store"):
            store = self.__dict__.get(name)
            if store is not None:
                store.close()  # hot paths' kept connections, before the pool goes
        self.engine.dispose()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class InitReport:
    home: Path
    created_home: bool
    created_keyring: bool
    created_config: bool
    schema_revision: str | None


def initialise(settings: Settings) -> InitReport:
    """Create or complete a home. Idempotent; never replaces existing keys."""
    created_home = not settings.home.exists()
    settings.home.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.home, 0o700)
    created_config = False
    if not settings.config_path.exists():
        settings.config_path.write_text(DEFAULT_CONFIG, encoding="utf-8")
        created_config = True
    created_keyring = initialise_keyring(settings.keyring_path)
    with App(settings) as app:
        schema.upgrade(app.engine)
        with app.store.write() as conn:
            app.store.register_kek(conn, app.vault.active_kek_id, "active")
        revision = schema.current_revision(app.engine)
        # Imported here: the policy service itself runs inside an App.
        from waybillguard.services import policy_admin

        policy_admin.ensure_initial(app)
    return InitReport(settings.home, created_home, created_keyring, created_config, revision)


def open_app(settings: Settings) -> App:
    """Open an initialised home; refuses to run on one that was never set up."""
    if not settings.keyring_path.exists():
        raise NotInitialised()
    app = App(settings)
    current = schema.current_revision(app.engine)
    head = schema.head_revision(app.engine)
    if current != head:
        app.close()
        if current is None:
            raise NotInitialised()
        raise NotInitialised(
            f"the database schema is at revision {current} and this version needs {head}; "
            "run `waybillguard init` to bring it up to date (it never overwrites keys)"
        )
    return app
