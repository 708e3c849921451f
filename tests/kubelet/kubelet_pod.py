"""One container run under bubblewrap, its ports reachable from the test through relays."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from devstack.stack import http_status

from kubelet_relay import Relay
from kubelet_sandbox import bwrap_argv, write_failures

RELAY_SCRIPT = Path(__file__).resolve().parent / "kubelet_relay.py"


class PodFailed(AssertionError):
    """The container exited or never answered; the message carries its log."""


def _read_info(fd: int) -> dict:
    buffer = b""
    while chunk := os.read(fd, 4096):
        buffer += chunk
        with contextlib.suppress(ValueError):
            return json.loads(buffer)
    raise PodFailed(f"bwrap ended before starting the command: {buffer!r}")


@dataclass
class Pod:
    """A sandboxed container: `ports` are its container ports, `upstream` the host ports it may reach."""

    name: str
    argv: list[str]
    env: dict[str, str]
    uid: int
    gid: int
    writable: list[str]
    workdir: str
    ports: list[int]
    upstream: list[int]
    folder: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)
    pid: int = 0
    host_ports: dict[int, int] = field(default_factory=dict)
    _relays: list[Relay] = field(default_factory=list, repr=False)
    _inner: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.folder / f"{self.name}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{self.host_ports[port]}"

    def start(self) -> Pod:
        """Create the namespaces, join them to the test's network through relays, then run the command."""
        self.folder.mkdir(parents=True, exist_ok=True)
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        args = bwrap_argv(self.argv, env=self.env, uid=self.uid, gid=self.gid, writable=self.writable,
                          workdir=self.workdir, hostname=f"{self.name}-0", info_fd=info_w, block_fd=block_r)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(args, pass_fds=(info_w, block_r), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        os.close(info_w)
        os.close(block_r)
        try:
            self.pid = _read_info(info_r)["child-pid"]
            self._connect()
            os.write(block_w, b"go")
        except BaseException:
            self.kill()
            raise
        finally:
            os.close(info_r)
            os.close(block_w)
        return self

    def _connect(self) -> None:
        """Relays: the pod's 127.0.0.1:PORT to each upstream server, and a host port to each container port."""
        inner: list[str] = []
        for port in self.upstream:
            sock = str(self.folder / f"u{port}.sock")
            self._relays.append(Relay(f"unix:{sock}", f"tcp:127.0.0.1:{port}"))
            inner += [f"tcp:127.0.0.1:{port}", f"unix:{sock}"]
        for port in self.ports:
            inner += [f"unix:{self.folder / f'i{port}.sock'}", f"tcp:127.0.0.1:{port}"]
        # The relay joins only the pod's network namespace, as a sidecar container shares it.
        self._inner = subprocess.Popen(
            [sys.executable, "-I", str(RELAY_SCRIPT), str(self.pid), *inner],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        if self._inner.stdout.readline().strip() != "ready":
            raise PodFailed(f"the relay in {self.name}'s network namespace did not start: {self._inner.stderr.read()}")
        for port in self.ports:
            relay = Relay("tcp:127.0.0.1:0", f"unix:{self.folder / f'i{port}.sock'}")
            self._relays.append(relay)
            self.host_ports[port] = relay.port

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, probes: dict[str, tuple[str, int]], timeout: float) -> None:
        """Wait until every httpGet probe answers 2xx, or fail with the log if the container exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise PodFailed(f"{self.name} exited with {self.proc.returncode} before it was ready:\n{self.log()}")
            codes = {kind: http_status(self.url(port) + path, 1.0) for kind, (path, port) in probes.items()}
            if all(code is not None and 200 <= code < 300 for code in codes.values()):
                return
            time.sleep(0.1)
        raise PodFailed(f"{self.name} not ready after {timeout}s ({codes}):\n{self.log()}")

    def terminate(self, budget: float) -> str | None:
        """SIGTERM, as the kubelet sends after preStop; a problem if it outlives `budget` or exits non-zero."""
        os.kill(self.pid, signal.SIGTERM)
        try:
            code = self.proc.wait(max(budget, 0.0))
        except subprocess.TimeoutExpired:
            self.kill()
            return f"{self.name} did not exit within {budget:g}s of SIGTERM: the kubelet would SIGKILL it"
        if code != 0:
            return f"{self.name} exited with {code} after SIGTERM"
        return None

    def kill(self) -> None:
        """SIGKILL the container and stop the relays."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait(10)
        if self._inner is not None and self._inner.poll() is None:
            self._inner.kill()
            self._inner.wait(10)
        for relay in self._relays:
            relay.close()
        self._relays.clear()

    def write_failures(self) -> list[str]:
        return write_failures(self.log())
