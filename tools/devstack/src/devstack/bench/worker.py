"""Figure 1: the worker's drain rate, in turns with the best raw batched upsert of the same rows."""

from __future__ import annotations

import random
import time
from pathlib import Path

import psycopg
import redis

from voting_contract.schema import ensure_schema
from voting_contract.wire import QUEUE
from worker.batch import plan_batch
from worker.store import UPSERT_SQL

from .. import stack
from ..load import queue_votes, wait_drained
from ..servers import PostgresServer, RedisServer
from ..truth import BALLOT, compare
from .figures import Figure, Sizes, Turns
from .memory import MemoryWatch

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
            plans = [plan_batch(messages[i:i + size], BALLOT.ids) for i in range(0, len(messages), size)]
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


def bench_worker(r: RedisServer, pg: PostgresServer, sizes: Sizes, logs: Path) -> tuple[Figure, int]:
    client = redis.Redis.from_url(r.url)
    turns, peaks, checks = Turns([], []), [], []
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
        turns.ours.append(n / elapsed)
        turns.limits.append(raw_upsert_rate(pg, messages))
    figure = Figure(
        1, "Worker drain rate", turns.median_ours, "votes/s", turns.median_limit, "raw batched upsert, no Redis",
        goal="≥ 0.50 of the limit, exact rows", met=all(checks) and turns.ratio >= 0.5, ratio=turns.ratio,
        detail={"votes": sizes.drain_votes, "runs": turns.ours, "limit_runs": turns.limits, "exact_rows": checks},
    )
    return figure, max(peaks)
