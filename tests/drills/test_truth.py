"""The ground-truth comparison: each way the rows can differ from the truth is counted, and named in a problem."""

from __future__ import annotations

import pytest

from devstack.truth import Audit, compare_rows
from voting_contract.ballot import NOT_ON_BALLOT

TRUTH = {"v1": "a", "v2": "b", "v3": "a"}


def audit_of(rows: dict[str, str], truth: dict[str, str] = TRUTH, refused=None, tallies=None) -> Audit:
    """An Audit of rows whose tallies (unless given) are what the triggers would keep for them."""
    if tallies is None:
        tallies = {}
        for vote in rows.values():
            tallies[vote] = tallies.get(vote, 0) + 1
    return Audit(compare_rows(rows, truth, refused), rows, truth, tallies)


def test_rows_equal_to_the_truth_hold():
    db = audit_of(dict(TRUTH))
    assert db.outcome.ok and db.problems() == []
    assert db.counts() == {"voters": 3, "lost": 0, "extra": 0, "wrong": 0, "refused_counted": 0,
                           "tallies": {"a": 2, "b": 1}}


@pytest.mark.parametrize(("rows", "refused", "counted", "problem"), [
    ({"v1": "a", "v2": "b"}, None, {"lost": 1}, "1 acknowledged voters missing (e.g. v3)"),
    ({**TRUTH, "x9": "b"}, None, {"extra": 1}, "1 rows nobody acknowledged (e.g. x9)"),
    ({**TRUTH, "v2": "a"}, None, {"wrong": 1}, "1 voters with an older vote winning (e.g. v2=a, acked b)"),
    ({**TRUTH, "v2": "a"}, {"v2": {"a"}}, {"refused_counted": 1}, None),
    ({**TRUTH, "x9": "b"}, {"x9": {"b"}}, {"refused_counted": 1}, None),
])
def test_each_difference_is_counted_and_named(rows, refused, counted, problem):
    db = audit_of(rows, refused=refused)
    zero = {"lost": 0, "extra": 0, "wrong": 0, "refused_counted": 0}
    assert {k: db.counts()[k] for k in zero} == {**zero, **counted}
    assert db.problems() == ([problem] if problem else [])


def test_losses_are_told_from_corruption():
    db = audit_of({"v1": "b", "v2": "b", "x9": "a"}, tallies={"a": 5})
    assert [p.split(" (")[0] for p in db.losses()] == ["1 acknowledged voters missing", "1 voters with an older vote winning"]
    assert [p.split(" (")[0] for p in db.corruption()] == [
        "1 rows nobody acknowledged", "tallies {'a': 5} != the rows' own count {'b': 2, 'a': 1}"]
    assert db.problems() == [db.losses()[0], db.corruption()[0], db.losses()[1], db.corruption()[1]]


def test_a_vote_off_the_ballot_is_caught():
    db = audit_of({**TRUTH, "v3": NOT_ON_BALLOT}, truth={**TRUTH, "v3": NOT_ON_BALLOT})
    assert db.problems() == ["1 rows not on the ballot (a, b)"]


def test_the_table_text_names_the_counts():
    db = audit_of({"v1": "a", "v2": "a"}, refused={"v2": {"a"}})
    assert db.text() == ("3 voters' last acked vote vs PostgreSQL: 1 lost, 0 extra, 0 older-vote-won; "
                         "tallies a=2 b=0; 1 unconfirmed votes (503 'could not confirm') counted")
