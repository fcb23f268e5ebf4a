"""Where waybillguard keeps its state and how it is configured.

Precedence: command-line `--home` > `WAYBILLGUARD_HOME` > `./.waybillguard`.
The database defaults to SQLite inside the home; `WAYBILLGUARD_DATABASE_URL`
selects another (PostgreSQL in production). The keyring always stays in the
home, outside the database, so a stolen database dump carries no keys.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from waybillguard.domain.tracking import DEFAULT_PREFIX, validate_prefix

HOME_ENV = "WAYBILLGUARD_HOME"
DATABASE_URL_ENV = "WAYBILLGUARD_DATABASE_URL"
PREFIX_ENV = "WAYBILLGUARD_TRACKING_PREFIX"
DEFAULT_HOME = Path(".waybillguard")
CONFIG_FILE = "config.toml"
KEYRING_FILE = "keyring.json"
DATABASE_FILE = "waybillguard.db"

DEFAULT_CONFIG = f"""# waybillguard configuration. Environment variables override these values.
[tracking]
# Two uppercase letters printed before the 13 digits of every tracking number.
prefix = "{DEFAULT_PREFIX}"
"""


class ConfigError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    database_url: str
    tracking_prefix: str

    @property
    def keyring_path(self) -> Path:
        return self.home / KEYRING_FILE

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_FILE

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url.startswith("sqlite")


def _file_config(home: Path) -> dict[str, object]:
    path = home / CONFIG_FILE
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML") from exc


def load_settings(home: Path | str | None = None) -> Settings:
    home_path = Path(home or os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().absolute()
    file_cfg = _file_config(home_path)
    tracking = file_cfg.get("tracking", {})
    prefix = (
        os.environ.get(PREFIX_ENV)
        or (tracking.get("prefix") if isinstance(tracking, dict) else None)
        or DEFAULT_PREFIX
    )
    try:
        validate_prefix(str(prefix))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    url = os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{home_path / DATABASE_FILE}"
    return Settings(home=home_path, database_url=url, tracking_prefix=str(prefix))
