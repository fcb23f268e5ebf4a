"""How `serve` sets uvicorn up: uvloop + httptools when installed (a clean fallback to
asyncio + h11 when not), a listening socket on which the stock asyncio loop turns
TCP_NODELAY on, and dependencies that stay off the thread pool."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_settings
from tests.http.harness import start_server
from waybillguard.entrypoints.http import deps, server
from waybillguard.services.app import initialise


def _installed(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def test_protocols_prefer_uvloop_and_httptools_when_installed() -> None:
    loop, http = server.protocols()
    assert loop == ("uvloop" if _installed("uvloop") else "asyncio")
    assert http == ("httptools" if _installed("httptools") else "h11")


def test_protocols_fall_back_to_asyncio_and_h11(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def without_c_extensions(name: str, package: str | None = None) -> Any:
        if name in ("uvloop", "httptools"):
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(server.importlib, "import_module", without_c_extensions)
    assert server.protocols() == ("asyncio", "h11")


def test_listening_socket_gives_accepted_connections_tcp_nodelay() -> None:
    """On the stock asyncio loop (the fallback), an accepted connection gets TCP_NODELAY
    only if the listener says IPPROTO_TCP; without it every keep-alive response waited
    ~40 ms for the client's delayed ACK."""
    sock = server.listening_socket("127.0.0.1", 0)
    assert sock.proto == socket.IPPROTO_TCP
    assert sock.get_inheritable()
    seen: list[int] = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted = transport.get_extra_info("socket")
            seen.append(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def accept_one() -> None:
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(Probe, sock=sock)
        port = sock.getsockname()[1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
        srv.close()
        await srv.wait_closed()

    asyncio.run(accept_one())  # asyncio.run: the stock loop, whatever is installed
    assert seen and seen[0] != 0


def test_listening_socket_refuses_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            server.listening_socket("127.0.0.1", taken.getsockname()[1])


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = make_settings(tmp_path_factory.mktemp("serve") / "home")
    initialise(settings)
    return settings.home


def test_serve_one_worker_passes_the_protocols(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    monkeypatch.delenv("WAYBILLGUARD_DATABASE_URL", raising=False)
    server.serve("127.0.0.1", 0, 1, home)
    loop, http = server.protocols()
    assert calls and calls[0]["loop"] == loop and calls[0]["http"] == http


def test_serve_workers_listen_on_sockets_of_their_own(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn.supervisors
    from uvicorn.supervisors import multiprocess

    from waybillguard.entrypoints.http.worker_sockets import OwnSocketWorker

    started: list[tuple[Any, list[socket.socket]]] = []

    class FakeSupervisor:
        def __init__(self, config: Any, sockets: list[socket.socket]) -> None:
            started.append((config, sockets))

        def run(self) -> None:
            # The workers it would start bind their own sockets to the port it holds.
            assert multiprocess.Process is OwnSocketWorker
            config = started[-1][0]
            assert config.port != 0
            own = server.listening_socket("127.0.0.1", config.port, reuse_port=True)
            assert own.proto == socket.IPPROTO_TCP
            own.close()

    monkeypatch.setattr(uvicorn.supervisors, "Multiprocess", FakeSupervisor)
    monkeypatch.delenv("WAYBILLGUARD_DATABASE_URL", raising=False)
    # serve() sets both for its workers: setenv here so they are undone afterwards
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("WAYBILLGUARD_HOME", str(home))
    server.serve("127.0.0.1", 0, 3, home)
    config, sockets = started[0]
    assert config.workers == 3 and config.factory and sockets == []
    assert (config.loop, config.http) == server.protocols()
    assert multiprocess.Process is not OwnSocketWorker  # put back once it returned
    # The port is free again: the supervisor's socket was closed.
    server.listening_socket("127.0.0.1", config.port).close()


def _listening_owners(port: int, pids: list[int]) -> dict[int, int]:
    """Established connections to `port`, counted per process of `pids` (by socket inode)."""
    inodes: dict[str, int] = {}
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    counts = dict.fromkeys(pids, 0)
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local_port = int(parts[1].split(":")[1], 16)
        if local_port == port and parts[3] == "01" and parts[9] in inodes:  # ESTABLISHED
            counts[inodes[parts[9]]] += 1
    return counts


def test_connections_are_spread_over_the_workers(tmp_path: Path) -> None:
    """32 clients connecting at once: with one shared socket the first worker to wake
    took nearly all (31 and 1); with a socket per worker the kernel spreads them."""
    settings = make_settings(tmp_path / "home")
    initialise(settings)
    srv = start_server(settings, tmp_path / "server.log", workers=2)
    try:
        children = Path(f"/proc/{srv.proc.pid}/task/{srv.proc.pid}/children").read_text()
        workers = [int(p) for p in children.split()]
        workers = [p for p in workers if Path(f"/proc/{p}/cmdline").read_bytes().count(b"spawn")]
        assert len(workers) == 2, workers
        conns = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(32)]
        try:
            for conn in conns:
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            for conn in conns:
                assert b"200 OK" in conn.recv(65536)
            counts = _listening_owners(srv.port, workers)
        finally:
            for conn in conns:
                conn.close()
        assert sum(counts.values()) == 32, counts
        assert min(counts.values()) >= 4, counts  # binomial(32, 1/2): below 4 once in ~400,000
    finally:
        srv.stop()


def test_keep_alive_requests_do_not_wait_for_delayed_acks(tmp_path: Path) -> None:
    """Sequential requests on one keep-alive connection to a two-worker server: each
    used to take ~44 ms (Nagle's algorithm against the client's delayed ACK)."""
    settings = make_settings(tmp_path / "home")
    initialise(settings)
    srv = start_server(settings, tmp_path / "server.log", workers=2)
    try:
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            times: list[float] = []
            for _ in range(30):
                began = time.perf_counter()
                conn.sendall(request)
                data = b""
                while b'"ok"' not in data:
                    chunk = conn.recv(65536)
                    assert chunk, "connection closed"
                    data += chunk
                times.append(time.perf_counter() - began)
        times.sort()
        assert times[len(times) // 2] < 0.02, times
    finally:
        srv.stop()


def test_app_and_caller_dependencies_are_coroutines() -> None:
    """FastAPI runs a plain-function dependency on the thread pool (one hand-off each,
    queued behind whole reveals on a SQLite server's single thread)."""
    assert inspect.iscoroutinefunction(deps.get_app)
    assert inspect.iscoroutinefunction(deps.current_caller)
