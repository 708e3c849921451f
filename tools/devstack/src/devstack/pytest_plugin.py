"""pytest fixtures: real Redis and PostgreSQL servers on free ports, started by the suite."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from voting_contract.schema import ensure_schema

from . import stack
from .servers import PostgresServer, RedisServer

# A test that asks for any of these runs a real Redis or PostgreSQL (or a service that needs one).
SERVER_FIXTURES = {"redis_server", "postgres_server", "redis_client", "pg_conn", "own_redis", "own_postgres", "launch"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "servers: uses a real Redis or PostgreSQL (set by the fixtures it asks for)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `servers` every test whose fixtures start a server, so `-m "not servers"` needs none."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.servers)


@pytest.fixture(scope="session")
def servers_root() -> Iterator[Path]:
    """A scratch folder that PostgreSQL's unprivileged user can enter when we run as root."""
    with tempfile.TemporaryDirectory(prefix="voting-app-tests-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        yield root


@pytest.fixture(scope="session")
def redis_server(servers_root: Path) -> Iterator[RedisServer]:
    with RedisServer(servers_root / "redis-shared") as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server(servers_root: Path) -> Iterator[PostgresServer]:
    with PostgresServer(servers_root / "postgres-shared") as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the shared Redis, emptied before each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def pg_conn(postgres_server: PostgresServer) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the shared PostgreSQL, with the schema and no votes."""
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        ensure_schema(conn)
        conn.execute("TRUNCATE votes")
        yield conn


@pytest.fixture
def own_redis(servers_root: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, for tests that stop or kill it."""
    with RedisServer(Path(tempfile.mkdtemp(dir=servers_root, prefix="redis-"))) as server:
        yield server


@pytest.fixture
def own_postgres(servers_root: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, for tests that stop or kill it."""
    datadir = Path(tempfile.mkdtemp(dir=servers_root, prefix="postgres-"))
    datadir.chmod(0o755)
    server = PostgresServer(datadir).start()
    yield server
    server.stop("immediate")


@pytest.fixture
def services(tmp_path: Path) -> Iterator[list[stack.Service]]:
    """Collects service processes a test starts, and stops every one of them afterwards."""
    started: list[stack.Service] = []
    yield started
    for service in reversed(started):
        service.kill()


@pytest.fixture
def launch(services: list[stack.Service], tmp_path: Path):
    """launch(stack.vote(...)) starts a service, logging under tmp_path, and waits for /readyz."""

    def start(service: stack.Service, *, ready: bool = True, timeout: float = 30.0) -> stack.Service:
        if service.log_path is None:
            service.log_path = tmp_path / f"{service.name}-{len(services)}.log"
        services.append(service.start())
        if ready:
            service.wait_ready(timeout)
        return service

    return start
