"""Faults across real processes: nothing acknowledged is lost, nothing is counted twice."""

import random
import re
import signal
import threading
import time

import httpx
import pytest
import redis

from devstack import stack
from devstack.load import push_votes, queue_votes, wait_drained
from devstack.truth import BALLOT, compare
from worker.queue import PROCESSING_PREFIX


def metric(url: str, name: str) -> float:
    """One sample from a service's /metrics; it must be there."""
    page = httpx.get(url + "/metrics").text
    assert re.search(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ", page, re.M), f"{name} missing from {url}/metrics"
    return stack.metric(url, name)


def freeze_holding_a_batch(worker: stack.Service, client: redis.Redis, worker_id: str, timeout: float = 15) -> int:
    """SIGSTOP the worker at an instant it holds a batch in Redis; how many votes it holds."""
    in_hand = f"{PROCESSING_PREFIX}{worker_id}:*"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.keys(in_hand):
            worker.proc.send_signal(signal.SIGSTOP)
            held = sum(client.llen(key) for key in client.keys(in_hand))
            if held:
                return held
            worker.proc.send_signal(signal.SIGCONT)  # it finished that batch just before: try the next
    pytest.fail(f"worker {worker_id} never held a batch within {timeout}s")


def steady_producer(client: redis.Redis, truth: dict, stop: threading.Event, rng: random.Random) -> threading.Thread:
    """Keeps votes flowing straight into Redis (3,000 voters, many re-votes) until stopped."""

    def run() -> None:
        while not stop.is_set():
            truth.update(push_votes(client, [(f"p{rng.randrange(3000)}", rng.choice(BALLOT.ids)) for _ in range(100)]))
            time.sleep(0.01)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("same_pod", [True, False], ids=["restarted-in-place", "replaced-by-a-new-pod"])
def test_a_worker_killed_at_random_instants_loses_nothing(redis_server, postgres_server, redis_client, pg_conn,
                                                          launch, same_pod):
    rng = random.Random(7)
    # A backlog keeps the worker busy, so the kills land mid-batch rather than while it waits.
    truth = queue_votes(redis_client, 3000, 60_000, rng, prefix="p")
    stop = threading.Event()
    producer = steady_producer(redis_client, truth, stop, rng)
    redis_env = stack.redis_env(redis_server.port)
    mid_batch = 0
    for life in range(6):
        worker_id = "worker-0" if same_pod else f"worker-{life}"
        extra = {"WORKER_ID": worker_id, "WORKER_BATCH_SIZE": "100", "WORKER_HEARTBEAT_SECONDS": "1"}
        w = launch(stack.worker(redis_env, postgres_server.env, extra=extra))
        if life % 2:
            # Every other life dies the moment it holds a batch, so recovery is always exercised.
            in_hand = f"{PROCESSING_PREFIX}{worker_id}:*"
            deadline = time.monotonic() + 10
            while not redis_client.keys(in_hand) and time.monotonic() < deadline:
                pass
        else:
            time.sleep(rng.uniform(0.05, 0.5))
        w.kill()  # SIGKILL, wherever it is
        mid_batch += bool(redis_client.keys(f"{PROCESSING_PREFIX}{worker_id}:*"))
    stop.set()
    producer.join()
    launch(stack.worker(redis_env, postgres_server.env, extra={"WORKER_HEARTBEAT_SECONDS": "1"}))
    wait_drained(redis_client, 60)
    result = compare(pg_conn, truth)
    assert mid_batch >= 1, "no kill caught a batch in hand"
    assert result.expected == 3000
    assert result.ok, str(result)


def test_two_workers_share_the_queue_and_one_dying_loses_nothing(redis_server, postgres_server, redis_client,
                                                                 pg_conn, launch):
    rng = random.Random(11)
    truth: dict[str, str] = {}
    stop = threading.Event()
    producer = steady_producer(redis_client, truth, stop, rng)
    redis_env = stack.redis_env(redis_server.port)
    extra = {"WORKER_BATCH_SIZE": "50", "WORKER_HEARTBEAT_SECONDS": "1"}
    first = launch(stack.worker(redis_env, postgres_server.env, extra={**extra, "WORKER_ID": "a"}))
    second = launch(stack.worker(redis_env, postgres_server.env, extra={**extra, "WORKER_ID": "b"}))
    held = freeze_holding_a_batch(first, redis_client, "a")
    first.kill()  # dies with the batch in hand: only the other worker can bring it back
    time.sleep(1.0)
    stop.set()
    producer.join()
    wait_drained(redis_client, 60)
    assert second.running()
    result = compare(pg_conn, truth)
    assert result.ok, str(result)
    assert metric(second.url, "worker_votes_reclaimed_total") == held > 0


def test_redis_outage_refuses_votes_clearly_then_recovers(own_redis, postgres_server, pg_conn, launch):
    redis_env = stack.redis_env(own_redis.port)
    vote = launch(stack.vote(redis_env))
    worker = launch(stack.worker(redis_env, postgres_server.env, extra={"WORKER_HEARTBEAT_SECONDS": "2"}))
    voter = httpx.Client(base_url=vote.url)
    assert voter.post("/", data={"vote": "a"}).status_code == 200
    client = redis.Redis.from_url(own_redis.url)
    wait_drained(client, 20)
    own_redis.stop()
    refused = voter.post("/", data={"vote": "b"})
    assert refused.status_code == 503 and "not recorded" in refused.text
    # Still ready: the Service keeps this pod, so voters get the page above, not the proxy's 503.
    assert httpx.get(vote.url + "/readyz").status_code == 200
    assert httpx.get(vote.url + "/healthz").status_code == 200
    assert voter.get("/").status_code == 200
    assert metric(vote.url, "vote_redis_up") == 0
    time.sleep(1.0)
    assert worker.running() and httpx.get(worker.url + "/healthz").status_code == 200
    own_redis.start()
    # The voter tries again: now it counts, and the refused vote never did.
    assert voter.post("/", data={"vote": "b"}).status_code == 200
    assert metric(vote.url, "vote_redis_up") == 1
    wait_drained(client, 30)
    voter_id = voter.cookies["voter_id"]
    assert dict(pg_conn.execute("SELECT id, vote FROM votes").fetchall()) == {voter_id: "b"}
    voter.close()
