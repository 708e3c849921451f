"""The worker loop in-process, against real Redis and PostgreSQL."""

import json
import time

import pytest

from voting_contract.ballot import NOT_ON_BALLOT, Ballot
from voting_contract.wire import DEAD_LETTER, QUEUE, Vote, enqueue_script
from worker.queue import HEARTBEAT_PREFIX, PROCESSING_PREFIX
from worker.service import Worker
from worker.settings import Settings


@pytest.fixture
def make_worker(redis_server, postgres_server, redis_client, pg_conn):
    made: list[Worker] = []

    def make(worker_id: str = "w1", **env: str) -> Worker:
        settings = Settings.from_env({
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_server.port), **postgres_server.env,
            "WORKER_ID": worker_id, "WORKER_HEARTBEAT_SECONDS": "1", **env,
        })
        made.append(Worker(settings))
        return made[-1]

    yield make
    for w in made:
        w.close()


def rows(pg_conn) -> dict[str, str]:
    return dict(pg_conn.execute("SELECT id, vote FROM votes").fetchall())


def drain(worker: Worker) -> None:
    while worker.pipeline_step():
        pass
    assert worker.being_written is None


def test_votes_move_to_postgres_and_leave_redis(make_worker, redis_client, pg_conn):
    push = enqueue_script(redis_client)
    for i in range(25):
        push(Vote(f"v{i}", "ab"[i % 2]))
    push(Vote("v0", "b"))  # a change of mind
    drain(make_worker(WORKER_BATCH_SIZE="10"))
    assert rows(pg_conn) == {f"v{i}": "b" if i == 0 else "ab"[i % 2] for i in range(25)}
    assert redis_client.llen(QUEUE) == 0
    assert redis_client.keys(PROCESSING_PREFIX + "*") == []


def test_malformed_messages_go_to_the_dead_letter_list(make_worker, redis_client, pg_conn):
    off_ballot = Vote("x", NOT_ON_BALLOT).to_json()
    redis_client.rpush(QUEUE, b"{broken", Vote("ok", "a").to_json(), off_ballot)
    drain(make_worker())
    assert rows(pg_conn) == {"ok": "a"}
    dead = [json.loads(m) for m in redis_client.lrange(DEAD_LETTER, 0, -1)]
    assert [(d["reason"], d["message"]) for d in dead] == [
        ("not-json", "{broken"),
        ("unknown-vote", off_ballot),
    ]
    assert dead[1]["detail"] == f'vote "{NOT_ON_BALLOT}" is not on the ballot (a, b)'


def test_the_worker_accepts_exactly_the_configured_ballot(make_worker, redis_client, pg_conn):
    three = Ballot.of("Cats", "Dogs", "Birds")
    redis_client.rpush(QUEUE, *(Vote(f"v-{i}", i).to_json() for i in (*three.ids, "d")))
    drain(make_worker(BALLOT=three.text()))
    assert rows(pg_conn) == {f"v-{i}": i for i in three.ids}
    (dead,) = [json.loads(m) for m in redis_client.lrange(DEAD_LETTER, 0, -1)]
    assert (dead["reason"], dead["detail"]) == ("unknown-vote", 'vote "d" is not on the ballot (a, b, c)')


def test_an_older_vote_never_replaces_a_newer_one(make_worker, redis_client, pg_conn):
    redis_client.rpush(QUEUE, Vote("x", "b", seq=20).to_json())
    drain(make_worker())
    # The same voter's earlier vote, committed late (a reclaimed batch), must not win.
    redis_client.rpush(QUEUE, Vote("x", "a", seq=10).to_json())
    drain(make_worker())
    assert rows(pg_conn) == {"x": "b"}


def test_a_restarted_worker_finishes_the_batch_its_previous_life_took(make_worker, redis_client, pg_conn):
    push = enqueue_script(redis_client)
    for i in range(5):
        push(Vote(f"v{i}", "a"))
    crashed = make_worker("pod-1", WORKER_BATCH_SIZE="3")
    crashed.queue.beat()
    _, taken = crashed.queue.take(3, 0.1)  # ...and dies before writing them
    assert len(taken) == 3
    assert rows(pg_conn) == {}
    successor = make_worker("pod-1")
    successor.recover()
    assert set(rows(pg_conn)) == {"v0", "v1", "v2"}
    drain(successor)
    assert set(rows(pg_conn)) == {f"v{i}" for i in range(5)}
    assert redis_client.keys(PROCESSING_PREFIX + "pod-1:*") == []


def test_a_dead_workers_batch_is_reclaimed_by_another_once_its_heartbeat_lapses(make_worker, redis_client, pg_conn):
    push = enqueue_script(redis_client)
    for i in range(4):
        push(Vote(f"v{i}", "b"))
    dead = make_worker("gone")
    dead.queue.beat()
    dead.queue.take(4, 0.1)
    survivor = make_worker("alive")
    assert survivor.queue.reclaim_orphans() == 0  # heartbeat still fresh: hands off
    time.sleep(1.2)
    drain(survivor)
    assert set(rows(pg_conn)) == {f"v{i}" for i in range(4)}
    assert redis_client.keys(PROCESSING_PREFIX + "gone:*") == []
    assert not redis_client.exists(HEARTBEAT_PREFIX + "gone")
