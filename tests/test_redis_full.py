"""A full Redis (maxmemory reached, noeviction): vote refuses cleanly and the worker still drains it.

Both overlays run Redis with a maxmemory below the container's limit and the noeviction policy,
so a long backlog ends in refused votes, never in an OOM-killed Redis. That only helps if the
worker can still empty a Redis that refuses commands which grow memory.
"""

import json
import time

import httpx
import pytest
import redis

from devstack import stack
from worker.queue import HEARTBEAT_PREFIX, PROCESSING_PREFIX


def fill_until_refused(client, limit: int = 500_000) -> int:
    """Queue well-formed votes from distinct voters until Redis refuses; returns how many it took."""
    queued = 0
    while queued < limit:
        pipe = client.pipeline(transaction=False)
        for n in range(queued, queued + 500):
            pipe.rpush("votes", json.dumps({"voter_id": f"full-{n:07d}", "vote": "ab"[n % 2]}))
        replies = pipe.execute(raise_on_error=False)
        queued += sum(1 for r in replies if not isinstance(r, Exception))
        refusals = [r for r in replies if isinstance(r, Exception)]
        if refusals:
            assert "maxmemory" in str(refusals[0]), refusals[0]
            return queued
    pytest.fail(f"Redis took {limit} votes without reaching its maxmemory")


def test_full_redis_refuses_votes_and_the_worker_drains_it(own_redis, postgres_server, pg_conn, launch):
    client = redis.Redis.from_url(own_redis.url)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", str(int(client.info("memory")["used_memory"]) + 2 * 2**20))
    # A batch of a worker that died (no heartbeat) and a malformed message: the reclaim and the
    # dead-letter paths must also work while Redis is full.
    client.rpush(f"{PROCESSING_PREFIX}gone:dead:1", json.dumps({"voter_id": "orphan", "vote": "a"}))
    client.rpush("votes", b"not json")
    queued = fill_until_refused(client) + 1  # + the orphan's vote

    redis_env = stack.redis_env(own_redis.port)
    vote = launch(stack.vote(redis_env))
    refused = httpx.post(f"{vote.url}/", data={"vote": "a"})
    assert refused.status_code == 503, refused.text
    assert "not recorded" in refused.text  # our page: Redis refused the script before any write

    launch(stack.worker(redis_env, postgres_server.env, extra={"WORKER_ID": "full-test"}), ready=False)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = pg_conn.execute("SELECT count(*) FROM votes").fetchone()[0]
        if rows == queued and client.llen("votes") == 0:
            break
        time.sleep(0.5)
    assert pg_conn.execute("SELECT count(*) FROM votes").fetchone()[0] == queued
    assert client.llen("votes") == 0
    assert client.exists(f"{PROCESSING_PREFIX}gone:dead:1") == 0
    assert client.llen("votes:dead") == 1
    assert client.exists(f"{HEARTBEAT_PREFIX}full-test") == 1

    accepted = httpx.post(f"{vote.url}/", data={"vote": "b"})
    assert accepted.status_code == 200, accepted.text
