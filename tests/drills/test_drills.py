"""The quick forms of `make drills`: the same drill functions, with small numbers.

Each drill starts its own servers and processes, does its damage, and compares what it finds
with the ground truth; a row that is not ok fails here with the drill's own list of problems.
"""

from __future__ import annotations

import pytest

from devstack.drills.run import DRILLS, run_drill

BY_NAME = {d.name: d for d in DRILLS}


@pytest.mark.parametrize("name", [d.name for d in DRILLS])
def test_drill_quick_form(lab, name):
    row = run_drill(lab, BY_NAME[name], quick=True)
    print(f"{row.name}: {row.did} | {row.compared} | {row.verdict}")
    assert row.ok, "\n".join([row.compared, *row.problems])
