"""`make bench`: each service measured against its limit, side by side in one run.

Starts its own Redis and PostgreSQL (the embedded servers) and the services as their images
run them, measures, prints a table and writes the same figures to .bench/results.json. Every
figure is the median of repeated runs. `--quick` is the same script with smaller sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg
import redis
import websockets

from voting_contract.schema import TALLIES_SQL, TALLY_CHANNEL, ensure_schema
from voting_contract.settings import Options
from voting_contract.wire import QUEUE
from result.tallies import snapshot
from worker.batch import plan_batch
from worker.store import UPSERT_SQL

from . import stack
from .load import queue_votes, wait_drained
from .truth import compare
from .servers import PostgresServer, RedisServer

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
    detail: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return None if not self.limit else self.ours / self.limit


@dataclass
class Sizes:
    drain_votes: int
    drain_repeats: int
    http_seconds: int
    http_repeats: int
    fresh_votes: int
    tally_rows: tuple[int, ...]
    fanout_viewers: tuple[int, ...]
    fanout_seconds: float


FULL = Sizes(200_000, 3, 8, 3, 200, (10_000, 1_000_000, 10_000_000), (1, 100, 1000), 5.0)
QUICK = Sizes(20_000, 1, 2, 1, 100, (10_000, 100_000, 1_000_000), (1, 100, 1000), 2.0)


# -- process memory ---------------------------------------------------------------------
def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return found


def tree_pss(pid: int) -> int:
    """Proportional set size of a process and its descendants, in bytes.

    PSS splits each shared page among the processes that map it, so gunicorn's forked workers
    are not counted twice for what they share with the master: the sum is what the
    container's memory cgroup would charge for these processes.
    """
    total = 0
    for p in _tree(pid):
        try:
            found = re.search(r"^Pss:\s+(\d+) kB", Path(f"/proc/{p}/smaps_rollup").read_text(), re.M)
        except OSError:
            continue
        total += int(found.group(1)) * 1024 if found else 0
    return total


class MemoryWatch:
    """Samples a service's memory every 50 ms while a load runs; `.peak` is the largest sample."""

    def __init__(self, service: stack.Service) -> None:
        self.pid = service.proc.pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_pss(self.pid))
            self._stop.wait(0.05)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_pss(self.pid))


