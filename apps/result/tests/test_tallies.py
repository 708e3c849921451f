from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from result.tallies import percentages, snapshot, total_text
from voting_contract.ballot import NOT_ON_BALLOT, Ballot


@pytest.mark.parametrize(("total", "text"), [(0, "No votes yet"), (1, "1 vote"), (2, "2 votes"), (12345, "12,345 votes")])
def test_total_text(total, text):
    assert total_text(total) == text


@pytest.mark.parametrize(
    ("counts", "percents"),
    [({}, (0.0, 0.0)), ({"a": 1}, (100.0, 0.0)), ({"a": 1, "b": 2}, (33.3, 66.7)), ({"a": 2, "b": 2}, (50.0, 50.0))],
)
def test_percentages_add_up(counts, percents):
    snap = snapshot(counts, Ballot.of("Cats", "Dogs"), stale=False)
    assert tuple(o["percent"] for o in snap["options"]) == percents
    assert [o["label"] for o in snap["options"]] == ["Cats", "Dogs"]


@pytest.mark.parametrize(
    ("votes", "percents"),
    [
        # Rounding each alone gives 33.3 x 3 = 99.9: the largest remainder takes the missing tenth.
        ([1, 1, 1], [33.4, 33.3, 33.3]),
        # 2/7 loses less to rounding down (28.57) than each 1/7 (14.28): the five tenths go to them.
        ([2, 1, 1, 1, 1, 1], [28.5, 14.3, 14.3, 14.3, 14.3, 14.3]),
        # Rounding each alone gives 66.7 + 16.7 + 16.7 = 100.1.
        ([4, 1, 1], [66.7, 16.7, 16.6]),
        ([0, 0, 0, 0], [0.0, 0.0, 0.0, 0.0]),
        ([0, 3, 0], [0.0, 100.0, 0.0]),
    ],
)
def test_shares_of_several_options_sum_to_exactly_100(votes, percents):
    assert percentages(votes) == percents


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=2, max_size=8))
def test_shares_always_sum_to_100_and_each_is_within_a_tenth(votes):
    shares = percentages(votes)
    tenths = [round(p * 10) for p in shares]
    assert all(p == t / 10 for p, t in zip(shares, tenths))  # one decimal exactly
    if sum(votes) == 0:
        assert tenths == [0] * len(votes)
        return
    assert sum(tenths) == 1000
    for n, t in zip(votes, tenths):
        exact = Fraction(1000 * n, sum(votes))
        assert abs(t - exact) < 1
    # More votes never means a smaller share.
    for (n1, t1) in zip(votes, tenths):
        for (n2, t2) in zip(votes, tenths):
            if n1 > n2:
                assert t1 >= t2


def test_the_snapshot_follows_the_ballot_and_ignores_ids_not_on_it():
    ballot = Ballot.of("Cats", "Dogs", "Birds", "Fish")
    snap = snapshot({"a": 1, "d": 2, NOT_ON_BALLOT: 5}, ballot, stale=True)
    assert [(o["id"], o["label"], o["votes"]) for o in snap["options"]] == [
        ("a", "Cats", 1), ("b", "Dogs", 0), ("c", "Birds", 0), ("d", "Fish", 2)]
    assert [o["percent"] for o in snap["options"]] == [33.3, 0.0, 0.0, 66.7]
    assert snap["total"] == 3 and snap["stale"] is True
