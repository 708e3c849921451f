"""Byte relays between TCP and Unix sockets, so a test can reach into a pod's network namespace.

Each sandboxed pod has a network namespace of its own (its own 127.0.0.1), as a pod has. A
path-named Unix socket is reachable from any network namespace, so one relay inside the pod's
namespace and one in the test process join the two sides. Stdlib only: it also runs as a
script that first joins the pod's network namespace
(`python -I kubelet_relay.py PID LISTEN TARGET [LISTEN TARGET ...]`).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import sys
import threading


def parse(address: str) -> tuple[int, object]:
    """`tcp:HOST:PORT` or `unix:PATH` as (socket family, address)."""
    kind, _, rest = address.partition(":")
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        return socket.AF_INET, (host, int(port))
    if kind == "unix":
        return socket.AF_UNIX, rest
    raise ValueError(f"not tcp:HOST:PORT or unix:PATH: {address!r}")


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


class Relay:
    """Accepts on `listen` and joins each connection to a new one to `target`."""

    def __init__(self, listen: str, target: str) -> None:
        family, address = parse(listen)
        self.target = parse(target)
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_UNIX:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(address)
        else:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(address)
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._join, args=(conn,), daemon=True).start()

    def _join(self, conn: socket.socket) -> None:
        family, address = self.target
        upstream = socket.socket(family, socket.SOCK_STREAM)
        try:
            upstream.connect(address)
        except OSError:
            upstream.close()
            conn.close()
            return
        back = threading.Thread(target=_pump, args=(upstream, conn), daemon=True)
        back.start()
        _pump(conn, upstream)
        back.join()
        conn.close()
        upstream.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
NS_GET_USERNS = 0xB701  # ioctl: the user namespace that owns a namespace
PR_SET_PDEATHSIG = 1


def join_network_of(pid: int) -> None:
    """Move this (single-threaded) process into the network namespace of process `pid`.

    Root joins it directly. Anyone else first joins the user namespace that owns it, which
    its creator may enter; bwrap may have nested the process's own user namespace below that one.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    net = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    if libc.setns(net, CLONE_NEWNET) == 0:
        return
    owner = fcntl.ioctl(net, NS_GET_USERNS)
    if libc.setns(owner, CLONE_NEWUSER) != 0 or libc.setns(net, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"cannot join the network namespace of pid {pid}")


def main(argv: list[str]) -> int:
    if len(argv) < 3 or len(argv) % 2 == 0:
        print("usage: kubelet_relay.py PID LISTEN TARGET [LISTEN TARGET ...]", file=sys.stderr)
        return 2
    # Gone with the test process, however it ends, as bwrap's --die-with-parent does for the pod.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    join_network_of(int(argv[0]))
    argv = argv[1:]
    for listen, target in zip(argv[::2], argv[1::2]):
        Relay(listen, target)
    print("ready", flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
