"""One PostgreSQL reader per process, fanned out to every websocket.

The reader LISTENs for the tally triggers' notifications and reads the small tally table once
per change, however many viewers are connected: database load does not grow with viewers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Iterator

import psycopg
from prometheus_client import Counter, Gauge

from voting_contract.logs import event
from voting_contract.schema import TALLIES_SQL, TALLY_CHANNEL, ensure_schema
from voting_contract.ballot import Ballot
from voting_contract.settings import PostgresSettings

from .tallies import snapshot
from .telemetry import FeedTelemetry

log = logging.getLogger("result.feed")

DB_QUERIES = Counter("result_db_queries", "Tally reads sent to PostgreSQL")
UPDATES = Counter("result_updates_published", "Changed tallies published to viewers")
VIEWERS = Gauge("result_websocket_viewers", "Open websocket connections")
DB_CONNECTED = Gauge("result_db_connected", "1 while the tally reader holds a PostgreSQL connection, else 0")


class TallyFeed:
    def __init__(self, settings: PostgresSettings, ballot: Ballot, recheck_seconds: float,
                 telemetry: FeedTelemetry | None = None) -> None:
        self.settings = settings
        self.telemetry = telemetry or FeedTelemetry()
        self.ballot = ballot
        self.recheck_seconds = recheck_seconds
        self.counts: dict[str, int] = {}
        self.loaded = False
        self.connected = False
        self.current = snapshot({}, ballot, stale=True, loaded=False)
        self._subscribers: set[asyncio.Queue] = set()
        self.closing = False
        self._task: asyncio.Task | None = None

    # -- viewers ----------------------------------------------------------------------
    @contextlib.contextmanager
    def viewer(self) -> Iterator[asyncio.Queue]:
        """A queue of the newest tallies (None: close) for one viewer, for as long as the block runs.

        However the block ends (the viewer leaves mid-send, the task is cancelled, an error), the
        queue stops receiving and the viewer is no longer counted.
        """
        queue: asyncio.Queue = asyncio.Queue(maxsize=1)
        self._subscribers.add(queue)
        VIEWERS.inc()
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
            VIEWERS.dec()

    @property
    def viewers(self) -> int:
        return len(self._subscribers)

    def _publish(self, counts: dict[str, int] | None = None) -> None:
        if counts is not None:
            self.counts, self.loaded = counts, True
        new = snapshot(self.counts, self.ballot, stale=not self.connected, loaded=self.loaded)
        if new == self.current:
            return
        self.current = new
        UPDATES.inc()
        with self.telemetry.push(self.viewers):
            for queue in self._subscribers:
                # A slow viewer only ever needs the newest tallies: replace what it has not read.
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(new)

    # -- the reader -------------------------------------------------------------------
    async def _read(self, conn: psycopg.AsyncConnection, payloads: list[str] | None = None) -> None:
        with self.telemetry.notified(payloads or ()):
            DB_QUERIES.inc()
            cursor = await conn.execute(TALLIES_SQL)
            self._publish({vote: n for vote, n in await cursor.fetchall()})

    def _prepare_schema(self) -> None:
        with psycopg.connect(self.settings.conninfo(application_name="result"), autocommit=True) as conn:
            ensure_schema(conn)

    async def _follow(self) -> None:
        await asyncio.to_thread(self._prepare_schema)
        conninfo = self.settings.conninfo(application_name="result")
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            await conn.execute(f"LISTEN {TALLY_CHANNEL}")
            self.connected = True
            DB_CONNECTED.set(1)
            log.info("following tallies in %s:%d", self.settings.host, self.settings.port,
                     extra=event("result.following"))
            await self._read(conn)
            while True:
                # One read answers every notification that arrived before it.
                payloads = [n.payload async for n in conn.notifies(timeout=self.recheck_seconds, stop_after=1)]
                await self._read(conn, payloads)

    async def run(self) -> None:
        """Follow the tallies for ever, reconnecting with backoff; viewers keep the last ones."""
        delay = 0.1
        DB_CONNECTED.set(0)
        while True:
            try:
                await self._follow()
            except (psycopg.Error, OSError) as exc:
                if self.connected:
                    log.warning("lost PostgreSQL (%s); keeping the last tallies", exc, extra=event("result.db_lost"))
                    delay = 0.1
                elif not self.loaded and delay == 0.1:
                    log.warning("cannot reach PostgreSQL yet (%s); retrying", exc,
                                extra=event("result.db_unreachable"))
                self.connected = False
                DB_CONNECTED.set(0)
                self._publish()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(5.0, delay * 2)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="tally-feed")

    def close_viewers(self) -> None:
        """Tell every websocket to close; new ones are closed as soon as they open."""
        self.closing = True
        for queue in list(self._subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.close_viewers()
