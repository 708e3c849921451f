"""Traffic and watchers the drills share: surges and a backlog of votes, websocket viewers, draining."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections.abc import Callable

import redis

from voting_contract.wire import QUEUE
from worker.queue import PROCESSING_PREFIX

from .. import stack
from ..stack import metric  # noqa: F401 (the drills' name for it)
from ..load import VoteStream, push_votes, reasons_text, wait_drained
from ..truth import BALLOT


def surge(client: redis.Redis, voters: int, prefix: str, rng: random.Random) -> tuple[dict[str, str], set[str]]:
    """Votes from new voters pushed the way the vote service pushes them, in one go.

    A vote counts as acknowledged when Redis answered the script, as the vote service answers
    2xx only then. If the pipeline breaks, its voters are unknown: not owed, not extra.
    """
    choices = {f"{prefix}{i}": rng.choice(BALLOT.ids) for i in range(voters)}
    try:
        return push_votes(client, choices.items(), chunk=None), set()
    except redis.RedisError:
        return {}, set(choices)


def missed(stream: VoteStream) -> dict:
    """The votes a stream did not get acknowledged, by reason and one by one, for a row's counts."""
    return {"not_acknowledged": stream.reasons(), "misses": [m.to_json() for m in stream.misses[:100]]}


def missed_text(stream: VoteStream) -> str:
    """For the table: the reasons votes were not acknowledged, grouped, or nothing when all were."""
    return f"; not acked: {reasons_text(stream.misses)}" if stream.misses else ""


def drain(client: redis.Redis, timeout: float, *alive: stack.Service) -> list[str]:
    """Wait for the queue to empty; a problem if it does not or a worker died meanwhile."""
    try:
        wait_drained(client, timeout)
    except TimeoutError as exc:
        return [str(exc)]
    finally:
        dead = [s for s in alive if not s.running()]
    return [f"{s.name} exited with {s.proc.returncode} while draining" for s in dead]


def in_hand(client: redis.Redis, worker_id: str | None = None) -> int:
    """Messages in batch lists (of one worker, or of all): taken from the queue, not yet acknowledged."""
    pattern = f"{PROCESSING_PREFIX}{worker_id}:*" if worker_id else f"{PROCESSING_PREFIX}*"
    return sum(client.llen(k) for k in client.scan_iter(match=pattern, count=100))


class Backlog:
    """Keeps the queue at least `depth` deep with votes from `voters` voters, many changing their minds.

    Pushed as the vote service pushes (the same numbering script); a vote is acknowledged when
    Redis answered. Keeps the workers busy, so that faults land while a batch is in hand.
    """

    def __init__(self, url: str, *, voters: int = 5000, depth: int = 2000, chunk: int = 500, seed: int = 0,
                 prefix: str = "q") -> None:
        self.client = redis.Redis.from_url(url)
        self.voters, self.depth, self.chunk, self.prefix = voters, depth, chunk, prefix
        self.rng = random.Random(seed)
        self.truth: dict[str, str] = {}
        self.uncertain: set[str] = set()
        self.pushed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.client.llen(QUEUE) >= self.depth:
                    time.sleep(0.02)
                    continue
            except redis.RedisError:
                time.sleep(0.05)
                continue
            votes = [(f"{self.prefix}{self.rng.randrange(self.voters)}", self.rng.choice(BALLOT.ids))
                     for _ in range(self.chunk)]
            try:
                self.truth.update(push_votes(self.client, votes, chunk=None))
            except redis.RedisError:
                self.uncertain.update(v for v, _ in votes)
                time.sleep(0.05)
                continue
            self.pushed += len(votes)

    def start(self) -> Backlog:
        self._thread.start()
        return self

    def stop(self) -> Backlog:
        self._stop.set()
        self._thread.join(30)
        self.client.close()
        return self


class Viewers:
    """Websocket viewers of /ws in one asyncio loop on a thread; each keeps the last message it got."""

    def __init__(self, url: str, count: int) -> None:
        self.url, self.count = url, count
        self.last: list[str | None] = [None] * count
        self.connected = 0
        self.closed: list[tuple[int | None, str]] = []
        self.errors: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._tasks: list[asyncio.Future] = []

    async def _view(self, i: int, opened: asyncio.Semaphore) -> None:
        import websockets

        try:
            async with opened:
                ws = await websockets.connect(self.url, open_timeout=30, max_queue=4, ping_interval=None)
            self.connected += 1
            try:
                async for message in ws:
                    self.last[i] = message
            finally:
                await ws.close()
            self.closed.append((ws.close_code, "clean" if ws.close_code in (1000, 1001) else "abnormal"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 (the drill reports whatever broke a viewer)
            self.errors.append(f"{type(exc).__name__}: {exc}")
            self.closed.append((None, type(exc).__name__))

    def start(self, timeout: float = 60.0) -> Viewers:
        self._thread.start()

        async def open_all() -> None:
            opened = asyncio.Semaphore(50)
            self._tasks = [asyncio.ensure_future(self._view(i, opened)) for i in range(self.count)]

        asyncio.run_coroutine_threadsafe(open_all(), self._loop).result(10)
        deadline = time.monotonic() + timeout
        while self.connected + len(self.errors) < self.count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def seeing(self, predicate: Callable[[dict], bool]) -> int:
        return sum(1 for m in list(self.last) if m is not None and predicate(json.loads(m)))

    def stop(self) -> None:
        async def cancel() -> None:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)



def shown_totals(snapshot: dict) -> dict[str, int]:
    """The non-zero totals of a result snapshot (/api/results or a websocket message), by option id."""
    return {o["id"]: o["votes"] for o in snapshot["options"] if o["votes"]}
