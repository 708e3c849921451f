"""The bubblewrap command line that stands in for a container runtime, and the log checks after it."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

# Lines that mean the process tried to write where a read-only root lets nobody write.
WRITE_FAILURES = re.compile(
    r"Read-only file system|EROFS|Permission denied|PermissionError|Traceback \(most recent call last\)"
    r"|Failed to start control socket|Control server error"
)


def mounts(writable: list[str], exists: Callable[[str], bool] = os.path.exists) -> list[str]:
    """bwrap arguments giving a tmpfs at each emptyDir path and nowhere else.

    A path under another emptyDir is made inside that tmpfs. A path whose parent is in the
    read-only root and missing there is where a container runtime would create the mount
    point in the image's layer; bwrap cannot write the host's root, so a tmpfs over the
    nearest existing ancestor holds the mount point and is then made read-only again.
    """
    args: list[str] = []
    readonly_again: list[str] = []
    done: list[str] = []
    for path in writable:
        inside = any(path.startswith(parent.rstrip("/") + "/") for parent in done)
        if not inside and not exists(path):
            ancestor = os.path.dirname(path.rstrip("/"))
            while not exists(ancestor):
                ancestor = os.path.dirname(ancestor)
            if ancestor != "/" and ancestor not in readonly_again:
                args += ["--tmpfs", ancestor]
                readonly_again.append(ancestor)
        args += ["--tmpfs", path]
        done.append(path)
    for ancestor in readonly_again:
        args += ["--remount-ro", ancestor]
    return args


def bwrap_argv(
    argv: list[str], *, env: dict[str, str], uid: int, gid: int, writable: list[str], workdir: str,
    hostname: str, info_fd: int, block_fd: int, exists: Callable[[str], bool] = os.path.exists,
) -> list[str]:
    """A read-only root, tmpfs only at `writable`, its own user, pid, network and hostname, exactly `env`.

    The command runs as PID 1, as in a container: SIGTERM reaches it only if it handles it.
    bwrap writes the pid to `info_fd` and waits on `block_fd` before starting the command.
    """
    args = [
        "bwrap",
        "--unshare-user", "--uid", str(uid), "--gid", str(gid),
        "--unshare-pid", "--as-pid-1", "--unshare-net", "--unshare-ipc",
        "--unshare-uts", "--hostname", hostname,
        "--die-with-parent",
        "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
        *mounts(writable, exists),
        "--chdir", workdir,
        "--clearenv",
    ]
    for key, value in env.items():
        args += ["--setenv", key, value]
    args += ["--info-fd", str(info_fd), "--block-fd", str(block_fd), "--", *argv]
    return args


def write_failures(log: str) -> list[str]:
    """The log lines that show a write outside the mounts, or a crash."""
    return [line for line in log.splitlines() if WRITE_FAILURES.search(line)]
