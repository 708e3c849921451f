"""What viewers see: tallies turned into labels, percentages and a total. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from voting_contract.ballot import Ballot


def total_text(total: int) -> str:
    if total == 0:
        return "No votes yet"
    return "1 vote" if total == 1 else f"{total:,} votes"


def percentages(votes: Sequence[int], *, decimals: int = 1) -> list[float]:
    """Each count's share of the total, rounded so that the shares always sum to exactly 100.

    The largest remainder method: every share is first rounded down to `decimals` places, then
    the units still missing go, one each, to the shares that lost most in the rounding (the
    earlier option wins a tie). No votes at all: every share is 0.
    """
    total = sum(votes)
    if total == 0:
        return [0.0] * len(votes)
    whole = 100 * 10**decimals  # the total in units of the last decimal place
    floors = [n * whole // total for n in votes]
    remainders = [n * whole % total for n in votes]
    missing = whole - sum(floors)
    for i in sorted(range(len(votes)), key=lambda i: -remainders[i])[:missing]:
        floors[i] += 1
    return [units / 10**decimals for units in floors]


def snapshot(counts: Mapping[str, int], ballot: Ballot, *, stale: bool, loaded: bool = True) -> dict:
    """The JSON that /api/results returns and /ws pushes: the ballot's options, in order."""
    votes = [int(counts.get(option.id, 0)) for option in ballot]
    total = sum(votes)
    return {
        "options": [
            {"id": option.id, "label": option.label, "votes": n, "percent": percent}
            for option, n, percent in zip(ballot, votes, percentages(votes))
        ],
        "total": total,
        "total_text": total_text(total),
        "stale": stale,
        "loaded": loaded,
    }
