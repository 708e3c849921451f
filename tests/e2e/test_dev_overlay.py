"""The dev environment Argo CD deployed: votes go in over HTTP on the kind NodePorts, tallies come out of the
result websocket, and the NetworkPolicies hold."""

from __future__ import annotations


import httpx
import pytest
from websockets.sync.client import connect

pytestmark = [pytest.mark.dev, pytest.mark.timeout(3600)]

# kind maps these host ports to dev's NodePorts 30080 and 30081 (scripts/kind-cluster.yaml).
VOTE = "http://127.0.0.1:8080"
RESULT_WS = "ws://127.0.0.1:8081/ws"

PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()
except OSError as exc:
    print("blocked:", exc)
    sys.exit(1)
print("open")
"""


def test_votes_cast_over_http_show_up_on_the_result_websocket(cluster, e2e):
    cluster.wait_rollouts(cluster.namespace)
    with connect(RESULT_WS, open_timeout=30) as ws:
        before = e2e.tallies(ws.recv(timeout=30))
        cast = {"a": 3, "b": 2}
        for option, count in cast.items():
            for _ in range(count):
                # No cookie is kept between requests, so every POST is a new voter.
                reply = httpx.post(f"{VOTE}/", data={"vote": option}, timeout=10)
                assert reply.status_code == 200, reply.text
        expected = {option: before.get(option, 0) + count for option, count in cast.items()}
        e2e.websocket_shows(ws, expected)


def reaches(cluster, workload: str, host: str, port: int) -> tuple[bool, str]:
    pod = cluster.pod_of(cluster.namespace, workload)
    code, out = cluster.exec(cluster.namespace, pod, ["python", "-c", PROBE, host, str(port)], container=workload)
    return code == 0, out.strip()


def test_network_policies_let_vote_reach_redis_but_not_db(cluster):
    # The two allowed paths first: they prove the probe, DNS and the pods work.
    ok, out = reaches(cluster, "vote", "redis", 6379)
    assert ok, f"vote should reach redis: {out}"
    ok, out = reaches(cluster, "worker", "db", 5432)
    assert ok, f"worker should reach db: {out}"
    ok, out = reaches(cluster, "vote", "db", 5432)
    assert not ok, f"vote reached db, so the NetworkPolicies are not enforced: {out}"
