"""The dev overlay on a real cluster: votes go in over HTTP, tallies come out of the result websocket,
and the NetworkPolicies hold."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.sync.client import connect

# The first test also pays for the cluster and the image builds: far beyond the default 300 s.
pytestmark = [pytest.mark.kind, pytest.mark.timeout(1800)]

PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()
except OSError as exc:
    print("blocked:", exc)
    sys.exit(1)
print("open")
"""


def tallies(message: str) -> dict[str, int]:
    return {option["id"]: option["votes"] for option in json.loads(message)["options"]}


def test_votes_cast_over_http_show_up_on_the_result_websocket(cluster, dev_deployed, e2e):
    ns = e2e.dev_namespace
    with cluster.port_forward("svc/vote", 80, ns) as vote, cluster.port_forward("svc/result", 80, ns) as result:
        with connect(f"ws://127.0.0.1:{result.local_port}/ws", open_timeout=30) as ws:
            before = tallies(ws.recv(timeout=30))
            cast = {"a": 3, "b": 2}
            for option, count in cast.items():
                for _ in range(count):
                    # No cookie is kept between requests, so every POST is a new voter.
                    reply = httpx.post(f"http://127.0.0.1:{vote.local_port}/", data={"vote": option}, timeout=10)
                    assert reply.status_code == 200, reply.text
            expected = {option: before.get(option, 0) + count for option, count in cast.items()}
            deadline = time.monotonic() + 90
            seen = before
            while seen != expected:
                left = deadline - time.monotonic()
                assert left > 0, f"the websocket never showed {expected}; last tallies {seen}"
                seen = tallies(ws.recv(timeout=left))


def reaches(cluster, namespace: str, workload: str, host: str, port: int) -> tuple[bool, str]:
    proc = cluster.kubectl(
        "exec", "-n", namespace, f"deploy/{workload}", "--", "python", "-c", PROBE, host, str(port),
        check=False, timeout=60,
    )
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def test_network_policies_let_vote_reach_redis_but_not_db(cluster, dev_deployed, e2e):
    ns = e2e.dev_namespace
    # The two allowed paths first: they prove the probe, DNS and the pods work.
    ok, out = reaches(cluster, ns, "vote", "redis", 6379)
    assert ok, f"vote should reach redis: {out}"
    ok, out = reaches(cluster, ns, "worker", "db", 5432)
    assert ok, f"worker should reach db: {out}"
    ok, out = reaches(cluster, ns, "vote", "db", 5432)
    assert not ok, f"vote reached db, so the NetworkPolicies are not enforced: {out}"
