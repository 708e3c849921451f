import json

import pytest

from voting_contract.ballot import NOT_ON_BALLOT
from voting_contract.wire import Vote
from worker.batch import plan_batch

IDS = ("a", "b")
OFF_BALLOT = b'{"voter_id":"y","vote":"%s"}' % NOT_ON_BALLOT.encode()


def msg(voter: str, vote: str, seq: int | None = None) -> bytes:
    return Vote(voter, vote, seq).to_json().encode()


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([], {}),
        ([msg("x", "a")], {"x": "a"}),
        # Queue order decides for messages without numbers (the classic vote service).
        ([msg("x", "a"), msg("x", "b")], {"x": "b"}),
        ([msg("x", "a"), msg("y", "b"), msg("x", "b"), msg("x", "a")], {"x": "a", "y": "b"}),
        # Numbers decide when both have them, whatever the queue order (a reclaimed batch).
        ([msg("x", "b", 9), msg("x", "a", 5)], {"x": "b"}),
        ([msg("x", "a", 5), msg("x", "b", 9)], {"x": "b"}),
        # A classic message after a numbered one is the newer choice.
        ([msg("x", "a", 5), msg("x", "b")], {"x": "b"}),
    ],
)
def test_each_voter_keeps_only_their_latest_vote(messages, expected):
    plan = plan_batch(messages, IDS)
    assert {v.voter_id: v.vote for v in plan.votes} == expected
    assert len(plan.votes) == len(expected)
    assert plan.dead == []


def test_bad_messages_are_set_aside_with_their_reason_and_the_rest_goes_on():
    plan = plan_batch([b"garbage", msg("x", "a"), OFF_BALLOT, msg("y", "b")], IDS)
    assert [(d.raw, d.reason) for d in plan.dead] == [
        (b"garbage", "not-json"),
        (OFF_BALLOT, "unknown-vote"),
    ]
    assert plan.dead[1].detail == f'vote "{NOT_ON_BALLOT}" is not on the ballot (a, b)'
    assert {v.voter_id: v.vote for v in plan.votes} == {"x": "a", "y": "b"}
    assert plan.valid == 2


def test_rows_are_one_json_parameter_for_one_statement():
    plan = plan_batch([msg("x", "a", 1), msg("y", "b")], IDS)
    assert json.loads(plan.rows) == [{"id": "x", "vote": "a", "seq": 1}, {"id": "y", "vote": "b", "seq": None}]


def test_a_dead_letter_keeps_the_whole_message_even_when_it_is_not_text():
    (dead,) = plan_batch([b"\xff\x00oops"], IDS).dead
    entry = json.loads(dead.to_json("w1", 12.5))
    assert entry == {"reason": "not-json", "detail": "not-json", "message": "\\xff\x00oops", "worker": "w1", "at": 12.5}
