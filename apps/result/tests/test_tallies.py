import pytest

from result.tallies import snapshot, total_text
from voting_contract.settings import Options


@pytest.mark.parametrize(("total", "text"), [(0, "No votes yet"), (1, "1 vote"), (2, "2 votes"), (12345, "12,345 votes")])
def test_total_text(total, text):
    assert total_text(total) == text


@pytest.mark.parametrize(
    ("counts", "percents"),
    [({}, (0.0, 0.0)), ({"a": 1}, (100.0, 0.0)), ({"a": 1, "b": 2}, (33.3, 66.7)), ({"a": 2, "b": 2}, (50.0, 50.0))],
)
def test_percentages_add_up(counts, percents):
    snap = snapshot(counts, Options("Cats", "Dogs"), stale=False)
    assert tuple(o["percent"] for o in snap["options"]) == percents
    assert [o["label"] for o in snap["options"]] == ["Cats", "Dogs"]


def test_values_other_than_a_and_b_are_not_shown():
    snap = snapshot({"a": 1, "b": 1, "c": 5}, Options("x", "y"), stale=True)
    assert snap["total"] == 2 and snap["stale"] is True
