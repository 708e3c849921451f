"""One PostgreSQL reader per process, fanned out to every websocket.

The reader LISTENs for the tally triggers' notifications and reads the small tally table once
per change, however many viewers are connected: database load does not grow with viewers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterator

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


CLOSE = {"type": "websocket.close", "code": 1000}


class Viewer:
    """One websocket's sending side: at most one send in flight, and only the newest tallies waiting.

    A viewer holds no queue and no task of its own while nothing changes: a few hundred bytes.
    """

    __slots__ = ("send", "sending", "waiting")

    def __init__(self, send: Callable[[dict], Awaitable[None]]) -> None:
        self.send = send
        self.sending: asyncio.Task | None = None
        self.waiting: dict | None = None

    def offer(self, message: dict) -> None:
        if self.sending is not None:
            # A slow viewer only ever needs the newest tallies: replace what it has not been sent.
            if self.waiting is not CLOSE:
                self.waiting = message
            return
        self.sending = asyncio.get_running_loop().create_task(self._deliver(message))

    async def _deliver(self, message: dict) -> None:
        try:
            while message is not None:
                await self.send(message)
                message, self.waiting = self.waiting, None
        except Exception:  # the connection went away mid-send: its own task ends the viewer
            pass
        finally:
            self.sending = None


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
        self.message = self._message(self.current)
        self._viewers: set[Viewer] = set()
        self.closing = False
        self._task: asyncio.Task | None = None

    # -- viewers ----------------------------------------------------------------------
    @staticmethod
    def _message(current: dict) -> dict:
        # Encoded once per change, not once per viewer.
        return {"type": "websocket.send", "text": json.dumps(current, separators=(",", ":"))}

    @contextlib.contextmanager
    def viewer(self, send: Callable[[dict], Awaitable[None]]) -> Iterator[Viewer]:
        """Follow the tallies on an accepted websocket for as long as the block runs: the current
        ones now, then each change.

        However the block ends (the viewer leaves mid-send, the task is cancelled, an error), the
        viewer stops receiving, its send in flight is cancelled and it is no longer counted.
        """
        viewer = Viewer(send)
        self._viewers.add(viewer)
        VIEWERS.inc()
        try:
            viewer.offer(CLOSE if self.closing else self.message)
            yield viewer
        finally:
            self._viewers.discard(viewer)
            if viewer.sending is not None:
                viewer.sending.cancel()
            VIEWERS.dec()

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    def _publish(self, counts: dict[str, int] | None = None) -> None:
        if counts is not None:
            self.counts, self.loaded = counts, True
        new = snapshot(self.counts, self.ballot, stale=not self.connected, loaded=self.loaded)
        if new == self.current:
            return
        self.current = new
        self.message = self._message(new)
        UPDATES.inc()
        with self.telemetry.push(self.viewers):
            for viewer in self._viewers:
                viewer.offer(self.message)

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
        for viewer in self._viewers:
            viewer.offer(CLOSE)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.close_viewers()
