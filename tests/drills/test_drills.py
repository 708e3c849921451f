"""The quick forms of `make drills`: the same drill functions, with small numbers.

Each drill starts its own servers and processes, does its damage, and compares what it finds
with the ground truth; a row that is not ok fails here with the drill's own list of problems.
"""

from __future__ import annotations

import pytest

from devstack.drills import DRILLS, run_drill

BY_NAME = {d.name: d for d in DRILLS}

LOST_REPLY = (
    "BUG (intermittent here, exact in test_lost_reply.py): a Redis restart sometimes loses one whole batch "
    "(WORKER_BATCH_SIZE votes), because redis-py's automatic retry re-runs the worker's take script after "
    "its reply was lost. Remove this marker with the fix."
)
VIEWERS_AT_SIGTERM = (
    "BUG: on SIGTERM hypercorn waits its whole graceful_timeout (20 s) for open websockets, then drops them "
    "without a close frame; TallyFeed.stop(), which would close them, runs only after that wait."
)

MARKS = {
    "redis-prod-sigterm": pytest.mark.xfail(strict=False, reason=LOST_REPLY),
    "redis-prod-sigkill": pytest.mark.xfail(strict=False, reason=LOST_REPLY),
    "rollout-result-viewers": pytest.mark.xfail(strict=True, reason=VIEWERS_AT_SIGTERM),
}


@pytest.mark.parametrize("name", [pytest.param(d.name, marks=MARKS.get(d.name, ())) for d in DRILLS])
def test_drill_quick_form(lab, name):
    row = run_drill(lab, BY_NAME[name], quick=True)
    print(f"{row.name}: {row.did} | {row.compared} | {row.verdict}")
    assert row.ok, "\n".join([row.compared, *row.problems])
