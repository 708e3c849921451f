"""A service's memory as its container would be charged for it: PSS, sampled while a load runs."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from .. import stack


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return found


def tree_pss(pid: int) -> int:
    """Proportional set size of a process and its descendants, in bytes.

    PSS splits each shared page among the processes that map it, so gunicorn's forked workers
    are not counted twice for what they share with the master: the sum is what the
    container's memory cgroup would charge for these processes.
    """
    total = 0
    for p in _tree(pid):
        try:
            found = re.search(r"^Pss:\s+(\d+) kB", Path(f"/proc/{p}/smaps_rollup").read_text(), re.M)
        except OSError:
            continue
        total += int(found.group(1)) * 1024 if found else 0
    return total


class MemoryWatch:
    """Samples a service's memory every 50 ms while a load runs; `.peak` is the largest sample."""

    def __init__(self, service: stack.Service) -> None:
        self.pid = service.proc.pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_pss(self.pid))
            self._stop.wait(0.05)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_pss(self.pid))
