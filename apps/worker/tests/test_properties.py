"""Property-based tests of the worker's decoding: any bytes in, a row of a ballot id or a dead letter out."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voting_contract.ballot import Ballot
from voting_contract.wire import DEAD_LETTER, MAX_MESSAGE_BYTES, QUEUE, MalformedMessage, Vote, decode
from worker.batch import plan_batch
from worker.service import Worker
from worker.settings import Settings

BALLOT = Ballot.of("Cats", "Dogs")
IDS = BALLOT.ids
REASONS = {"oversized", "not-json", "not-an-object", "missing-voter-id", "bad-voter-id", "unknown-vote", "bad-seq",
           "bad-ts"}

# JSON values of every shape, with numbers at and beyond the edges of 64 bits and of floats.
scalars = (st.none() | st.booleans() | st.text(max_size=20)
           | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from(["a", "b", "A", "a ", "", "<script>", "'; DROP TABLE votes; --"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
voter_ids = st.text(min_size=0, max_size=300) | st.sampled_from(["x", "'; DROP TABLE votes; --", "<b>hi</b>", "🗳"])
fields = st.fixed_dictionaries(
    {}, optional={"voter_id": voter_ids | json_values, "vote": st.sampled_from(["a", "b"]) | json_values,
                  "seq": st.integers(min_value=-1, max_value=2**64) | json_values,
                  "ts": st.floats() | st.integers(min_value=-(2**64), max_value=2**64) | json_values,
                  "extra": json_values},
)


def messages() -> st.SearchStrategy[bytes]:
    """Raw bytes, text, and JSON objects that look almost like votes."""
    as_json = fields.map(lambda d: json.dumps(d).encode())
    return st.binary(max_size=MAX_MESSAGE_BYTES + 64) | st.text(max_size=200).map(
        lambda t: t.encode("utf-8", "surrogatepass")) | as_json | json_values.map(lambda v: json.dumps(v).encode())


def check_vote(vote: Vote) -> None:
    assert vote.vote in IDS
    assert isinstance(vote.voter_id, str) and 0 < len(vote.voter_id) <= 255 and vote.voter_id.isprintable()
    assert vote.seq is None or (type(vote.seq) is int and 0 <= vote.seq < 2**63)
    assert vote.ts is None or isinstance(vote.ts, float)


@settings(max_examples=1000, deadline=None)
@given(messages())
def test_decode_returns_a_vote_or_says_why_not(raw):
    try:
        vote = decode(raw, IDS)
    except MalformedMessage as exc:
        assert exc.reason in REASONS
    else:
        check_vote(vote)


@settings(max_examples=300, deadline=None)
@given(st.lists(messages(), max_size=20))
def test_a_batch_becomes_rows_and_dead_letters_that_add_up(batch):
    plan = plan_batch(batch, IDS)
    assert plan.valid + len(plan.dead) == len(batch)
    assert len({v.voter_id for v in plan.votes}) == len(plan.votes)
    for vote in plan.votes:
        check_vote(vote)
    for dead in plan.dead:
        assert dead.reason in REASONS
        letter = orjson.loads(dead.to_json("w", 1.0))  # the dead-letter entry itself is always valid JSON
        assert letter["reason"] == dead.reason
    rows = orjson.loads(plan.rows)
    assert {r["vote"] for r in rows} <= set(IDS)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=255).filter(str.isprintable), st.sampled_from("ab"),
       st.none() | st.integers(min_value=0, max_value=2**63 - 1), st.none() | st.floats(0, 4e9))
def test_every_vote_the_contract_writes_decodes_back(voter_id, choice, seq, ts):
    vote = Vote(voter_id, choice, seq, ts)
    raw = vote.to_json().encode()
    if len(raw) <= MAX_MESSAGE_BYTES:
        assert decode(raw, IDS) == vote


@pytest.fixture
def live_worker(redis_server, postgres_server, redis_client, pg_conn):
    settings_ = Settings.from_env({
        "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_server.port), **postgres_server.env,
        "WORKER_ID": "properties", "WORKER_HEARTBEAT_SECONDS": "5",
    })
    worker = Worker(settings_)
    yield worker
    worker.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(messages(), min_size=1, max_size=30))
def test_the_live_worker_files_every_message_and_writes_only_a_or_b(live_worker, redis_client, pg_conn, batch):
    redis_client.delete(QUEUE, DEAD_LETTER)
    pg_conn.execute("TRUNCATE votes")
    redis_client.rpush(QUEUE, *batch)
    while live_worker.pipeline_step():  # any exception here is a crash of the worker loop
        pass
    plan = plan_batch(batch, IDS)
    assert redis_client.llen(QUEUE) == 0
    assert redis_client.llen(DEAD_LETTER) == len(plan.dead)
    rows = dict(pg_conn.execute("SELECT id, vote FROM votes").fetchall())
    assert set(rows.values()) <= set(IDS)
    assert rows == {v.voter_id: v.vote for v in plan.votes}
