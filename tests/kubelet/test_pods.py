"""vote, worker and result as the kubelet would run the dev overlay's containers, under bubblewrap."""

from __future__ import annotations

import time

import httpx
import psycopg
import pytest
import redis

from voting_contract.schema import ensure_schema

from devstack.repo import SERVICES
from kubelet_cluster import lifecycle, start, stop
from kubelet_env import container_port


@pytest.mark.parametrize("name", SERVICES)
def test_starts_serves_probes_and_stops_cleanly(cluster, name):
    pod, pod_spec, container = cluster.pod(name)
    assert lifecycle(pod, pod_spec, container) == []


def test_a_vote_flows_from_vote_through_worker_to_result(cluster, kube_redis, kube_postgres):
    redis.Redis.from_url(kube_redis.url).flushall()
    with psycopg.connect(kube_postgres.dsn, autocommit=True) as conn:
        ensure_schema(conn)
        conn.execute("TRUNCATE votes")
    pods = {name: cluster.pod(name) for name in ("result", "worker", "vote")}
    problems: list[str] = []
    try:
        for pod, _, container in pods.values():
            problems += start(pod, container)
        assert problems == []
        vote, _, vote_container = pods["vote"]
        answer = httpx.post(vote.url(container_port(vote_container, "http")) + "/", data={"vote": "b"})
        assert answer.status_code == 200, answer.text
        result, _, result_container = pods["result"]
        results = result.url(container_port(result_container, "http")) + "/api/results"
        assert tallies_until(results, lambda t: t["total"] == 1)["options"][1]["votes"] == 1
    finally:
        for pod, pod_spec, container in pods.values():
            problems += stop(pod, pod_spec, container)
    assert problems == []


def tallies_until(url: str, done, timeout: float = 30.0) -> dict:
    """result's /api/results, read until `done` says it shows what we wait for."""
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(url)
        if answer.status_code == 200 and done(answer.json()):
            return answer.json()
        if time.monotonic() > deadline:
            raise AssertionError(f"result still shows {answer.status_code} {answer.text} after {timeout}s")
        time.sleep(0.2)
