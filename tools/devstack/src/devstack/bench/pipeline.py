"""The whole pipeline's capacity: votes over HTTP at rising open-loop rates against one vote
process, one worker and one result process with viewers; for each rate, the p99 from
`POST /` answered to the new total on a viewer's websocket. Beside it: vote's own ceiling.

Each vote comes from a new browser (no cookie), so every answered vote adds one to the
total. The k-th answer is matched with the first moment a viewer shows a total of at least
k: queue order is answer order within a few milliseconds, and the worker commits in order.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import redis

from .. import stack
from ..load import wait_drained
from ..servers import PostgresServer, RedisServer
from .figures import Figure, Sizes, percentile
from .result import truncate
from .vote import post_script, vote_limit
from .viewers import open_viewers

P99_GOAL_MS = 250
KEEP_PACE = 0.95  # a rate counts only if vote answered at least this share of it on time
REQUEST = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
           b"Content-Length: 6\r\n\r\nvote=a")


class Connection:
    """One keep-alive HTTP/1.1 connection that posts a vote and reads the whole answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self) -> int:
        self.writer.write(REQUEST)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return int(head[9:12])


class Voters:
    """Open-loop voters: votes sent at the scheduled instants whatever the answers' pace."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[Connection] = []
        self.opened = 0

    async def _connection(self) -> Connection:
        if self.idle:
            return self.idle.pop()
        self.opened += 1
        return Connection(*await asyncio.open_connection("127.0.0.1", self.port))

    async def _vote(self, due: float, answers: list[float], waits: list[float], failures: list[int]) -> None:
        conn = await self._connection()
        try:
            status = await conn.post()
        except (OSError, asyncio.IncompleteReadError):
            failures.append(0)
            return
        now = time.perf_counter()
        self.idle.append(conn)
        if status == 200:
            answers.append(now)
            waits.append(now - due)  # from the scheduled instant: no coordinated omission
        else:
            failures.append(status)

    async def run(self, rate: float, seconds: float) -> dict:
        answers: list[float] = []
        waits: list[float] = []
        failures: list[int] = []
        tasks = []
        n = int(rate * seconds)
        started = time.perf_counter()
        for k in range(n):
            due = started + k / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self._vote(due, answers, waits, failures)))
        await asyncio.gather(*tasks)
        # The rate vote kept: votes answered over the time from the first send to the last answer.
        kept = len(answers) / max(seconds, (max(answers) - started) if answers else seconds)
        return {"sent": n, "answers": sorted(answers), "waits": waits, "failures": failures, "kept": kept}


async def _sweep(vote_port: int, result_port: int, sizes: Sizes) -> list[dict]:
    seen: list[list[tuple[int, float]]] = []

    def recorder(i: int):
        def on_total(total: int, at: float) -> None:
            seen[i].append((total, at))
        return on_total

    viewers = []
    for i in range(sizes.pipeline_viewers):
        seen.append([])
        viewers += await open_viewers("127.0.0.1", result_port, 1, recorder(i))
    voters = Voters(vote_port)
    steps = []
    for rate in sizes.pipeline_rates:
        base = max(v.total for v in viewers)
        for events in seen:
            events.clear()
        outcome = await voters.run(rate, sizes.pipeline_seconds)
        answered = len(outcome["answers"])
        deadline = time.perf_counter() + 30
        while any(v.total < base + answered for v in viewers) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        latencies = _latencies(outcome["answers"], seen, base)
        p99 = percentile(latencies, 99) * 1000 if latencies and all(v.total >= base + answered for v in viewers) \
            else float("inf")
        kept_pace = outcome["kept"] >= KEEP_PACE * rate
        step = {"rate": rate, "answered": answered, "failures": len(outcome["failures"]), "kept": outcome["kept"],
                "kept_pace": kept_pace, "p50_ms": percentile(latencies, 50) * 1000 if latencies else None,
                "p99_ms": p99, "post_p99_ms": percentile(outcome["waits"], 99) * 1000 if outcome["waits"] else None,
                "post_waits": outcome["waits"], "connections": voters.opened}
        steps.append(step)
        print(f"    {rate:>5} votes/s offered: {outcome['kept']:,.0f}/s answered, POST p99 {step['post_p99_ms'] or 0:,.0f} ms, "
              f"p99 answer->viewer {p99:,.0f} ms", flush=True)
        if p99 > P99_GOAL_MS * 2 or outcome["failures"] or not kept_pace:
            break  # past the knee: higher rates only queue more
    for v in viewers:
        v.close()
    return steps


def _latencies(answers: list[float], seen: list[list[tuple[int, float]]], base: int) -> list[float]:
    """For each answered vote k (in answer order), when each viewer first showed a total ≥ base + k."""
    if not answers:
        return []
    answered = np.array(answers)
    wanted = base + np.arange(1, len(answers) + 1)
    out = []
    for events in seen:
        if not events:
            continue
        totals = np.maximum.accumulate(np.array([t for t, _ in events]))
        times = np.array([at for _, at in events])
        idx = np.searchsorted(totals, wanted, side="left")
        ok = idx < len(totals)
        out.append(times[idx[ok]] - answered[ok])
    return np.concatenate(out).tolist() if out else []


def bench_pipeline(r: RedisServer, pg: PostgresServer, sizes: Sizes, logs: Path, tmp: Path) -> tuple[list[Figure], dict]:
    redis.Redis.from_url(r.url).flushall()
    truncate(pg)
    vote = stack.vote(stack.redis_env(r.port), workers=1, log_path=logs / "pipeline-vote.log").start()
    worker = stack.worker(stack.redis_env(r.port), pg.env, log_path=logs / "pipeline-worker.log").start()
    result = stack.result(pg.env, log_path=logs / "pipeline-result.log").start()
    try:
        vote.wait_ready()
        result.wait_ready()
        # vote's own ceiling in this stack, before and after the sweep: the mean of the two.
        script = post_script(tmp)
        before = vote_limit(vote, max(2.0, sizes.pipeline_seconds / 2), script)
        wait_drained(redis.Redis.from_url(r.url), 120)
        steps = asyncio.run(_sweep(vote.port, result.port, sizes))
        wait_drained(redis.Redis.from_url(r.url), 120)
        after = vote_limit(vote, max(2.0, sizes.pipeline_seconds / 2), script)
        limit = {"rps": (before["rps"] + after["rps"]) / 2, "runs": [before, after]}
    finally:
        for service in (vote, worker, result):
            service.stop()
    within = [s["rate"] for s in steps if s["p99_ms"] <= P99_GOAL_MS and not s["failures"] and s["kept_pace"]]
    capacity = max(within, default=0)
    figures = [Figure(
        7, f"Pipeline capacity: p99 answer→viewer ≤ {P99_GOAL_MS} ms, vote keeping pace, {sizes.pipeline_viewers} viewers",
        capacity,
        "votes/s", limit["rps"], "vote's own POST / ceiling (wrk, 32 connections)",
        detail={"steps": [{k: v for k, v in s.items() if k != "post_waits"} for s in steps], "vote_limit_runs": limit["runs"]},
    )]
    return figures, {"steps": steps, "vote_limit": limit["rps"], "goal_ms": P99_GOAL_MS}
