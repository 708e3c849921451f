"""`make up`'s runner: starts everything, serves a vote end to end, and Ctrl-C leaves nothing behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import json
import re

import httpx

from devstack.servers import free_port
from devstack.up import service_env


def descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found.update(children)
            todo += children
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_runner_serves_a_vote_and_ctrl_c_stops_everything(servers_root):
    data = servers_root / "up-data"
    data.mkdir()
    data.chmod(0o755)
    vote_port, result_port, worker_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "POSTGRES_", "LOG_", "OTEL_"))}
    env.update(VOTE_PORT=str(vote_port), RESULT_PORT=str(result_port), WORKER_METRICS_PORT=str(worker_port),
               DATA_DIR=str(data))
    runner = subprocess.Popen([sys.executable, "-m", "devstack.up"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 90
        while not any("Ctrl-C stops everything" in line for line in lines):
            assert time.monotonic() < deadline and runner.poll() is None, "".join(lines)
            lines.append(runner.stdout.readline())
        assert f"http://127.0.0.1:{vote_port}" in "".join(lines)
        assert f"http://127.0.0.1:{result_port}" in "".join(lines)
        # Where each service's metrics are, beside the two pages.
        metrics = dict(re.findall(r"^ +(vote|worker|result): +(http://\S+/metrics)$", "".join(lines), re.M))
        assert metrics == {"vote": f"http://127.0.0.1:{vote_port}/metrics",
                           "worker": f"http://127.0.0.1:{worker_port}/metrics",
                           "result": f"http://127.0.0.1:{result_port}/metrics"}, "".join(lines)
        for url in metrics.values():
            assert httpx.get(url).status_code == 200
        assert httpx.post(f"http://127.0.0.1:{vote_port}/", data={"vote": "b"}).status_code == 200
        deadline = time.monotonic() + 15
        while httpx.get(f"http://127.0.0.1:{result_port}/api/results").json()["total"] != 1:
            assert time.monotonic() < deadline, "the vote never reached the result page"
            time.sleep(0.1)
        started = descendants(runner.pid)
        runner.send_signal(signal.SIGINT)
        assert runner.wait(60) == 0
    finally:
        if runner.poll() is None:
            runner.kill()
    time.sleep(0.5)
    # PostgreSQL's postmaster is not our child (pg_ctl daemonises it): check its pid file too.
    assert not (data / "postgres" / "pgdata" / "postmaster.pid").exists()
    assert [pid for pid in started if alive(pid)] == []
    # Its output is a pipe here, not a terminal: the logs are JSON, as in a cluster.
    for name in ("vote", "worker", "result"):
        lines = (data / "logs" / f"{name}.log").read_text().splitlines()
        assert lines and all(json.loads(line)["service"] == name for line in lines)


def test_logs_are_text_for_a_person_at_a_terminal_unless_asked_otherwise():
    assert service_env({}, terminal=True) == {"LOG_FORMAT": "text"}
    assert service_env({}, terminal=False) == {}
    assert service_env({"LOG_FORMAT": "json"}, terminal=True) == {}
