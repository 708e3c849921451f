"""Starting the three services as real processes, the way their images start them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .servers import free_port


def http_status(url: str, timeout: float = 1.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


@dataclass
class Service:
    """One service process with its environment and the port its probes answer on."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log_path: Path | None = None
    # What "started" means to a test: /readyz, or for result its first tallies (/readyz
    # answers before PostgreSQL does, as it should in a cluster).
    ready_path: str = "/readyz"
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Service:
        full_env = {**os.environ, **self.env}
        out = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 (lives with the process)
        self.proc = subprocess.Popen(
            self.argv, env=full_env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT if out else None,
            # Its own session: a terminal's Ctrl-C reaches only the runner, which then stops
            # each service with SIGTERM, the graceful way.
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout: float = 30.0, path: str | None = None) -> Service:
        path = path or self.ready_path
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}{self._log_tail()}")
            if http_status(self.url + path, 0.5) == 200:
                return self
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready on {self.url}{path} after {timeout}s{self._log_tail()}")

    def _log_tail(self) -> str:
        if self.log_path and self.log_path.exists():
            return "\n--- log ---\n" + self.log_path.read_text(errors="replace")[-3000:]
        return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 25.0) -> int | None:
        """SIGTERM, as Kubernetes sends it; SIGKILL if it outlives `timeout`."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def vote(redis_env: Mapping[str, str], *, port: int = 0, workers: int = 1, extra: Mapping[str, str] = {},
         log_path: Path | None = None) -> Service:
    port = port or free_port()
    env = {**redis_env, "HOST": "127.0.0.1", "PORT": str(port), "HTTP_WORKERS": str(workers),
           "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="vote-metrics-"), **extra}
    argv = [sys.executable, "-m", "gunicorn", "--config", "python:vote.gunicorn_conf", "vote.app:create_app()"]
    return Service("vote", argv, env, port, log_path)


def worker(redis_env: Mapping[str, str], pg_env: Mapping[str, str], *, metrics_port: int = 0,
           extra: Mapping[str, str] = {}, log_path: Path | None = None) -> Service:
    port = metrics_port or free_port()
    env = {**redis_env, **pg_env, "HOST": "127.0.0.1", "METRICS_PORT": str(port), **extra}
    return Service("worker", [sys.executable, "-m", "worker"], env, port, log_path)


def result(pg_env: Mapping[str, str], *, port: int = 0, extra: Mapping[str, str] = {},
           log_path: Path | None = None) -> Service:
    port = port or free_port()
    env = {**pg_env, "HOST": "127.0.0.1", "PORT": str(port), **extra}
    return Service("result", [sys.executable, "-m", "result"], env, port, log_path, ready_path="/api/results")


def redis_env(port: int, host: str = "127.0.0.1") -> dict[str, str]:
    return {"REDIS_HOST": host, "REDIS_PORT": str(port)}


def metric(url: str, name: str) -> float:
    """The sum of every sample of `name` (all label sets) on the service's /metrics page at `url`."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as page:
        text = page.read().decode()
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))
