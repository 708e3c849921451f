"""PNG charts beside results.json: the pipeline's rate against its p99, freshness and vote
latency distributions, and the worker's drain rate against its limit."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _cdf(ax, values: list[float], label: str, scale: float = 1000.0) -> None:
    if not values:
        return
    xs = np.sort(np.asarray(values) * scale)
    ax.plot(xs, np.linspace(0, 100, len(xs)), label=label)


def _save(fig, path: Path, *legends) -> None:
    """Legends on the given axes, then the figure written as a PNG and released."""
    for ax in legends:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pipeline(path: Path, data: dict) -> None:
    steps = data["steps"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    rates = [s["rate"] for s in steps]
    p99 = [min(s["p99_ms"], 1e5) for s in steps]
    ax.plot(rates, p99, marker="o", label="p99, POST / answered → total on a viewer's websocket")
    behind = [(r, p) for r, p, s in zip(rates, p99, steps) if not s.get("kept_pace", True)]
    if behind:
        ax.scatter(*zip(*behind), marker="x", s=120, color="tab:red", zorder=3,
                   label="vote answered < 95% of the offered rate")
    ax.axhline(data["goal_ms"], color="tab:red", linestyle="--", label=f"goal {data['goal_ms']} ms")
    ax.axvline(data["vote_limit"], color="tab:gray", linestyle=":", label=f"vote's own ceiling {data['vote_limit']:,.0f}/s")
    ax.set_yscale("log")
    ax.set_xlabel("votes/s offered (open loop)")
    ax.set_ylabel("ms")
    ax.set_title("Whole pipeline: rate against answer-to-viewer p99")
    _save(fig, path, ax)


def freshness(path: Path, data: dict) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _cdf(ax, data.get("ours", []), "result: commit → websocket, 1 viewer")
    _cdf(ax, data.get("floor", []), "bare LISTEN/NOTIFY: commit → notification")
    _cdf(ax, data.get("crowd", []), f"result: commit → websocket, {data.get('crowd_size', 0):,} viewers")
    ax.set_xscale("log")
    ax.set_xlabel("ms (log)")
    ax.set_ylabel("% of updates at or below")
    ax.set_title("Freshness distribution")
    _save(fig, path, ax)


def vote_latency(path: Path, wrk_runs: dict, steps: list[dict]) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    pcts = [50, 75, 90, 99]
    for name, runs in wrk_runs.items():
        for i, run in enumerate(runs):
            left.plot(pcts, [run[f"p{p}"] * 1000 for p in pcts], marker="o",
                      color="tab:blue" if name == "POST /" else "tab:orange", alpha=0.7,
                      label=name if i == 0 else None)
    left.axhline(50, color="tab:red", linestyle="--", label="goal: POST / p99 ≤ 50 ms")
    left.set_xticks(pcts)
    left.set_xlabel("percentile")
    left.set_ylabel("ms")
    left.set_title("vote, 32 connections, closed loop (one line a turn)")
    left.legend(fontsize=8)
    for step in steps:
        _cdf(right, step["post_waits"], f"{step['rate']}/s")
    right.set_xscale("log")
    right.set_xlabel("ms from the scheduled instant to the answer (log)")
    right.set_ylabel("% of votes at or below")
    right.set_title("vote, open loop in the pipeline")
    right.legend(fontsize=7, ncol=2)
    _save(fig, path)


def drain(path: Path, runs: list[float], limits: list[float]) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    turns = np.arange(len(runs))
    ax.bar(turns - 0.2, runs, width=0.4, label="worker (Redis → PostgreSQL, all guarantees)")
    ax.bar(turns + 0.2, limits, width=0.4, label="limit: raw batched upsert, no Redis")
    for t, (o, l) in enumerate(zip(runs, limits)):
        ax.text(t, max(o, l) * 1.02, f"{o / l:.2f}", ha="center", fontsize=8)
    ax.set_xticks(turns, [f"turn {t + 1}" for t in turns])
    ax.set_ylabel("votes/s")
    ax.set_title("Worker drain rate against its limit (ratio above each turn)")
    _save(fig, path, ax)
