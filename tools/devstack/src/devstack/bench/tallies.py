"""Figure 4: what a tally read costs as the table grows, beside a full `COUNT ... GROUP BY`."""

from __future__ import annotations

import statistics
import time

import psycopg

from result.tallies import snapshot
from voting_contract.schema import TALLIES_SQL, ensure_schema

from ..servers import PostgresServer
from ..truth import BALLOT
from .figures import Figure, Sizes

GROUP_BY = "SELECT vote, COUNT(id) FROM votes GROUP BY vote"


def bench_tallies(pg: PostgresServer, sizes: Sizes) -> list[Figure]:
    figures = []
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
                return snapshot(dict(conn.execute(TALLIES_SQL).fetchall()), BALLOT, stale=False)

            def naive() -> dict:
                return snapshot(dict(conn.execute(GROUP_BY).fetchall()), BALLOT, stale=False)

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
