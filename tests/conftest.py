"""Shared fixtures. Real material comes from ../shared/data (tests only; the product never needs it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

torch_threads = os.environ.get("STREAM_TEST_THREADS")
if torch_threads:
    import torch

    torch.set_num_threads(int(torch_threads))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("STREAM_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.hookimpl(tryfirst=True)  # before -m selects: a browser test is a slow test wherever it is
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("browser") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test material not found at {SHARED_DATA} (set STREAM_SHARED_DATA)")
    return SHARED_DATA


# -- real PostgreSQL and Redis (tests/services.py), one each per test session ------------------------
@pytest.fixture(scope="session")
def postgres_server():
    from services import PostgresServer, postgres_bin

    folder = postgres_bin()
    if folder is None:
        pytest.skip(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; .ci/run installs Debian's postgresql)"
        )
    server = PostgresServer(folder).start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty database on the test session's PostgreSQL server."""
    return postgres_server.new_database()


@pytest.fixture(scope="session")
def redis_server():
    from services import RedisServer, redis_bin

    binary = redis_bin()
    if binary is None:
        pytest.skip("redis-server is not installed (.ci/run installs Debian's redis-server)")
    server = RedisServer(binary).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    """The test session's Redis server, emptied for this test."""
    redis_server.flush()
    return redis_server.url
