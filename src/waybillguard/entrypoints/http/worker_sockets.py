"""Workers that listen on sockets of their own (SO_REUSEPORT); see `server`'s docstring.

Imported only by `server.serve` when it starts several workers: uvicorn's supervisor is
not needed by any other command.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from uvicorn.supervisors import multiprocess

from waybillguard.entrypoints.http.server import listening_socket


class OwnSocketWorker(multiprocess.Process):
    """uvicorn's worker process, listening on a socket of its own bound to the
    supervisor's host and port; the sockets the supervisor passes are not used."""

    def target(self, sockets: list[socket.socket] | None = None) -> None:  # pragma: no cover
        own = listening_socket(self.config.host, self.config.port, reuse_port=True)
        super().target([own])


@contextmanager
def own_socket_workers() -> Iterator[None]:
    """uvicorn's supervisor builds its workers from its module's `Process`; while it
    runs here, that is `OwnSocketWorker`."""
    original = multiprocess.Process
    multiprocess.Process = OwnSocketWorker  # type: ignore[misc]
    try:
        yield
    finally:
        multiprocess.Process = original  # type: ignore[misc]
