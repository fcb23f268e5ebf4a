"""Running the API with uvicorn: one process, or several workers sharing one port.

Settings, most specific first: explicit arguments (`waybillguard serve --host …`),
the environment (`WAYBILLGUARD_HOST`, `WAYBILLGUARD_PORT`, `WAYBILLGUARD_WORKERS`),
the `[server]` table of the home's `config.toml`, then 127.0.0.1:8000 with 1 worker.
The home and database come from `config.Settings` as for every command.

With several workers uvicorn starts each one as a fresh process that builds the app
through `factory()` from the environment (the home is passed in WAYBILLGUARD_HOME),
and prometheus-client runs in multi-process mode so `/metrics` sums every worker.
SIGTERM/SIGINT shut down gracefully: the socket stops accepting, requests in flight
finish (up to `GRACEFUL_SECONDS`), then each worker closes its database connections.

uvicorn runs on uvloop with the httptools parser when both are installed (they are
dependencies on CPython/Linux and macOS): several times less CPU per request than the
stock asyncio loop with the pure-Python h11 parser, which are the fallback elsewhere
(`protocols()`). With several workers the listening socket is bound here, marked as
TCP (`listening_socket`): uvicorn's own leaves the protocol number at 0, and the stock
asyncio loop then never sets TCP_NODELAY on accepted connections, so each keep-alive
response (headers and body are two writes) waited ~40 ms for the client's delayed ACK.

Each worker listens on a socket of its own, bound to the same port with SO_REUSEPORT
(`worker_sockets.OwnSocketWorker`), so the kernel spreads new connections over the workers by their
addresses. With one shared socket, whichever worker woke first accepted every pending
connection: 32 clients connecting at once landed 31 on one worker and 1 on the other,
which then served one core's worth while the other idled. The supervisor holds a
socket bound to the port (never listening, so no connection waits on it) to claim the
port and learn it when 0 was asked for.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import socket
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI

from waybillguard.config import HOME_ENV, ConfigError, Settings, load_settings

HOST_ENV: Final = "WAYBILLGUARD_HOST"
PORT_ENV: Final = "WAYBILLGUARD_PORT"
WORKERS_ENV: Final = "WAYBILLGUARD_WORKERS"
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8000
MAX_WORKERS: Final = 64
GRACEFUL_SECONDS: Final = 30
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str
    port: int
    workers: int


def _file_server_table(settings: Settings) -> dict[str, object]:
    path = settings.config_path
    if not path.exists():
        return {}
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("server", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        raise ConfigError(f"{path} is not valid TOML") from None
    return table if isinstance(table, dict) else {}


def _int(value: object, name: str, low: int, high: int) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number") from None
    if not low <= number <= high:
        raise ConfigError(f"{name}: between {low} and {high}")
    return number


def server_settings(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
) -> ServerSettings:
    table = _file_server_table(settings)
    chosen_host = host or os.environ.get(HOST_ENV) or str(table.get("host") or DEFAULT_HOST)
    chosen_port = _int(
        port if port is not None else os.environ.get(PORT_ENV) or table.get("port") or DEFAULT_PORT,
        "port",
        0,
        65535,
    )
    chosen_workers = _int(
        workers
        if workers is not None
        else os.environ.get(WORKERS_ENV) or table.get("workers") or 1,
        "workers",
        1,
        MAX_WORKERS,
    )
    return ServerSettings(chosen_host, chosen_port, chosen_workers)


def protocols() -> tuple[str, str]:
    """uvicorn's `loop` and `http` settings: uvloop and httptools when they import,
    else the stock asyncio loop and h11."""
    return _first_importable("uvloop", "asyncio"), _first_importable("httptools", "h11")


def _first_importable(name: str, fallback: str) -> str:
    try:
        importlib.import_module(name)
    except ImportError:
        return fallback
    return name


def listening_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A bound TCP socket, created with IPPROTO_TCP: asyncio turns TCP_NODELAY on for an
    accepted connection only when the listener's protocol number says TCP (uvicorn's
    `Config.bind_socket` leaves it at 0). `reuse_port`: one of several sockets on the
    port, one per worker (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def factory() -> FastAPI:
    """The app of the home named by the environment (uvicorn's worker processes)."""
    from waybillguard.entrypoints.http.app import create_app

    return create_app(load_settings())


def check_home(settings: Settings) -> None:
    """Refuse to start on a home that is not initialised (raises NotInitialised or
    KeyringError) before any worker is spawned."""
    from waybillguard.services.app import open_app

    open_app(settings).close()


def serve(
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    home: Path | str | None = None,
) -> None:
    """Run the API until SIGINT/SIGTERM (blocking)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from waybillguard.entrypoints.http.app import create_app
    from waybillguard.entrypoints.http.observability import LOG_CONFIG
    from waybillguard.entrypoints.http.worker_sockets import own_socket_workers

    settings = load_settings(home)
    chosen = server_settings(settings, host, port, workers)
    check_home(settings)
    loop, http = protocols()
    common: dict[str, Any] = {
        "host": chosen.host,
        "port": chosen.port,
        "access_log": False,  # our middleware logs route templates, never raw paths
        "log_config": LOG_CONFIG,
        "proxy_headers": False,
        "server_header": False,
        "timeout_graceful_shutdown": GRACEFUL_SECONDS,
        "timeout_keep_alive": 30,
        "loop": loop,
        "http": http,
    }
    if chosen.workers == 1:
        uvicorn.run(create_app(settings), **common)
        return
    os.environ[HOME_ENV] = str(settings.home)
    owned = None  # a metrics directory this server made, and so removes when it stops
    if not os.environ.get(MULTIPROC_ENV):
        owned = os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="wg-metrics-")
    try:
        # What uvicorn.run does for several workers, with our own listening socket.
        config = uvicorn.Config(
            "waybillguard.entrypoints.http.server:factory",
            factory=True,
            workers=chosen.workers,
            **common,
        )
        try:
            holder = listening_socket(chosen.host, chosen.port, reuse_port=True)
        except OSError as exc:
            where = f"{chosen.host}:{chosen.port}"
            raise ConfigError(f"cannot listen on {where}: {exc.strerror}") from None
        config.port = holder.getsockname()[1]  # the port the kernel chose for 0
        logging.getLogger("uvicorn.error").info(
            "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", chosen.host, config.port
        )
        try:
            with own_socket_workers():
                Multiprocess(config, sockets=[]).run()
        except KeyboardInterrupt:
            pass
        finally:
            holder.close()
    finally:
        if owned is not None:
            shutil.rmtree(owned, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    """`python -m waybillguard.entrypoints.http.server [--host H] [--port P] [--workers N]
    [--home DIR]` — the same as `waybillguard serve`."""
    import argparse

    parser = argparse.ArgumentParser(prog="waybillguard-serve")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--home")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.workers, args.home)


if __name__ == "__main__":
    main()
