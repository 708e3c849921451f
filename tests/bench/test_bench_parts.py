"""The bench's pieces on tiny inputs: the turns' ratio, the answer-to-viewer matching, the bare
websocket client's frame reader, and the charts. No timings are asserted."""

from __future__ import annotations

import asyncio

import pytest

from devstack.bench import charts
from devstack.bench.figures import Turns, in_turns, percentile
from devstack.bench.pipeline import _latencies
from devstack.bench.viewers import Viewer


def test_the_ratio_is_the_median_of_each_turns_ratio_not_the_ratio_of_medians():
    # A burst on the machine slows both sides of turn 2 alike: its ratio is still 0.8.
    turns = Turns(ours=[90, 20, 60], limits=[100, 25, 100])
    assert turns.ratios == [0.9, 0.8, 0.6]
    assert turns.ratio == 0.8
    assert turns.median_ours / turns.median_limit == 0.6


def test_turns_alternate_ours_and_the_limit():
    calls = []
    in_turns(lambda: calls.append("A") or 1.0, lambda: calls.append("B") or 2.0, 3)
    assert calls == ["A", "B", "A", "B", "A", "B"]


def test_percentile_picks_from_the_sorted_values():
    assert percentile([5, 1, 4, 2, 3], 50) == 3
    assert percentile(list(range(101)), 99) == 99


def test_each_answer_is_matched_with_the_first_total_that_includes_it():
    answers = [10.0, 10.1, 10.2]
    # One viewer saw totals 0 -> 2 at 10.15, then 3 at 10.5; another saw 3 at once at 10.3.
    seen = [[(2, 10.15), (3, 10.5)], [(3, 10.3)]]
    assert [round(x, 3) for x in _latencies(answers, seen, base=0)] == [0.15, 0.05, 0.3, 0.3, 0.2, 0.1]


def test_a_vote_no_viewer_ever_showed_yields_no_latency():
    assert _latencies([1.0, 2.0], [[(1, 1.5)]], base=0) == [0.5]


def _viewer(totals: list) -> Viewer:
    async def make() -> Viewer:
        return Viewer("127.0.0.1", 1, lambda total, at: totals.append(total))
    return asyncio.run(make())


@pytest.mark.parametrize("size", [20, 300, 70_000])  # the three length encodings of a frame
def test_the_bare_client_reads_frames_split_anywhere(size):
    totals: list[int] = []
    viewer = _viewer(totals)
    viewer.upgraded = True
    payload = b'{"total":7,"pad":"' + b"x" * size + b'"}'
    n = len(payload)
    if n < 126:
        head = bytes([0x81, n])
    elif n < 65536:
        head = bytes([0x81, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x81, 127]) + n.to_bytes(8, "big")
    frame = head + payload
    for i in range(0, len(frame), 7):
        viewer.data_received(frame[i:i + 7])
    assert totals == [7] and viewer.total == 7 and viewer.buffer == b""


def test_the_charts_are_written(tmp_path):
    steps = [{"rate": r, "p99_ms": p, "post_waits": [0.001, 0.002, 0.004]} for r, p in ((50, 20.0), (100, 400.0))]
    charts.pipeline(tmp_path / "p.png", {"steps": steps, "vote_limit": 900.0, "goal_ms": 250})
    charts.freshness(tmp_path / "f.png", {"ours": [0.001, 0.002], "floor": [0.0005], "crowd": [0.01], "crowd_size": 10})
    run = {"p50": 0.01, "p75": 0.02, "p90": 0.03, "p99": 0.05}
    charts.vote_latency(tmp_path / "v.png", {"POST /": [run], "GET /healthz": [run]}, steps)
    charts.drain(tmp_path / "d.png", [100.0, 110.0], [200.0, 190.0])
    for name in ("p", "f", "v", "d"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
