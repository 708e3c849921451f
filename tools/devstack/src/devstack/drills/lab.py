"""The drills' lab: scratch Redis, PostgreSQL and service processes, all stopped after each drill."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import redis

from voting_contract.schema import ensure_schema

from .. import stack
from ..servers import PostgresServer, RedisServer


class Lab:
    """Scratch servers and service processes for drills; everything a drill starts, it stops."""

    def __init__(self, root: Path, postgres: PostgresServer | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # PostgreSQL's unprivileged user must reach its data dir
        self._shared_pg = postgres
        self._own_pg = postgres is None
        self._services: list[stack.Service] = []
        self._redis: list[RedisServer] = []
        self._postgres: list[PostgresServer] = []
        self._count = 0

    def _dir(self, prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(dir=self.root, prefix=prefix))
        path.chmod(0o755)
        return path

    def redis(self, *, appendonly: bool = False, fsync: str | None = None) -> RedisServer:
        server = RedisServer(self._dir("redis-"), appendonly=appendonly).start()
        self._redis.append(server)
        if fsync:
            set_fsync(server, fsync)
        return server

    def postgres(self) -> PostgresServer:
        """The shared PostgreSQL, with the schema and no votes."""
        if self._shared_pg is None:
            self._shared_pg = PostgresServer(self._dir("postgres-shared-")).start()
        with psycopg.connect(self._shared_pg.dsn, autocommit=True) as conn:
            ensure_schema(conn)
            conn.execute("TRUNCATE votes")
        return self._shared_pg

    def own_postgres(self) -> PostgresServer:
        """A PostgreSQL for a drill that stops it."""
        server = PostgresServer(self._dir("postgres-")).start()
        self._postgres.append(server)
        return server

    def launch(self, service: stack.Service, *, ready: bool = True, timeout: float = 30.0) -> stack.Service:
        self._count += 1
        service.log_path = self.root / f"{self._count:03d}-{service.name}.log"
        self._services.append(service.start())
        if ready:
            service.wait_ready(timeout)
        return service

    def cleanup(self) -> None:
        """Kill every process and own server a drill started (the shared PostgreSQL stays)."""
        for service in reversed(self._services):
            service.kill()
        self._services.clear()
        for server in self._redis:
            server.kill()
        self._redis.clear()
        for server in self._postgres:
            server.stop("immediate")
        self._postgres.clear()

    def close(self) -> None:
        self.cleanup()
        if self._own_pg and self._shared_pg is not None:
            self._shared_pg.stop("immediate")
            self._shared_pg = None


@contextlib.contextmanager
def lab_in(root: Path | None = None) -> Iterator[Lab]:
    """A lab in a scratch folder (or `root`), closed with everything in it at the end."""
    with tempfile.TemporaryDirectory(prefix="voting-drills-") as tmp:
        lab = Lab(Path(root or tmp))
        try:
            yield lab
        finally:
            lab.close()


def set_fsync(server: RedisServer, policy: str) -> None:
    """RedisServer starts with appendfsync everysec; prod runs `always` (overlays/prod)."""
    client = redis.Redis.from_url(server.url)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.config_set("appendfsync", policy)
            break
        except redis.ResponseError as exc:  # "LOADING": still replaying the append-only file
            if "loading" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    client.close()


def redis_env(server: RedisServer) -> dict[str, str]:
    """The REDIS_* settings that point a service at this server."""
    return stack.redis_env(server.port)


WORKER_FAST = {"WORKER_HEARTBEAT_SECONDS": "1"}
