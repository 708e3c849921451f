"""Figures 3 and 5: result's freshness beside bare LISTEN/NOTIFY, its database reads as viewers
grow, and ten thousand websockets on one process (memory, freshness, every viewer's last total)."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from pathlib import Path

import httpx
import psycopg
import websockets

from voting_contract.schema import TALLY_CHANNEL, ensure_schema

from .. import stack
from ..servers import PostgresServer
from .figures import MiB, Figure, Sizes, Turns, percentile
from .memory import MemoryWatch, tree_pss
from .viewers import open_viewers

RESULT_LIMIT_MIB = 256  # the result container's memory limit in the manifests
CLASSIC_REQUEST_MIB = 64  # the classic architecture's memory request for result


def truncate(pg: PostgresServer) -> None:
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        ensure_schema(conn)
        conn.execute("TRUNCATE votes")


# -- 3. freshness -----------------------------------------------------------------------
def bench_freshness(pg: PostgresServer, sizes: Sizes, logs: Path) -> tuple[list[Figure], int, dict]:
    truncate(pg)
    result = stack.result(pg.env, log_path=logs / "bench-result.log").start().wait_ready()
    ours, floor, p99 = [], [], Turns([], [])
    try:
        with MemoryWatch(result) as memory:
            for turn in range(sizes.fresh_repeats):
                delays = asyncio.run(_freshness(pg, result.port, sizes.fresh_votes, f"t{turn}-"))
                bare = _notify_floor(pg, sizes.fresh_votes, f"t{turn}-")
                ours += delays
                floor += bare
                p99.ours.append(percentile(delays, 99) * 1000)
                p99.limits.append(percentile(bare, 99) * 1000)
        peak = memory.peak
    finally:
        result.stop()
    p50 = percentile(ours, 50) * 1000
    figures = [
        Figure(3, "Result freshness p50", p50, "ms", percentile(floor, 50) * 1000, "bare LISTEN/NOTIFY p50",
               goal="≤ 100 ms", met=p50 <= 100, detail={"votes": len(ours)}),
        Figure(3, "Result freshness p99", p99.median_ours, "ms", p99.median_limit, "bare LISTEN/NOTIFY p99",
               goal="≤ 250 ms", met=p99.median_ours <= 250, ratio=p99.ratio, detail={"ratios": p99.ratios}),
    ]
    return figures, peak, {"ours": ours, "floor": floor}


async def _freshness(pg: PostgresServer, port: int, votes: int, prefix: str) -> list[float]:
    delays = []
    conn = await psycopg.AsyncConnection.connect(pg.dsn)
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
        start = json.loads(await ws.recv())["total"]
        for i in range(votes):
            await conn.execute("INSERT INTO votes (id, vote) VALUES (%s, %s)", (f"{prefix}fresh{i}", "ab"[i % 2]))
            started = time.perf_counter()
            await conn.commit()
            while json.loads(await ws.recv())["total"] != start + i + 1:
                pass
            delays.append(time.perf_counter() - started)
            await asyncio.sleep(random.uniform(0.005, 0.02))
    await conn.close()
    return delays


def _notify_floor(pg: PostgresServer, n: int, prefix: str) -> list[float]:
    """Commit to notification on a bare connection: what PostgreSQL itself takes."""
    delays = []
    with psycopg.connect(pg.dsn, autocommit=True) as listener, psycopg.connect(pg.dsn) as writer:
        listener.execute(f"LISTEN {TALLY_CHANNEL}")
        for i in range(n):
            writer.execute("INSERT INTO votes (id, vote) VALUES (%s, 'a')", (f"{prefix}floor{i}",))
            started = time.perf_counter()
            writer.commit()
            for _ in listener.notifies(timeout=5, stop_after=1):
                pass
            delays.append(time.perf_counter() - started)
    return delays


# -- 5. fan-out -------------------------------------------------------------------------
def db_queries(url: str) -> float:
    text = httpx.get(url + "/metrics").text
    return float(re.search(r"^result_db_queries_total (\S+)$", text, re.M).group(1))


def bench_fanout(pg: PostgresServer, sizes: Sizes, logs: Path) -> tuple[list[Figure], int, float]:
    result = stack.result(pg.env, log_path=logs / "bench-fanout.log").start().wait_ready()
    figures, rates = [], []
    try:
        with MemoryWatch(result) as memory:
            for viewers in sizes.fanout_viewers:
                truncate(pg)
                rate, seen_all = asyncio.run(_fanout(pg, result, viewers, sizes.fanout_seconds))
                rates.append(rate)
                figures.append(Figure(
                    5, f"DB reads/s, {viewers:,} viewers", rate, "queries/s", rates[0], "same with 1 viewer",
                    goal="does not grow; every viewer sees the final totals",
                    met=seen_all and rate <= rates[0] * 1.25, detail={"every_viewer_saw_final": seen_all},
                ))
        peak = memory.peak
    finally:
        result.stop()
    return figures, peak, rates[0]


async def _votes_flowing(pg: PostgresServer, seconds: float, prefix: str,
                         committed: dict[int, float] | None = None) -> int:
    """About 50 commits a second for `seconds`; returns how many. `committed`: total -> commit time."""
    conn = await psycopg.AsyncConnection.connect(pg.dsn, autocommit=True)
    started, written = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        await conn.execute("INSERT INTO votes (id, vote) VALUES (%s, 'a')", (f"{prefix}{written}",))
        written += 1
        if committed is not None:
            committed[written] = time.perf_counter()
        await asyncio.sleep(0.02)
    await conn.close()
    return written


async def _fanout(pg: PostgresServer, result: stack.Service, viewers: int, seconds: float) -> tuple[float, bool]:
    sockets = [await websockets.connect(f"ws://127.0.0.1:{result.port}/ws", max_queue=None) for _ in range(viewers)]
    finals: list[int] = [0] * viewers

    async def follow(i: int, ws) -> None:
        async for message in ws:
            finals[i] = json.loads(message)["total"]

    readers = [asyncio.create_task(follow(i, ws)) for i, ws in enumerate(sockets)]
    before = await asyncio.to_thread(db_queries, result.url)
    started = time.perf_counter()
    written = await _votes_flowing(pg, seconds, "fan")
    elapsed = time.perf_counter() - started
    after = await asyncio.to_thread(db_queries, result.url)
    deadline = time.perf_counter() + 30
    while any(f != written for f in finals) and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    seen_all = all(f == written for f in finals)
    for ws in sockets:
        await ws.close()
    for task in readers:
        task.cancel()
    return (after - before) / elapsed, seen_all


# -- 5. a crowd of websockets on one process --------------------------------------------
def bench_crowd(pg: PostgresServer, sizes: Sizes, logs: Path, one_viewer_reads: float) -> tuple[list[Figure], dict]:
    """`sizes.crowd` websockets on one result process while votes flow: memory, freshness, reads."""
    truncate(pg)
    result = stack.result(pg.env, log_path=logs / "bench-crowd.log").start().wait_ready()
    try:
        time.sleep(0.5)
        idle = tree_pss(result.proc.pid)
        with MemoryWatch(result) as memory:
            outcome = asyncio.run(_crowd(pg, result, sizes.crowd, sizes.crowd_seconds))
        peak = memory.peak
    finally:
        result.stop()
    n = sizes.crowd
    per_socket = (peak - idle) / n
    delays = outcome["delays"]
    p99 = percentile(delays, 99) * 1000 if delays else float("inf")
    figures = [
        Figure(5, f"Result peak memory (PSS), {n:,} websockets", peak / MiB, "MiB", RESULT_LIMIT_MIB,
               "the container's memory limit", goal="within the limit", met=peak / MiB <= RESULT_LIMIT_MIB,
               detail={"idle_mib": idle / MiB, "bytes_per_websocket": per_socket}),
        Figure(5, "Memory per websocket", per_socket / 1024, "KiB", None, detail={"websockets": n}),
        Figure(5, f"Freshness p99, {n:,} viewers, votes flowing", p99, "ms", None,
               goal="≤ 250 ms", met=p99 <= 250,
               detail={"p50_ms": percentile(delays, 50) * 1000 if delays else None, "messages": len(delays)}),
        Figure(5, f"DB reads/s, {n:,} viewers", outcome["reads"], "queries/s", one_viewer_reads, "same with 1 viewer",
               goal="does not grow; every viewer sees the final totals",
               met=outcome["seen_all"] and outcome["reads"] <= one_viewer_reads * 1.25,
               detail={"every_viewer_saw_final": outcome["seen_all"], "missing": outcome["missing"]}),
    ]
    return figures, {"delays": delays}


async def _crowd(pg: PostgresServer, result: stack.Service, count: int, seconds: float) -> dict:
    committed: dict[int, float] = {}
    delays: list[float] = []

    def on_total(total: int, at: float) -> None:
        if total in committed:
            delays.append(at - committed[total])

    viewers = await open_viewers("127.0.0.1", result.port, count, on_total)
    before = await asyncio.to_thread(db_queries, result.url)
    started = time.perf_counter()
    written = await _votes_flowing(pg, seconds, "crowd", committed)
    elapsed = time.perf_counter() - started
    after = await asyncio.to_thread(db_queries, result.url)
    deadline = time.perf_counter() + 60
    while any(v.total != written for v in viewers) and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)
    missing = sum(v.total != written for v in viewers)
    for v in viewers:
        v.close()
    await asyncio.sleep(0.5)
    return {"delays": delays, "reads": (after - before) / elapsed, "seen_all": missing == 0, "missing": missing}
