import json

import pytest
import redis

from voting_contract.ballot import NOT_ON_BALLOT, Ballot
from voting_contract.wire import (
    MAX_MESSAGE_BYTES,
    QUEUE,
    MalformedMessage,
    Vote,
    decode,
    enqueue_script,
)

IDS = ("a", "b")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"voter_id":"abc","vote":"a"}', Vote("abc", "a")),
        (b'{"voter_id":"abc","vote":"b","seq":7,"ts":1.5}', Vote("abc", "b", 7, 1.5)),
        ('{"vote":"b","voter_id":"x y","extra":[1,2]}', Vote("x y", "b")),
        (b'{"voter_id":"' + b"v" * 255 + b'","vote":"a"}', Vote("v" * 255, "a")),
    ],
)
def test_decode_accepts_the_contract(raw, expected):
    assert decode(raw, IDS) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not-json"),
        (b"\xff\xfe", "not-json"),
        (b"[1, 2]", "not-an-object"),
        (b'"a"', "not-an-object"),
        (b'{"vote":"a"}', "missing-voter-id"),
        (b'{"voter_id":"","vote":"a"}', "bad-voter-id"),
        (b'{"voter_id":42,"vote":"a"}', "bad-voter-id"),
        (b'{"voter_id":"' + b"v" * 256 + b'","vote":"a"}', "bad-voter-id"),
        (b'{"voter_id":"a\\u0000b","vote":"a"}', "bad-voter-id"),
        (b'{"voter_id":"x"}', "unknown-vote"),
        (b'{"voter_id":"x","vote":"%s"}' % NOT_ON_BALLOT.encode(), "unknown-vote"),
        (b'{"voter_id":"x","vote":"A"}', "unknown-vote"),
        (b'{"voter_id":"x","vote":"a","seq":-1}', "bad-seq"),
        (b'{"voter_id":"x","vote":"a","seq":true}', "bad-seq"),
        (b'{"voter_id":"x","vote":"a","seq":"7"}', "bad-seq"),
        (b'{"voter_id":"x","vote":"a","ts":"now"}', "bad-ts"),
        (b'{"voter_id":"x","vote":"a","ts":NaN}', "not-json"),
        (b'{"voter_id":"x","vote":"a","ts":true}', "bad-ts"),
        (b'{"voter_id":"x","vote":["a"]}', "unknown-vote"),
        (b'{"voter_id":"\\ud800","vote":"a"}', "not-json"),
        (b'{"voter_id":"x","vote":"a","pad":"' + b"p" * MAX_MESSAGE_BYTES + b'"}', "oversized"),
    ],
)
def test_decode_names_what_is_wrong(raw, reason):
    with pytest.raises(MalformedMessage) as caught:
        decode(raw, IDS)
    assert caught.value.reason == reason


def test_the_ballot_decides_which_votes_are_valid():
    three = Ballot.of("Cats", "Dogs", "Birds").ids
    assert decode(b'{"voter_id":"x","vote":"c"}', three) == Vote("x", "c")
    with pytest.raises(MalformedMessage) as caught:
        decode(b'{"voter_id":"x","vote":"d"}', three)
    assert caught.value.reason == "unknown-vote"
    assert caught.value.detail == 'vote "d" is not on the ballot (a, b, c)'


def test_to_json_is_the_classic_message_when_there_is_nothing_extra():
    assert json.loads(Vote("v1", "a").to_json()) == {"voter_id": "v1", "vote": "a"}


def test_enqueue_pushes_right_numbers_in_order_and_survives_a_lost_counter(redis_client: redis.Redis):
    push = enqueue_script(redis_client)
    first = push(Vote("v1", "a", ts=1.0))
    second = push(Vote("v2", "b"))
    assert second > first
    messages = [decode(m, IDS) for m in redis_client.lrange(QUEUE, 0, -1)]
    assert [(m.voter_id, m.vote, m.seq) for m in messages] == [("v1", "a", first), ("v2", "b", second)]
    assert messages[0].ts == 1.0
    # A Redis restart without persistence loses the counter; numbers must still grow.
    redis_client.flushall()
    assert push(Vote("v1", "b")) > second
