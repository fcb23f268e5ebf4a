"""`waybillguard serve` and `waybillguard bench http`.

Registered on the main app in cli.py::

    from waybillguard.entrypoints import http_cli
    app.command("serve")(http_cli.serve_command)
    bench_app.command("http")(http_cli.bench_http_command)
"""

from __future__ import annotations

from typing import Annotated

import typer

from waybillguard.config import ConfigError
from waybillguard.entrypoints.common import HomeOpt, JsonOpt, emit_result, err, fail, state
from waybillguard.services.app import NotInitialised
from waybillguard.vault import KeyringError


def serve_command(
    host: Annotated[
        str | None,
        typer.Option("--host", help="监听地址 / address (default 127.0.0.1; $WAYBILLGUARD_HOST)"),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=0, max=65535, help="端口 / port (default 8000)"),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, max=64, help="工作进程数 / worker processes (default 1)"),
    ] = None,
    home: HomeOpt = None,
) -> None:
    """启动 HTTP 服务 / Serve the HTTP API (Ctrl-C or SIGTERM stops it gracefully)."""
    from waybillguard.entrypoints.http import serve

    try:
        serve(host, port, workers, home or state["home"])
    except (ConfigError, NotInitialised, KeyringError) as exc:
        fail(str(exc), 2)


def bench_http_command(
    clients: Annotated[int, typer.Option("--clients", min=1, max=256)] = 32,
    workers: Annotated[int, typer.Option("--workers", min=1, max=16)] = 2,
    seconds: Annotated[float, typer.Option("--seconds", min=1, max=120)] = 5.0,
    json: JsonOpt = False,
) -> None:
    """HTTP 性能 / Reveals per second and p99 through the real server vs /healthz."""
    from waybillguard.entrypoints.http import bench

    result = bench.run(clients=clients, workers=workers, seconds=seconds, log=err.print)
    emit_result(result, json)
