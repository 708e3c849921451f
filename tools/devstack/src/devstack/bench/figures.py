"""The table's rows, the two sizes of a run, and measuring a figure in turns with its limit."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

MiB = 1024 * 1024


@dataclass
class Figure:
    number: int
    name: str
    ours: float
    unit: str
    limit: float | None = None
    limit_name: str = ""
    goal: str = ""
    met: bool | None = None
    # The median of per-turn ratios where the figure was measured in turns with its limit;
    # otherwise ours / limit.
    ratio: float | None = None
    detail: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ratio is None and self.limit:
            self.ratio = self.ours / self.limit


@dataclass(frozen=True)
class Sizes:
    drain_votes: int
    drain_repeats: int
    http_seconds: int
    http_repeats: int
    fresh_votes: int
    fresh_repeats: int
    tally_rows: tuple[int, ...]
    fanout_viewers: tuple[int, ...]
    fanout_seconds: float
    crowd: int  # websockets on one result process
    crowd_seconds: float
    pipeline_rates: tuple[int, ...]  # votes/s offered, rising
    pipeline_seconds: float
    pipeline_viewers: int


FULL = Sizes(200_000, 3, 8, 5, 200, 3, (10_000, 1_000_000, 10_000_000), (1, 100, 1000), 5.0,
             10_000, 10.0, (25, 50, 100, 200, 300, 400, 600, 800, 1000, 1200), 8.0, 100)
QUICK = Sizes(20_000, 1, 2, 2, 100, 2, (10_000, 100_000, 1_000_000), (1, 100, 1000), 2.0,
              2_000, 3.0, (50, 100, 200, 300, 400, 600), 3.0, 100)
TINY = Sizes(2_000, 1, 1, 1, 10, 1, (1_000,), (1, 10), 0.5, 50, 1.0, (20, 40), 1.0, 5)


@dataclass
class Turns:
    """A figure and its limit measured alternately; `ratio` is the median of the turns' ratios."""

    ours: list[float]
    limits: list[float]

    @property
    def ratios(self) -> list[float]:
        return [o / l for o, l in zip(self.ours, self.limits) if l]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def median_ours(self) -> float:
        return statistics.median(self.ours)

    @property
    def median_limit(self) -> float:
        return statistics.median(self.limits)


def in_turns(ours: Callable[[], float], limit: Callable[[], float], repeats: int) -> Turns:
    """A, B, A, B ...: each turn measures ours then its limit, back to back."""
    turns = Turns([], [])
    for _ in range(repeats):
        turns.ours.append(ours())
        turns.limits.append(limit())
    return turns


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def print_table(figures: list[Figure]) -> None:
    rows = [("#", "figure", "ours", "limit (same run)", "ratio", "goal", "met")]
    for f in figures:
        limit = "" if f.limit is None else f"{f.limit:,.1f} {f.unit} ({f.limit_name})"
        ratio = "" if f.ratio is None else f"{f.ratio:.2f}"
        met = "" if f.met is None else ("yes" if f.met else "NO")
        rows.append((str(f.number), f.name, f"{f.ours:,.1f} {f.unit}", limit, ratio, f.goal, met))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
