"""Where the command line keeps its login session: `<home>/session`, mode 0600.

The file holds one session token (never a password). It is replaced atomically
(temporary file, fsync, rename) so a crash never leaves half a token, and it is
refused if anyone but the owner can read it. `WAYBILLGUARD_TOKEN` in the environment
overrides the file, for scripts and for partner clients that log in elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from waybillguard.config import Settings

TOKEN_ENV = "WAYBILLGUARD_TOKEN"  # noqa: S105 - the name of a variable, not a token
SESSION_FILE = "session"
# Far above any real token (~46 characters): a larger file is not ours.
_MAX_FILE_BYTES = 4096


class SessionFileError(RuntimeError):
    """The session file exists but cannot be trusted or read."""


def session_path(settings: Settings) -> Path:
    return settings.home / SESSION_FILE


def token_from_env() -> str | None:
    value = os.environ.get(TOKEN_ENV, "").strip()
    return value or None


def load_token(settings: Settings) -> str | None:
    """The session token in effect: `WAYBILLGUARD_TOKEN`, else the session file, else None."""
    from_env = token_from_env()
    if from_env is not None:
        return from_env
    path = session_path(settings)
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SessionFileError(
            "会话文件权限过宽 / the session file is readable by others; "
            "run `waybillguard logout` and log in again"
        )
    if info.st_size > _MAX_FILE_BYTES:
        raise SessionFileError("会话文件损坏 / the session file is malformed; log in again")
    try:
        text = path.read_text(encoding="ascii").strip()
    except (UnicodeDecodeError, OSError):
        raise SessionFileError(
            "会话文件损坏 / the session file is malformed; log in again"
        ) from None
    return text or None


def save_token(settings: Settings, token: str) -> Path:
    """Write the token to `<home>/session` (0600), replacing any previous one atomically."""
    path = session_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".session-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(token.encode("ascii") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def clear_token(settings: Settings) -> bool:
    """Remove the session file; True if there was one."""
    try:
        session_path(settings).unlink()
    except FileNotFoundError:
        return False
    return True
