from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.http.harness import Seeded, Server, backend_url, seed_home, start_server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def http_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def seeded(
    http_backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Seeded:
    tmp = tmp_path_factory.mktemp(f"http-{http_backend}")
    return seed_home(tmp, backend_url(http_backend, request))


@pytest.fixture(scope="module")
def server(seeded: Seeded) -> Iterator[Server]:
    log = seeded.settings.home.parent / "server.log"
    srv = start_server(seeded.settings, log, workers=1)
    yield srv
    assert srv.stop() in (0, -15), srv.log()[-2000:]