# -- 1. worker drain rate ---------------------------------------------------------------
def bench_worker(r: RedisServer, pg: PostgresServer, sizes: Sizes, logs: Path) -> tuple[Figure, int]:
    client = redis.Redis.from_url(r.url)
    rates, limits, peaks, checks = [], [], [], []
    for rep in range(sizes.drain_repeats):
        client.flushall()
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            ensure_schema(conn)
            conn.execute("TRUNCATE votes")
        n = sizes.drain_votes
        truth = queue_votes(client, voters=n * 4 // 5, votes=n, rng=random.Random(rep))
        messages = client.lrange(QUEUE, 0, -1)
        worker = stack.worker(stack.redis_env(r.port), pg.env, log_path=logs / "bench-worker.log").start()
        while client.llen(QUEUE) == n:
            time.sleep(0.001)
        started = time.perf_counter()
        with MemoryWatch(worker) as memory:
            wait_drained(client, 600)
            with psycopg.connect(pg.dsn, autocommit=True) as conn:
                while conn.execute("SELECT count(*) FROM votes").fetchone()[0] < len(truth):
                    time.sleep(0.001)
                elapsed = time.perf_counter() - started
                outcome = compare(conn, truth)
        peaks.append(memory.peak)
        worker.stop()
        checks.append(outcome.ok)
        rates.append(n / elapsed)
        limits.append(raw_upsert_rate(pg, messages))
    worker_rate, limit_rate = statistics.median(rates), statistics.median(limits)
    figure = Figure(
        1, "Worker drain rate", worker_rate, "votes/s", limit_rate, "raw batched upsert, no Redis",
        goal="≥ 50% of the limit, exact rows", met=all(checks) and worker_rate >= 0.5 * limit_rate,
        detail={"votes": sizes.drain_votes, "runs": rates, "limit_runs": limits, "exact_rows": checks},
    )
    return figure, max(peaks)


UNNEST_UPSERT_SQL = UPSERT_SQL.replace(
    "SELECT id, vote, seq FROM json_to_recordset(%s::json) AS r(id VARCHAR, vote VARCHAR, seq BIGINT)",
    "SELECT * FROM unnest(%s::varchar[], %s::varchar[], %s::bigint[])",
)
if UNNEST_UPSERT_SQL == UPSERT_SQL:
    raise RuntimeError("bench: the worker's upsert changed shape; update UNNEST_UPSERT_SQL")


def raw_upsert_rate(pg: PostgresServer, messages: list[bytes]) -> float:
    """The same rows straight into PostgreSQL, decoded beforehand, one transaction per batch.

    The best of two ways to send a batch (the worker's JSON parameter, or three arrays for
    `unnest`) and three batch sizes: the limit is the fastest of them.
    """
    best = 0.0
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        for size in (1000, 2000, 5000):
            plans = [plan_batch(messages[i:i + size]) for i in range(0, len(messages), size)]
            ways = {
                UPSERT_SQL: [(p.rows,) for p in plans],
                UNNEST_UPSERT_SQL: [tuple(map(list, zip(*((v.voter_id, v.vote, v.seq) for v in p.votes))))
                                    for p in plans],
            }
            for sql, params in ways.items():
                conn.execute("TRUNCATE votes")
                started = time.perf_counter()
                for batch in params:
                    with conn.transaction():
                        conn.execute(sql, batch)
                best = max(best, len(messages) / (time.perf_counter() - started))
    return best


# -- 2. vote HTTP -----------------------------------------------------------------------
_WRK_POST = 'wrk.method = "POST"\nwrk.body = "vote=a"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'


def _seconds(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> dict:
    argv = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        argv[1:1] = ["-s", str(script)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    percent = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _seconds(percent["50"]),
        "p99": _seconds(percent["99"]),
        "non2xx": int(errors.group(1)) if errors else 0,
    }


def bench_vote(r: RedisServer, sizes: Sizes, logs: Path, tmp: Path) -> tuple[list[Figure], int]:
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is needed for the vote figures (Debian: apt-get install wrk)")
    script = tmp / "post.lua"
    script.write_text(_WRK_POST)
    # One gunicorn process per pod, as the manifests run it (the CPU limit is half a core).
    vote = stack.vote(stack.redis_env(r.port), workers=1, log_path=logs / "bench-vote.log").start().wait_ready()
    client = redis.Redis.from_url(r.url)
    posts, gets, relaxed = [], [], []
    try:
        with MemoryWatch(vote) as memory:
            for _ in range(sizes.http_repeats):
                gets.append(wrk(vote.url + "/healthz", sizes.http_seconds, 32))
                posts.append(wrk(vote.url + "/", sizes.http_seconds, 32, script))
                # The same with Redis syncing its append-only file once a second instead of
                # before every reply: what prod's stricter setting costs, side by side.
                client.config_set("appendfsync", "everysec")
                relaxed.append(wrk(vote.url + "/", sizes.http_seconds, 32, script))
                client.config_set("appendfsync", "always")
                client.delete(QUEUE)  # no worker here: keep the queue from growing across repeats
        peak = memory.peak
    finally:
        vote.stop()
    post_rps = statistics.median(p["rps"] for p in posts)
    get_rps = statistics.median(g["rps"] for g in gets)
    p50 = statistics.median(p["p50"] for p in posts)
    p99 = statistics.median(p["p99"] for p in posts)
    failed = sum(p["non2xx"] for p in posts + relaxed)
    relaxed_rps = statistics.median(p["rps"] for p in relaxed)
    return [
        Figure(2, "Vote POST / throughput", post_rps, "req/s", get_rps, "GET /healthz, same app",
               goal="≥ 80% of the limit", met=post_rps >= 0.8 * get_rps and failed == 0,
               detail={"post": posts, "healthz": gets, "connections": 32, "redis_appendfsync": "always"}),
        Figure(2, "Vote POST /, Redis fsync each second", relaxed_rps, "req/s", get_rps, "GET /healthz, same app",
               detail={"post": relaxed, "redis_appendfsync": "everysec"}),
        Figure(2, "Vote POST / latency p50", p50 * 1000, "ms", statistics.median(g["p50"] for g in gets) * 1000,
               "GET /healthz p50"),
        Figure(2, "Vote POST / latency p99", p99 * 1000, "ms", statistics.median(g["p99"] for g in gets) * 1000,
               "GET /healthz p99", goal="≤ 50 ms at 32 connections", met=p99 <= 0.050),
    ], peak


# -- 3. result freshness ----------------------------------------------------------------
def bench_freshness(pg: PostgresServer, sizes: Sizes, logs: Path) -> tuple[list[Figure], int]:
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        ensure_schema(conn)
        conn.execute("TRUNCATE votes")
    result = stack.result(pg.env, log_path=logs / "bench-result.log").start().wait_ready()
    try:
        with MemoryWatch(result) as memory:
            delays = asyncio.run(_freshness(pg, result.port, sizes.fresh_votes))
        floor = _notify_floor(pg, sizes.fresh_votes)
        peak = memory.peak
    finally:
        result.stop()
    p50, p99 = _percentile(delays, 50), _percentile(delays, 99)
    return [
        Figure(3, "Result freshness p50", p50 * 1000, "ms", _percentile(floor, 50) * 1000,
               "bare LISTEN/NOTIFY p50", goal="≤ 100 ms", met=p50 <= 0.100, detail={"votes": len(delays)}),
        Figure(3, "Result freshness p99", p99 * 1000, "ms", _percentile(floor, 99) * 1000,
               "bare LISTEN/NOTIFY p99", goal="≤ 250 ms", met=p99 <= 0.250),
    ], peak


def _percentile(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


async def _freshness(pg: PostgresServer, port: int, votes: int) -> list[float]:
    delays = []
    conn = await psycopg.AsyncConnection.connect(pg.dsn)
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
        json.loads(await ws.recv())
        for i in range(votes):
            await conn.execute("INSERT INTO votes (id, vote) VALUES (%s, %s)", (f"fresh{i}", "ab"[i % 2]))
            started = time.perf_counter()
            await conn.commit()
            while json.loads(await ws.recv())["total"] != i + 1:
                pass
            delays.append(time.perf_counter() - started)
            await asyncio.sleep(random.uniform(0.005, 0.02))
    await conn.close()
    return delays


def _notify_floor(pg: PostgresServer, n: int) -> list[float]:
    """Commit to notification on a bare connection: what PostgreSQL itself takes."""
    delays = []
    with psycopg.connect(pg.dsn, autocommit=True) as listener, psycopg.connect(pg.dsn) as writer:
        listener.execute(f"LISTEN {TALLY_CHANNEL}")
        for i in range(n):
            writer.execute("INSERT INTO votes (id, vote) VALUES (%s, 'a')", (f"floor{i}",))
            started = time.perf_counter()
            writer.commit()
            for _ in listener.notifies(timeout=5, stop_after=1):
                pass
            delays.append(time.perf_counter() - started)
    return delays


# -- 4. tally cost growth ---------------------------------------------------------------
GROUP_BY = "SELECT vote, COUNT(id) FROM votes GROUP BY vote"


def bench_tallies(pg: PostgresServer, sizes: Sizes) -> list[Figure]:
    figures = []
    options = Options("Cats", "Dogs")
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        ensure_schema(conn)
        conn.execute("TRUNCATE votes")
        loaded = 0
        for rows in sizes.tally_rows:
            for start in range(loaded, rows, 1_000_000):
                end = min(rows, start + 1_000_000)
                conn.execute("INSERT INTO votes (id, vote) SELECT 'row' || i, CASE WHEN i %% 3 = 0 THEN 'b' ELSE 'a' END "
                             "FROM generate_series(%s::bigint, %s::bigint) i", (start, end - 1))
            loaded = rows
            conn.execute("VACUUM ANALYZE votes")

            def ours() -> dict:
                return snapshot(dict(conn.execute(TALLIES_SQL).fetchall()), options, stale=False)

            def naive() -> dict:
                return snapshot(dict(conn.execute(GROUP_BY).fetchall()), options, stale=False)

            assert ours() == naive(), "the kept tallies disagree with a full count"
            ours_ms = statistics.median(_timed(ours) for _ in range(21)) * 1000
            naive_ms = statistics.median(_timed(naive) for _ in range(5)) * 1000
            last = rows == sizes.tally_rows[-1]
            figures.append(Figure(
                4, f"Tallies at {rows:,} rows", ours_ms, "ms", naive_ms, "COUNT ... GROUP BY",
                goal="flat; ≤ 5 ms at 10M" if last else "", met=(ours_ms <= 5.0) if last else None,
            ))
    return figures


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# -- 5. fan-out -------------------------------------------------------------------------
def _db_queries(url: str) -> float:
    import httpx

    text = httpx.get(url + "/metrics").text
    return float(re.search(r"^result_db_queries_total (\S+)$", text, re.M).group(1))


def bench_fanout(pg: PostgresServer, sizes: Sizes, logs: Path) -> tuple[list[Figure], int]:
    result = stack.result(pg.env, log_path=logs / "bench-fanout.log").start().wait_ready()
    figures, rates = [], []
    memory = MemoryWatch(result).__enter__()
    try:
        for viewers in sizes.fanout_viewers:
            with psycopg.connect(pg.dsn, autocommit=True) as conn:
                conn.execute("TRUNCATE votes")
            rate, seen_all = asyncio.run(_fanout(pg, result, viewers, sizes.fanout_seconds))
            rates.append(rate)
            figures.append(Figure(
                5, f"DB reads/s, {viewers} viewers", rate, "queries/s", rates[0], "same with 1 viewer",
                goal="the same at all three; every viewer sees the final totals",
                met=seen_all and rate <= rates[0] * 1.25, detail={"every_viewer_saw_final": seen_all},
            ))
        memory.__exit__()
        peak = memory.peak
    finally:
        result.stop()
    return figures, peak


async def _fanout(pg: PostgresServer, result: stack.Service, viewers: int, seconds: float) -> tuple[float, bool]:
    sockets = [await websockets.connect(f"ws://127.0.0.1:{result.port}/ws", max_queue=None) for _ in range(viewers)]
    finals: list[int] = [0] * viewers

    async def follow(i: int, ws) -> None:
        async for message in ws:
            finals[i] = json.loads(message)["total"]

    readers = [asyncio.create_task(follow(i, ws)) for i, ws in enumerate(sockets)]
    before = await asyncio.to_thread(_db_queries, result.url)
    conn = await psycopg.AsyncConnection.connect(pg.dsn, autocommit=True)
    started, written = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        await conn.execute("INSERT INTO votes (id, vote) VALUES (%s, 'a')", (f"fan{written}",))
        written += 1
        await asyncio.sleep(0.02)  # about 50 commits a second
    elapsed = time.perf_counter() - started
    after = await asyncio.to_thread(_db_queries, result.url)
    deadline = time.perf_counter() + 30
    while any(f != written for f in finals) and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    seen_all = all(f == written for f in finals)
    await conn.close()
    for ws in sockets:
        await ws.close()
    for task in readers:
        task.cancel()
    return (after - before) / elapsed, seen_all


# -- the run ----------------------------------------------------------------------------
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


def machine() -> dict:
    cpu = re.search(r"^model name\s+:\s+(.*)$", Path("/proc/cpuinfo").read_text(), re.M)
    return {"cpu": cpu.group(1) if cpu else platform.processor(), "cores": os.cpu_count(),
            "python": platform.python_version(), "system": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: under a minute")
    parser.add_argument("--out", type=Path, default=Path(".bench/results.json"))
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1,000 websockets need the file descriptors

    started = time.perf_counter()
    figures: list[Figure] = []
    peaks: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="voting-bench-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)
        logs = tmp / "logs"
        logs.mkdir()
        # Redis with prod's persistence: every acknowledged vote is on disk before the reply.
        with RedisServer(tmp / "redis", appendonly=True, appendfsync="always") as r, \
                PostgresServer(tmp / "postgres") as pg:
            print(f"bench: Redis on {r.port}, PostgreSQL on {pg.port}; {'quick' if args.quick else 'full'} sizes",
                  flush=True)
            figure, peaks["worker"] = bench_worker(r, pg, sizes, logs)
            figures.append(figure)
            print(f"  1 worker drain done ({time.perf_counter() - started:.0f}s)", flush=True)
            vote_figures, peaks["vote"] = bench_vote(r, sizes, logs, tmp)
            figures += vote_figures
            print(f"  2 vote HTTP done ({time.perf_counter() - started:.0f}s)", flush=True)
            fresh, peak_fresh = bench_freshness(pg, sizes, logs)
            figures += fresh
            print(f"  3 freshness done ({time.perf_counter() - started:.0f}s)", flush=True)
            fanout, peak_fanout = bench_fanout(pg, sizes, logs)
            figures += fanout
            peaks["result"] = max(peak_fresh, peak_fanout)
            print(f"  5 fan-out done ({time.perf_counter() - started:.0f}s)", flush=True)
            figures += bench_tallies(pg, sizes)
            print(f"  4 tallies done ({time.perf_counter() - started:.0f}s)", flush=True)
    classic_requests = {"vote": 64, "result": 64, "worker": 128}
    for name in ("vote", "worker", "result"):
        peak_mib = peaks[name] / MiB
        figures.append(Figure(6, f"Peak memory (PSS), {name}", peak_mib, "MiB", classic_requests[name],
                              "the classic architecture's memory request", goal="within the request",
                              met=peak_mib <= classic_requests[name]))
    figures.sort(key=lambda f: f.number)
    print()
    print_table(figures)
    wall = time.perf_counter() - started
    print(f"\n{'quick' if args.quick else 'full'} run, {wall:.0f} s on {machine()['cores']} cores: {machine()['cpu']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "quick": args.quick, "seconds": wall, "machine": machine(),
        "figures": [{**asdict(f), "ratio": f.ratio} for f in figures],
    }, indent=2))
    print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
