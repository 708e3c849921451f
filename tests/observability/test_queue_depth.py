"""worker_queue_depth, which VoteQueueBacklog reads, against the real length of the Redis list."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from devstack import stack
from voting_contract.wire import QUEUE

pytestmark = pytest.mark.services


def reported_depth(worker: stack.Service) -> float:
    match = re.search(r"^worker_queue_depth (\S+)$", httpx.get(worker.url + "/metrics").text, re.M)
    return float(match.group(1))


def test_the_depth_follows_a_backlog_while_postgres_is_down(redis_server, redis_client, own_postgres, launch):
    redis_env = stack.redis_env(redis_server.port)
    worker = launch(stack.worker(redis_env, own_postgres.env))
    vote = launch(stack.vote(redis_env))
    own_postgres.stop("immediate")
    with httpx.Client(base_url=vote.url) as voter:
        for _ in range(50):
            assert voter.post("/", data={"vote": "a"}).status_code == 200
    deadline = time.monotonic() + 10
    while (waiting := redis_client.llen(QUEUE)) != reported_depth(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert waiting >= 40, "the worker took more than two batches with PostgreSQL down"
    assert reported_depth(worker) == waiting
