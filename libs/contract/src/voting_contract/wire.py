"""Queue messages: the Redis LIST `votes` of JSON objects, pushed right, popped left.

The classic demo's message is {"voter_id": "...", "vote": "a"|"b"}; `vote` is one of the ballot's
ids (`a`, `b`, ... as `BALLOT` configures them). Ours adds two fields the
classic consumers ignore: `seq`, a number Redis assigns that grows with every vote, so that a
voter's latest vote wins even when several workers commit out of order; and `ts`, the enqueue
time in Unix seconds, for the worker's lag metric.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

import orjson

QUEUE = "votes"
DEAD_LETTER = "votes:dead"
SEQ_COUNTER = "votes:seq"
MAX_MESSAGE_BYTES = 1024
MAX_VOTER_ID_LENGTH = 255  # the width of votes.id

# Numbers a vote and pushes it, in one atomic step. The number is Redis's clock in
# microseconds, or one more than the last number if that is larger: it grows with queue order,
# and keeps growing after a Redis restart that lost the counter (dev runs without persistence),
# so a voter's vote after the restart still beats the one before it.
ENQUEUE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local seq = math.max(now, tonumber(redis.call('GET', KEYS[2]) or '0') + 1)
local text = string.format('%d', seq)
redis.call('SET', KEYS[2], text)
redis.call('RPUSH', KEYS[1], string.sub(ARGV[1], 1, -2) .. ',"seq":' .. text .. '}')
return seq
"""


class MalformedMessage(ValueError):
    """A queue message that can never become a row; `reason` says why."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(detail or reason)
        self.reason = reason  # a short fixed word: a metric label
        self.detail = detail or reason  # for people: names the offending value


@dataclass(frozen=True, slots=True)
class Vote:
    voter_id: str
    vote: str
    seq: int | None = None
    ts: float | None = None

    def to_json(self) -> str:
        body: dict[str, object] = {"voter_id": self.voter_id, "vote": self.vote}
        if self.seq is not None:
            body["seq"] = self.seq
        if self.ts is not None:
            body["ts"] = self.ts
        return orjson.dumps(body).decode()


def is_valid_voter_id(value: object) -> bool:
    return type(value) is str and 0 < len(value) <= MAX_VOTER_ID_LENGTH and value.isprintable()


def decode(raw: bytes | str, ids: Collection[str]) -> Vote:
    """Parse one queue message whose vote is one of the ballot's `ids`, or raise MalformedMessage.

    This runs once per vote in the worker's hot loop, so it checks exact types rather than
    going through a schema library.
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MalformedMessage("oversized")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedMessage("not-json") from None
    if type(body) is not dict:
        raise MalformedMessage("not-an-object")
    voter_id = body.get("voter_id")
    if voter_id is None:
        raise MalformedMessage("missing-voter-id")
    if not is_valid_voter_id(voter_id):
        raise MalformedMessage("bad-voter-id")
    vote = body.get("vote")
    if type(vote) is not str or vote not in ids:
        raise MalformedMessage("unknown-vote", f"vote {orjson.dumps(vote).decode()[:40]} is not on the ballot "
                                               f"({', '.join(ids)})")
    seq = body.get("seq")
    if seq is not None and (type(seq) is not int or not 0 <= seq < 2**63):
        raise MalformedMessage("bad-seq")
    ts = body.get("ts")
    if ts is not None:
        if type(ts) is int:
            ts = float(ts)
        elif type(ts) is not float or not math.isfinite(ts):
            raise MalformedMessage("bad-ts")
    return Vote(voter_id, vote, seq, ts)


def enqueue_script(client):
    """Register ENQUEUE_SCRIPT on a redis-py client; call it as push(vote) or push(vote, client=pipeline)."""
    script = client.register_script(ENQUEUE_SCRIPT)

    def push(vote: Vote, client=None):
        return script(keys=[QUEUE, SEQ_COUNTER], args=[vote.to_json()], client=client)

    return push
