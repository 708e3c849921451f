"""What viewers see: tallies turned into labels, percentages and a total. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from voting_contract.settings import Options
from voting_contract.wire import OPTIONS


def total_text(total: int) -> str:
    if total == 0:
        return "No votes yet"
    return "1 vote" if total == 1 else f"{total:,} votes"


def snapshot(counts: Mapping[str, int], options: Options, *, stale: bool, loaded: bool = True) -> dict:
    """The JSON that /api/results returns and /ws pushes."""
    votes = {o: int(counts.get(o, 0)) for o in OPTIONS}
    total = sum(votes.values())
    percent_a = round(100 * votes["a"] / total, 1) if total else 0.0
    percents = {"a": percent_a, "b": round(100 - percent_a, 1) if total else 0.0}
    return {
        "options": [
            {"id": o, "label": options.label(o), "votes": votes[o], "percent": percents[o]} for o in OPTIONS
        ],
        "total": total,
        "total_text": total_text(total),
        "stale": stale,
        "loaded": loaded,
    }
