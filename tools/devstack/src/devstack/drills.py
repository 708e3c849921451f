"""Reliability and security drills: `make drills` (`python -m devstack.drills [--quick]`).

Each drill is one function that starts real servers and real service processes on 127.0.0.1,
does something unkind to them, compares what it finds with a ground truth, and returns a Row.
The quick forms in tests/drills/ call the same functions with small parameters, so there is
one implementation; `make drills` runs the long forms, prints one line per drill, writes the
rows as JSON under .drills/ and exits non-zero if any drill failed.

A row is a promise (PASS or FAIL) or, where the app makes no promise, a measurement
(MEASURED): losses the dev settings accept, or what a SIGKILL of Redis costs.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import re
import shutil
import socket
import string
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import psycopg
import redis

from voting_contract.schema import ensure_schema
from voting_contract.wire import DEAD_LETTER, QUEUE, Vote, decode, enqueue_script
from worker.queue import PROCESSING_PREFIX

from . import stack
from .load import Comparison, VoteStream, classify, counts, misses_text, reasons_text, wait_drained
from .servers import PostgresServer, RedisServer

REPO = Path(__file__).resolve().parents[4]


# --- results ------------------------------------------------------------------------------------

@dataclass
class Row:
    """One line of the table: what a drill did, the counts it compared, and whether they held."""

    name: str
    did: str
    compared: str
    ok: bool
    measured: bool = False  # a figure reported, not a promise checked
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if not self.ok:
            return "FAIL"
        return "MEASURED" if self.measured else "PASS"

    def to_json(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


def judge(name: str, did: str, compared: str, problems: list[str], counts: dict, *, measured: bool = False) -> Row:
    return Row(name, did, compared, ok=not problems, measured=measured, counts=counts, problems=problems)


# --- the lab: servers and processes, all cleaned up ---------------------------------------------

class Lab:
    """Scratch servers and service processes for drills; everything a drill starts, it stops."""

    def __init__(self, root: Path, postgres: PostgresServer | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # PostgreSQL's unprivileged user must reach its data dir
        self._shared_pg = postgres
        self._own_pg = postgres is None
        self._services: list[stack.Service] = []
        self._redis: list[RedisServer] = []
        self._postgres: list[PostgresServer] = []
        self._count = 0

    def _dir(self, prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(dir=self.root, prefix=prefix))
        path.chmod(0o755)
        return path

    def redis(self, *, appendonly: bool = False, fsync: str | None = None) -> RedisServer:
        server = RedisServer(self._dir("redis-"), appendonly=appendonly).start()
        self._redis.append(server)
        if fsync:
            set_fsync(server, fsync)
        return server

    def postgres(self) -> PostgresServer:
        """The shared PostgreSQL, with the schema and no votes."""
        if self._shared_pg is None:
            self._shared_pg = PostgresServer(self._dir("postgres-shared-")).start()
        with psycopg.connect(self._shared_pg.dsn, autocommit=True) as conn:
            ensure_schema(conn)
            conn.execute("TRUNCATE votes")
        return self._shared_pg

    def own_postgres(self) -> PostgresServer:
        """A PostgreSQL for a drill that stops it."""
        server = PostgresServer(self._dir("postgres-")).start()
        self._postgres.append(server)
        return server

    def launch(self, service: stack.Service, *, ready: bool = True, timeout: float = 30.0) -> stack.Service:
        self._count += 1
        service.log_path = self.root / f"{self._count:03d}-{service.name}.log"
        self._services.append(service.start())
        if ready:
            service.wait_ready(timeout)
        return service

    def cleanup(self) -> None:
        """Kill every process and own server a drill started (the shared PostgreSQL stays)."""
        for service in reversed(self._services):
            service.kill()
        self._services.clear()
        for server in self._redis:
            server.kill()
        self._redis.clear()
        for server in self._postgres:
            server.stop("immediate")
        self._postgres.clear()

    def close(self) -> None:
        self.cleanup()
        if self._own_pg and self._shared_pg is not None:
            self._shared_pg.stop("immediate")
            self._shared_pg = None


@contextlib.contextmanager
def lab_in(root: Path | None = None) -> Iterator[Lab]:
    with tempfile.TemporaryDirectory(prefix="voting-drills-") as tmp:
        lab = Lab(Path(root or tmp))
        try:
            yield lab
        finally:
            lab.close()


# --- small helpers ------------------------------------------------------------------------------

def set_fsync(server: RedisServer, policy: str) -> None:
    """RedisServer starts with appendfsync everysec; prod runs `always` (overlays/prod)."""
    client = redis.Redis.from_url(server.url)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.config_set("appendfsync", policy)
            break
        except redis.ResponseError as exc:  # "LOADING": still replaying the append-only file
            if "loading" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    client.close()


def surge(client: redis.Redis, voters: int, prefix: str, rng: random.Random) -> tuple[dict[str, str], set[str]]:
    """Votes from new voters pushed the way the vote service pushes them, in one go.

    A vote counts as acknowledged when Redis answered the script, as the vote service answers
    2xx only then. If the pipeline breaks, its voters are unknown: not owed, not extra.
    """
    push = enqueue_script(client)
    choices = {f"{prefix}{i}": rng.choice("ab") for i in range(voters)}
    try:
        with client.pipeline(transaction=False) as pipe:
            for voter, choice in choices.items():
                push(Vote(voter, choice, ts=time.time()), client=pipe)
            pipe.execute()
    except redis.RedisError:
        return {}, set(choices)
    return choices, set()


def metric(url: str, name: str) -> float:
    """The sum of every sample of `name` on a Prometheus page."""
    text = httpx.get(url + "/metrics", timeout=5).text
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


def tallies(conn: psycopg.Connection) -> dict[str, int]:
    return {vote: n for vote, n in conn.execute("SELECT vote, n FROM vote_tallies WHERE n <> 0").fetchall()}


def expected_tallies(truth: dict[str, str]) -> dict[str, int]:
    return dict(collections.Counter(truth.values()))


def check_db(dsn: str, truth: dict[str, str], uncertain: set[str] = frozenset(),
             refused: dict[str, set[str]] | None = None) -> tuple[Comparison, dict[str, int], list[str]]:
    """Rows against the truth, and the trigger-kept tallies against what the rows should add up to.

    `uncertain` voters (whose only votes were neither acknowledged nor refused) are left out.
    `refused` holds, per voter, the choices left unconfirmed after their last acknowledged vote:
    a row holding one of those is counted apart (refused_counted), not as an older vote winning.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        if uncertain:
            conn.execute("DELETE FROM votes WHERE id = ANY(%s)", (list(uncertain),))
        rows = dict(conn.execute("SELECT id, vote FROM votes").fetchall())
        counted = tallies(conn)
        bad = conn.execute("SELECT count(*) FROM votes WHERE vote NOT IN ('a', 'b')").fetchone()[0]
    verdicts = classify(rows, truth, refused)
    outcome = counts(verdicts, len(truth))
    lost, extra, wrong = verdicts["lost"], verdicts["extra"], verdicts["wrong"]
    problems = []
    if lost:
        problems.append(f"{len(lost)} acknowledged voters missing (e.g. {', '.join(sorted(lost)[:5])})")
    if extra:
        problems.append(f"{len(extra)} rows nobody acknowledged (e.g. {', '.join(sorted(extra)[:5])})")
    if wrong:
        sample = [f"{v}={rows[v]}, acked {truth[v]}" for v in sorted(wrong)[:3]]
        problems.append(f"{len(wrong)} voters with an older vote winning (e.g. {'; '.join(sample)})")
    if counted != dict(collections.Counter(rows.values())):
        problems.append(f"tallies {counted} != the rows' own count {dict(collections.Counter(rows.values()))}")
    if bad:
        problems.append(f"{bad} rows neither a nor b")
    return outcome, counted, problems


def truth_text(outcome: Comparison, counted: dict[str, int]) -> str:
    text = (f"{outcome.expected} voters' last acked vote vs PostgreSQL: {outcome.lost} lost, {outcome.extra} extra, "
            f"{outcome.wrong} older-vote-won; tallies a={counted.get('a', 0)} b={counted.get('b', 0)}")
    if outcome.refused_counted:
        text += f"; {outcome.refused_counted} unconfirmed votes (503 'could not confirm') counted"
    return text


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


def redis_env(server: RedisServer) -> dict[str, str]:
    return stack.redis_env(server.port)


WORKER_FAST = {"WORKER_HEARTBEAT_SECONDS": "1"}


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
        push = enqueue_script(self.client)
        while not self._stop.is_set():
            try:
                if self.client.llen(QUEUE) >= self.depth:
                    time.sleep(0.02)
                    continue
            except redis.RedisError:
                time.sleep(0.05)
                continue
            votes = [(f"{self.prefix}{self.rng.randrange(self.voters)}", self.rng.choice("ab"))
                     for _ in range(self.chunk)]
            try:
                with self.client.pipeline(transaction=False) as pipe:
                    for voter, choice in votes:
                        push(Vote(voter, choice, ts=time.time()), client=pipe)
                    pipe.execute()
            except redis.RedisError:
                self.uncertain.update(v for v, _ in votes)
                time.sleep(0.05)
                continue
            self.truth.update(votes)
            self.pushed += len(votes)

    def start(self) -> Backlog:
        self._thread.start()
        return self

    def stop(self) -> Backlog:
        self._stop.set()
        self._thread.join(30)
        self.client.close()
        return self


# --- fault drills -------------------------------------------------------------------------------

def worker_kills(lab: Lab, *, workers: int = 1, kills: int = 50, voters: int = 1000, backlog_voters: int = 5000,
                 seed: int = 1) -> Row:
    """SIGKILL a worker at random instants while voters vote; compare PostgreSQL with what was acknowledged."""
    rng = random.Random(seed)
    rs, pg = lab.redis(), lab.postgres()
    client = redis.Redis.from_url(rs.url)
    vote = lab.launch(stack.vote(redis_env(rs), workers=2))
    ids = [f"w{i}-0" for i in range(workers)]
    procs: list[stack.Service] = []
    for worker_id in ids:
        extra = {**WORKER_FAST, "WORKER_ID": worker_id, "WORKER_BATCH_SIZE": "50"}
        procs.append(lab.launch(stack.worker(redis_env(rs), pg.env, extra=extra), ready=False))
    stream = VoteStream(vote.url, voters=voters, threads=3, seed=seed).start()
    backlog = Backlog(rs.url, voters=backlog_voters, seed=seed).start()
    with_batch = 0
    try:
        stream.wait_for(50)
        for k in range(kills):
            time.sleep(rng.uniform(0.4, 1.6))
            slot = rng.randrange(workers)
            with_batch += in_hand(client, ids[slot]) > 0
            procs[slot].kill()
            # Half the time the pod restarts in place (same id), half a new pod replaces it.
            if rng.random() < 0.5:
                ids[slot] = f"w{slot}-{k + 1}"
            extra = {**WORKER_FAST, "WORKER_ID": ids[slot], "WORKER_BATCH_SIZE": "50"}
            procs[slot] = lab.launch(stack.worker(redis_env(rs), pg.env, extra=extra), ready=False)
    finally:
        stream.stop()
        backlog.stop()
    problems = drain(client, 120, *procs)
    truth = {**backlog.truth, **stream.truth}
    outcome, counted, db_problems = check_db(pg.dsn, truth, backlog.uncertain, stream.refused_choices)
    problems += db_problems
    if stream.failed:
        problems.append(f"{stream.failed} vote requests failed: {misses_text(stream.misses)}")
    client.close()
    return judge(
        f"worker SIGKILL x{kills}, {workers} worker{'s' if workers > 1 else ''}",
        f"{stream.acknowledged} votes via HTTP from {voters} voters + {backlog.pushed} queued from {backlog_voters} "
        f"voters (re-votes); {kills} kills, {with_batch} with a batch in hand",
        truth_text(outcome, counted) + missed_text(stream), problems,
        {**missed(stream), "kills": kills, "kills_with_batch_in_hand": with_batch, "acknowledged": stream.acknowledged + backlog.pushed,
         "voters": outcome.expected, "lost": outcome.lost, "extra": outcome.extra, "wrong": outcome.wrong,
         "refused_counted": outcome.refused_counted,
         "tallies": counted},
    )


def redis_restarts(lab: Lab, *, mode: str = "prod", how: str = "sigterm", restarts: int = 5, voters: int = 1000,
                   surge_votes: int = 5000, worker_down: bool = False, seed: int = 2) -> Row:
    """Restart Redis mid-stream; prod (append-only, fsync always) must keep every acknowledged vote.

    mode "prod" runs Redis as overlays/prod does; "dev" as base/redis does (no persistence).
    how "sigterm" is a graceful restart (what Kubernetes does); "sigkill" a crash.
    worker_down: the worker is stopped across each restart, so the surge is all still queued.
    """
    prod = mode == "prod"
    rs = lab.redis(appendonly=prod, fsync="always" if prod else None)
    pg = lab.postgres()
    client = redis.Redis.from_url(rs.url)
    vote = lab.launch(stack.vote(redis_env(rs), workers=2))
    worker = lab.launch(stack.worker(redis_env(rs), pg.env, extra=WORKER_FAST))
    stream = VoteStream(vote.url, voters=voters, threads=3, seed=seed).start()
    depth_at_restart = 0
    rng = random.Random(seed)
    truth: dict[str, str] = {}
    uncertain: set[str] = set()
    try:
        for n in range(restarts):
            stream.wait_for(stream.acknowledged + 150, timeout=60)
            # A surge of new voters just before the restart, so that some are still queued.
            if worker_down:
                worker.stop()
            acked, unknown = surge(client, surge_votes, f"s{n}-", rng)
            truth.update(acked)
            uncertain |= unknown
            depth_at_restart += client.llen(QUEUE) + in_hand(client)
            rs.kill() if how == "sigkill" else rs.stop()
            rs.start()
            if prod:
                set_fsync(rs, "always")
            if worker_down:
                worker = lab.launch(stack.worker(redis_env(rs), pg.env, extra=WORKER_FAST))
        stream.wait_for(stream.acknowledged + 150, timeout=60)
    finally:
        stream.stop()
    problems = drain(client, 60, worker)
    truth.update(stream.truth)
    outcome, counted, db_problems = check_db(pg.dsn, truth, uncertain, stream.refused_choices)
    lost = outcome.lost + outcome.wrong
    settings = "append-only, appendfsync always (prod)" if prod else "no persistence (dev)"
    acked = stream.acknowledged + len(truth) - len(stream.truth)
    counts = {"restarts": restarts, "worker_down": worker_down, "acknowledged": acked, "acknowledged_http": stream.acknowledged,
              "acknowledged_surge": len(truth) - len(stream.truth), "surge_unknown": len(uncertain),
              "refused_503": stream.refused, "unconfirmed_503": stream.unconfirmed,
              "failed": stream.failed, "queued_at_restarts": depth_at_restart, "voters": outcome.expected,
              "lost": outcome.lost, "extra": outcome.extra, "wrong": outcome.wrong,
         "refused_counted": outcome.refused_counted, "tallies": counted,
              "lost_detail": [p for p in db_problems if "missing" in p or "older vote" in p], **missed(stream)}
    measured = not (prod and how == "sigterm")
    if measured:
        # No promise here: report the loss; only double counting and broken tallies fail.
        problems += [p for p in db_problems if "missing" not in p and "older vote" not in p]
    else:
        problems += db_problems
    if stream.failed:
        problems.append(f"{stream.failed} vote requests failed with neither 2xx nor a clear 503: "
                        f"{misses_text(stream.misses)}")
    client.close()
    return judge(
        f"Redis {how.upper()} restart x{restarts}, {mode}{', worker down' if worker_down else ''}",
        f"{settings}; {acked} acked ({stream.acknowledged} via HTTP, the rest in surges of {surge_votes} new voters "
        f"just before each restart), {stream.refused} refused (503, {stream.unconfirmed} 'could not confirm'); "
        f"{depth_at_restart} queued at the restarts",
        f"{truth_text(outcome, counted)}; acked votes lost: {lost}{missed_text(stream)}",
        problems, counts, measured=measured,
    )


def postgres_outage(lab: Lab, *, outage: float = 30.0, voters: int = 500, seed: int = 3) -> Row:
    """Stop PostgreSQL under load; votes keep coming, the queue grows, the result page says so, then all drains."""
    rs, pg = lab.redis(), lab.own_postgres()
    client = redis.Redis.from_url(rs.url)
    vote = lab.launch(stack.vote(redis_env(rs), workers=2))
    worker = lab.launch(stack.worker(redis_env(rs), pg.env, extra=WORKER_FAST))
    result = lab.launch(stack.result(pg.env, extra={"RESULT_RECHECK_SECONDS": "2"}))
    stream = VoteStream(vote.url, voters=voters, threads=3, seed=seed).start()
    problems: list[str] = []
    peak = 0
    said_reconnecting = False
    try:
        stream.wait_for(100)
        outage_at = stream.since_start()
        pg.stop()
        acked_before = stream.acknowledged
        started = time.monotonic()
        while time.monotonic() - started < outage:
            peak = max(peak, client.llen(QUEUE))
            page = httpx.get(result.url + "/", timeout=5).text
            api = httpx.get(result.url + "/api/results", timeout=5).json()
            if api["stale"] and "Reconnecting" in page and re.search(r'id="connection"[^>]*hidden', page) is None:
                said_reconnecting = True
            time.sleep(0.25)
        acked_during = stream.acknowledged - acked_before
        worker_ready_during = stack.http_status(worker.url + "/readyz")
        result_ready_during = stack.http_status(result.url + "/readyz")
        pg.start()
        back_at = stream.since_start()
        stream.wait_for(stream.acknowledged + 100)
    finally:
        stream.stop()
    problems += drain(client, 120, worker)
    outcome, counted, db_problems = check_db(pg.dsn, stream.truth, refused=stream.refused_choices)
    problems += db_problems
    want = expected_tallies(stream.truth)
    shown: dict = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        shown = httpx.get(result.url + "/api/results", timeout=5).json()
        if not shown["stale"] and {o["id"]: o["votes"] for o in shown["options"] if o["votes"]} == want:
            break
        time.sleep(0.2)
    else:
        problems.append(f"result page shows {shown.get('options')} stale={shown.get('stale')}, truth {want}")
    if acked_during == 0:
        problems.append("the vote service accepted nothing while PostgreSQL was down")
    if peak == 0:
        problems.append("the queue never grew")
    if not said_reconnecting:
        problems.append("the result page never said it was reconnecting")
    if worker_ready_during != 503:
        problems.append(f"worker /readyz answered {worker_ready_during} during the outage, not 503")
    if result_ready_during != 200:
        problems.append(f"result /readyz answered {result_ready_during} during the outage, not 200")
    if stream.failed or stream.refused:
        problems.append(f"{stream.failed + stream.refused} votes refused or failed: {misses_text(stream.misses)} "
                        f"(outage from {outage_at:.1f}s to {back_at:.1f}s of the stream)")
    client.close()
    return judge(
        f"PostgreSQL down {outage:g}s",
        f"{acked_during} votes acked during the outage, queue peaked at {peak}; result said reconnecting: "
        f"{'yes' if said_reconnecting else 'no'}",
        f"{truth_text(outcome, counted)}; result page totals {'match' if not problems else 'checked'}"
        f"{missed_text(stream)}",
        problems,
        {**missed(stream), "outage_from": outage_at, "outage_until": back_at, "outage_seconds": outage,
         "acked_during_outage": acked_during, "queue_peak": peak, "result_ready_during": result_ready_during,
         "said_reconnecting": said_reconnecting, "acknowledged": stream.acknowledged, "voters": outcome.expected,
         "lost": outcome.lost, "extra": outcome.extra, "wrong": outcome.wrong,
         "refused_counted": outcome.refused_counted, "tallies": counted},
    )


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


def websocket_viewers(lab: Lab, *, viewers: int = 500, phase: float = 20.0, voters: int = 500, seed: int = 4) -> Row:
    """Many viewers on one result process: tally reads follow changes, not viewers; all see the final totals."""
    rs, pg = lab.redis(), lab.postgres()
    client = redis.Redis.from_url(rs.url)
    vote = lab.launch(stack.vote(redis_env(rs), workers=2))
    worker = lab.launch(stack.worker(redis_env(rs), pg.env, extra=WORKER_FAST))
    recheck = 5.0
    result = lab.launch(stack.result(pg.env, extra={"HTTP_WORKERS": "1", "RESULT_RECHECK_SECONDS": str(recheck)}))
    ws_url = f"ws://127.0.0.1:{result.port}/ws"
    stream = VoteStream(vote.url, voters=voters, threads=2, seed=seed).start()
    phases = []
    crowd = Viewers(ws_url, viewers)
    one = Viewers(ws_url, 1)
    problems: list[str] = []
    try:
        stream.wait_for(50)
        for crowd_size, group in ((1, one), (viewers, crowd)):
            group.start()
            q0, b0, v0, t0 = (metric(result.url, "result_db_queries_total"),
                              metric(worker.url, "worker_batch_size_count"), stream.acknowledged, time.monotonic())
            time.sleep(phase)
            q1, b1, v1, t1 = (metric(result.url, "result_db_queries_total"),
                              metric(worker.url, "worker_batch_size_count"), stream.acknowledged, time.monotonic())
            seconds = t1 - t0
            phases.append({"viewers": crowd_size, "seconds": round(seconds, 1), "reads": q1 - q0,
                           "reads_per_s": round((q1 - q0) / seconds, 2), "batches": b1 - b0,
                           "reads_per_batch": round((q1 - q0) / max(b1 - b0, 1), 2),
                           "votes_per_s": round((v1 - v0) / seconds, 1)})
            # Reads follow tally changes (at most one per committed batch) and the periodic recheck,
            # whatever the number of viewers; a read per viewer would be hundreds per change.
            bound = (b1 - b0) + seconds / recheck + 2
            if q1 - q0 > bound:
                problems.append(f"{q1 - q0:g} reads with {crowd_size} viewers > {bound:.0f} (batches + rechecks)")
    finally:
        stream.stop()
    problems += drain(client, 60, worker)
    outcome, counted, db_problems = check_db(pg.dsn, stream.truth, refused=stream.refused_choices)
    problems += db_problems
    want = expected_tallies(stream.truth)

    def final(snapshot: dict) -> bool:
        return not snapshot["stale"] and {o["id"]: o["votes"] for o in snapshot["options"] if o["votes"]} == want

    deadline = time.monotonic() + 60
    while crowd.seeing(final) < viewers and time.monotonic() < deadline:
        time.sleep(0.2)
    saw_final = crowd.seeing(final)
    connected = crowd.connected
    crowd.stop()
    one.stop()
    if connected < viewers:
        problems.append(f"only {connected} of {viewers} viewers connected: {crowd.errors[:3]}")
    if saw_final < viewers:
        problems.append(f"only {saw_final} of {viewers} viewers saw the final totals {want}")
    client.close()
    base, many = phases if len(phases) == 2 else ({}, {})
    return judge(
        f"{viewers} websocket viewers",
        f"{phase:g}s with 1 viewer then {phase:g}s with {viewers}, votes flowing "
        f"({base.get('votes_per_s')}/s, {many.get('votes_per_s')}/s)",
        f"DB reads/s {base.get('reads_per_s')} -> {many.get('reads_per_s')}, per committed batch "
        f"{base.get('reads_per_batch')} -> {many.get('reads_per_batch')} (1 -> {viewers} viewers); "
        f"{saw_final}/{viewers} viewers saw final totals a={want.get('a', 0)} "
        f"b={want.get('b', 0)}; {truth_text(outcome, counted)}{missed_text(stream)}",
        problems,
        {**missed(stream), "viewers": viewers, "connected": connected, "saw_final": saw_final, "phases": phases,
         "acknowledged": stream.acknowledged, "voters": outcome.expected, "lost": outcome.lost,
         "extra": outcome.extra, "wrong": outcome.wrong, "tallies": counted},
    )


# --- graceful rollout ---------------------------------------------------------------------------

@dataclass
class Call:
    started: float
    ended: float
    status: int | None
    error: str | None = None


class TimedLoad:
    """Clients on keep-alive connections that record when each request started and ended, and how."""

    def __init__(self, send: Callable[[httpx.Client, random.Random], int], url: str, threads: int = 4,
                 seed: int = 5) -> None:
        self.send, self.url, self.threads, self.seed = send, url, threads, seed
        self.calls: list[Call] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _run(self, index: int) -> None:
        rng = random.Random(self.seed * 100 + index)
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    status, error = self.send(client, rng), None
                except httpx.HTTPError as exc:
                    status, error = None, type(exc).__name__
                call = Call(started, time.monotonic(), status, error)
                with self._lock:
                    self.calls.append(call)
                if error:
                    time.sleep(0.02)

    def start(self) -> TimedLoad:
        for i in range(self.threads):
            thread = threading.Thread(target=self._run, args=(i,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> TimedLoad:
        self._stop.set()
        for thread in self._threads:
            thread.join(40)
        return self

    def split(self, at: float) -> tuple[list[Call], list[Call]]:
        """Requests in flight at `at` (started before, answered after), and new requests after it.

        A request whose connection was refused never reached the server, so it was not in flight
        even if the client began it just before `at`: it counts with the new requests.
        """
        with self._lock:
            calls = list(self.calls)
        never_connected = {id(c) for c in calls if c.error == "ConnectError"}
        in_flight = [c for c in calls if c.started < at < c.ended and id(c) not in never_connected]
        after = [c for c in calls if c.started >= at or (c.ended > at and id(c) in never_connected)]
        return in_flight, after


def ok(call: Call) -> bool:
    return call.status is not None and 200 <= call.status < 300


def slow_post(port: int, choice: str) -> socket.socket:
    """A vote whose body is only half sent: the server is reading it when we look away."""
    body = f"vote={choice}".encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    sock.sendall(head + body[:3])
    return sock


def finish_slow_post(sock: socket.socket, choice: str) -> tuple[int | None, str | None]:
    """Send the rest of the body; the status and the voter id the service assigned."""
    try:
        sock.sendall(f"vote={choice}".encode()[3:])
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    except OSError:
        return None, None
    finally:
        sock.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status = re.match(r"HTTP/1\.[01] (\d{3})", head)
    voter = re.search(r"(?im)^set-cookie: voter_id=([0-9a-f]{32})", head)
    return (int(status.group(1)) if status else None), (voter.group(1) if voter else None)


def rollout_worker(lab: Lab, *, backlog: int = 20_000, seed: int = 6) -> Row:
    """SIGTERM the worker with a batch in hand: it writes the batch, acknowledges it and exits 0."""
    rng = random.Random(seed)
    rs, pg = lab.redis(), lab.postgres()
    client = redis.Redis.from_url(rs.url)
    worker = lab.launch(stack.worker(redis_env(rs), pg.env, extra={**WORKER_FAST, "WORKER_BATCH_SIZE": "2000"}))
    truth, _ = surge(client, backlog, "r", rng)
    while not (held := in_hand(client)):
        time.sleep(0.002)
    sigterm_at = time.monotonic()
    code = worker.stop(timeout=15)
    took = time.monotonic() - sigterm_at
    left = in_hand(client)
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        written = conn.execute("SELECT count(*) FROM votes").fetchone()[0]
    queued = client.llen(QUEUE)
    problems = []
    if code != 0:
        problems.append(f"worker exited {code} on SIGTERM")
    if left:
        problems.append(f"worker left {left} messages in hand")
    if written + queued != backlog:
        problems.append(f"{written} written + {queued} queued != {backlog}")
    successor = lab.launch(stack.worker(redis_env(rs), pg.env, extra=WORKER_FAST))
    problems += drain(client, 60, successor)
    outcome, counted, db_problems = check_db(pg.dsn, truth)
    problems += db_problems
    client.close()
    return judge(
        "rollout: worker SIGTERM mid-batch",
        f"{backlog} votes queued, batches of 2000; SIGTERM with {held} in hand; a successor drains the rest",
        f"exit {code} after {took:.1f}s, {left} left in hand, {written} written + {queued} queued = "
        f"{written + queued}/{backlog}; {truth_text(outcome, counted)}",
        problems, {"in_hand_at_sigterm": held, "exit": code, "seconds": round(took, 2), "left_in_hand": left,
                   "written": written,
                   "queued": queued, "lost": outcome.lost, "extra": outcome.extra, "wrong": outcome.wrong,
         "refused_counted": outcome.refused_counted},
    )


def rollout_vote(lab: Lab, *, slow: int = 6, voters: int = 300, seed: int = 7) -> Row:
    """SIGTERM vote under load: requests in flight complete with 2xx and count; new ones are refused."""
    rng = random.Random(seed)
    rs, pg = lab.redis(), lab.postgres()
    client = redis.Redis.from_url(rs.url)
    vote = lab.launch(stack.vote(redis_env(rs), workers=2))
    worker = lab.launch(stack.worker(redis_env(rs), pg.env, extra=WORKER_FAST))
    stream = VoteStream(vote.url, voters=voters, threads=3, seed=seed).start()
    truth: dict[str, str] = {}
    try:
        stream.wait_for(100)
        choices = [rng.choice("ab") for _ in range(slow)]
        pending = [slow_post(vote.port, c) for c in choices]
        time.sleep(0.5)  # the service has accepted them and is reading their bodies
        failed_before = stream.failed + stream.refused
        acked_before = stream.acknowledged
        vote.proc.send_signal(15)
        sigterm_at = time.monotonic()
        time.sleep(0.5)
        answered = [finish_slow_post(sock, c) for sock, c in zip(pending, choices)]
        code = vote.proc.wait(25)
        took = time.monotonic() - sigterm_at
        acked_after = stream.acknowledged - acked_before
        refused_after = stream.failed + stream.refused - failed_before
        replacement = lab.launch(stack.vote(redis_env(rs), port=vote.port, workers=2))
        stream.wait_for(stream.acknowledged + 100)
    finally:
        stream.stop()
    in_flight_ok = 0
    for (status, voter_id), choice in zip(answered, choices):
        if status is not None and 200 <= status < 300 and voter_id:
            in_flight_ok += 1
            truth[voter_id] = choice
    truth.update(stream.truth)
    problems = drain(client, 60, worker)
    outcome, counted, db_problems = check_db(pg.dsn, truth, refused=stream.refused_choices)
    problems += db_problems
    if in_flight_ok != slow:
        problems.append(f"only {in_flight_ok} of {slow} requests in flight at SIGTERM got a 2xx: {answered}")
    if code != 0:
        problems.append(f"vote exited {code}")
    if not replacement.running():
        problems.append("the replacement vote service died")
    client.close()
    return judge(
        "rollout: vote SIGTERM under load",
        f"{voters} voters voting; {slow} POSTs mid-body at SIGTERM; replaced on the same port after exit",
        f"in flight: {in_flight_ok}/{slow} 2xx and counted; exit {code} after {took:.1f}s; after SIGTERM "
        f"{acked_after} more acked on open connections, {refused_after} new refused (Kubernetes sends none); "
        f"{truth_text(outcome, counted)}{missed_text(stream)}",
        problems, {**missed(stream), "in_flight": slow, "in_flight_2xx": in_flight_ok, "exit": code, "seconds": round(took, 2),
                   "acked_after_sigterm": acked_after, "refused_after_sigterm": refused_after,
                   "lost": outcome.lost, "extra": outcome.extra, "wrong": outcome.wrong,
         "refused_counted": outcome.refused_counted},
    )


def _result_under_sigterm(lab: Lab, viewers: int) -> tuple[dict, Viewers, TimedLoad, float, int, float]:
    pg = lab.postgres()
    result = lab.launch(stack.result(pg.env))
    crowd = Viewers(f"ws://127.0.0.1:{result.port}/ws", viewers).start()
    load = TimedLoad(lambda c, r: c.get(r.choice(["/", "/api/results"])).status_code, result.url, threads=4).start()
    time.sleep(1.0)
    result.proc.send_signal(15)
    sigterm_at = time.monotonic()
    code = result.proc.wait(25)
    took = time.monotonic() - sigterm_at
    time.sleep(0.2)
    load.stop()
    closes = dict(collections.Counter(kind for _, kind in crowd.closed))
    crowd.stop()
    return closes, crowd, load, sigterm_at, code, took


def rollout_result(lab: Lab, *, viewers: int = 20) -> Row:
    """SIGTERM result while pages are read and viewers watch: HTTP requests in flight complete."""
    closes, crowd, load, sigterm_at, code, took = _result_under_sigterm(lab, viewers)
    in_flight, after = load.split(sigterm_at)
    failed = [c for c in in_flight if not ok(c)]
    refused = sum(1 for c in after if not ok(c))
    problems = []
    if failed:
        problems.append(f"{len(failed)} requests in flight at SIGTERM failed: "
                        f"{collections.Counter(c.error or c.status for c in failed)}")
    if code != 0:
        problems.append(f"result exited {code}")
    before = sum(1 for c in load.calls if c.ended < sigterm_at)
    return judge(
        "rollout: result SIGTERM (HTTP)",
        f"4 clients reading / and /api/results ({before} requests before SIGTERM), {viewers} websocket viewers",
        f"in flight at SIGTERM: {len(in_flight) - len(failed)}/{len(in_flight)} 2xx; exit {code} after {took:.1f}s; "
        f"{refused}/{len(after)} new requests refused after SIGTERM",
        problems, {"in_flight": len(in_flight), "in_flight_failed": len(failed), "exit": code,
                   "seconds": round(took, 2), "after": len(after), "refused_after": refused,
                   "viewer_closes": closes},
    )


def rollout_result_viewers(lab: Lab, *, viewers: int = 20) -> Row:
    """SIGTERM result with viewers: each websocket gets a close frame and the process exits without waiting out the grace."""
    closes, crowd, load, sigterm_at, code, took = _result_under_sigterm(lab, viewers)
    problems = []
    if closes.get("clean", 0) != viewers:
        problems.append(f"websocket viewers at SIGTERM ended {closes}, not all with a close frame")
    if took >= 19.5:
        problems.append(f"exit took {took:.1f}s: the full graceful_timeout, waiting on the websockets")
    return judge(
        "rollout: result SIGTERM (websockets)",
        f"{viewers} websocket viewers connected at SIGTERM",
        f"viewer endings {closes}; exit {code} after {took:.1f}s",
        problems, {"viewers": viewers, "endings": closes, "exit": code, "seconds": round(took, 2)},
    )


# --- bad input ----------------------------------------------------------------------------------

HOSTILE = [
    "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "'; DROP TABLE votes; --", "a' OR '1'='1",
    "$$; SELECT pg_sleep(10); $$", "\\x00", "%00", "../../etc/passwd", "{{7*7}}", "${jndi:ldap://x}", "🗳️",
    "\u202e", "a" * 300, "",
]


def random_text(rng: random.Random, n: int) -> str:
    alphabet = string.printable + "äé中🙂\u0000\u202e<>'\";&%$"
    return "".join(rng.choice(alphabet) for _ in range(n))


def hostile_request(rng: random.Random) -> dict:
    """A request someone might send the vote service on purpose: any method, body, cookie or header."""
    kind = rng.randrange(8)
    headers: dict[str, str] = {}
    cookies = {}
    if rng.random() < 0.6:
        cookies["voter_id"] = rng.choice([*HOSTILE, random_text(rng, rng.randrange(60)), "0" * 32, "A" * 32])
    if rng.random() < 0.3:
        cookies["vote"] = rng.choice([*HOSTILE, "a", "b", "c"])
    if kind == 0:
        return {"method": "POST", "url": "/", "data": {"vote": rng.choice(HOSTILE + ["a", "b", "A", " a"])},
                "cookies": cookies}
    if kind == 1:
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 6000)))
        headers["Content-Type"] = rng.choice(["application/x-www-form-urlencoded", "multipart/form-data",
                                              "multipart/form-data; boundary=x", "application/json", "text/plain"])
        return {"method": "POST", "url": "/", "content": body, "headers": headers, "cookies": cookies}
    if kind == 2:
        fields = {random_text(rng, rng.randrange(1, 20)): random_text(rng, rng.randrange(50)) for _ in range(5)}
        fields["vote"] = rng.choice(["a", "b", random_text(rng, 3)])
        return {"method": "POST", "url": "/", "data": fields, "cookies": cookies}
    if kind == 3:
        return {"method": "POST", "url": "/", "files": {"vote": ("v.txt", b"a")}, "cookies": cookies}
    if kind == 4:
        headers["X-Big"] = "x" * rng.choice([100, 8000, 9000, 20000, 70000])
        return {"method": "POST", "url": "/", "data": {"vote": "a"}, "headers": headers, "cookies": cookies}
    if kind == 5:
        return {"method": rng.choice(["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "HEAD"]), "url": "/",
                "cookies": cookies}
    if kind == 6:
        path = "/" + "".join(rng.choice(string.ascii_letters + "%./<>'\"") for _ in range(rng.randrange(1, 80)))
        return {"method": rng.choice(["GET", "POST"]), "url": path, "cookies": cookies}
    return {"method": "GET", "url": "/", "cookies": cookies,
            "headers": {"X-Forwarded-Proto": rng.choice(["https", "<script>", "gopher"])}}


def cross_site_headers(rng: random.Random, port: int) -> dict[str, str]:
    """What a browser sends when a page elsewhere posts a form to the ballot at 127.0.0.1:port."""
    other = rng.choice(["https://evil.example", f"http://127.0.0.1:{port + 1}", f"https://127.0.0.1:{port}",
                        f"http://localhost:{port}", "null"])
    if other != "null" and rng.random() < 0.3:
        return {"Referer": f"{other}/page.html"}  # an old browser: no Origin, only a Referer
    return {"Origin": other}


def cross_site_posts(url: str, port: int, client: redis.Redis, count: int, rng: random.Random) -> tuple[dict, int, int]:
    """Valid votes posted from other sites' pages: answers by status, how many said why, votes queued."""
    statuses: collections.Counter = collections.Counter()
    said_why = 0
    before = client.llen(QUEUE)
    with httpx.Client(base_url=url, timeout=10) as http:
        for _ in range(count):
            response = http.post("/", data={"vote": rng.choice("ab")}, headers=cross_site_headers(rng, port))
            statuses[response.status_code] += 1
            said_why += "came from another site" in response.text
    return dict(statuses), said_why, client.llen(QUEUE) - before


def bad_http_input(lab: Lab, *, requests: int = 2000, seed: int = 7) -> Row:
    """Hostile requests to the live vote service: always a clear answer below 500, nothing unexpected queued."""
    rng = random.Random(seed)
    rs = lab.redis()
    client = redis.Redis.from_url(rs.url)
    vote = lab.launch(stack.vote(redis_env(rs), workers=2))
    statuses: collections.Counter = collections.Counter()
    problems: list[str] = []
    reflected = unsendable = 0
    with httpx.Client(base_url=vote.url, timeout=10) as http:
        for _ in range(requests):
            spec = hostile_request(rng)
            cookies = spec.pop("cookies")
            http.cookies.clear()
            if cookies:
                raw = "; ".join(f"{k}={v}" for k, v in cookies.items())
                spec.setdefault("headers", {})["Cookie"] = raw.encode("utf-8", "surrogatepass")
            try:
                response = http.request(**spec)
            except httpx.LocalProtocolError:
                unsendable += 1  # httpx itself refuses (a newline or NUL in a header): never reaches the server
                continue
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
                continue
            statuses[response.status_code] += 1
            text = response.text
            reflected += sum(1 for h in HOSTILE[:2] if h in text)
    cross = max(requests // 10, 20)
    cross_statuses, said_why, cross_queued = cross_site_posts(vote.url, vote.port, client, cross, rng)
    messages = [decode(m) for m in client.lrange(QUEUE, 0, -1)]
    off_ballot = [m for m in messages if m.vote not in ("a", "b") or not re.fullmatch(r"[0-9a-f]{32}", m.voter_id)]
    alive = vote.running() and stack.http_status(vote.url + "/healthz") == 200
    log = vote.log_path.read_text(errors="replace") if vote.log_path else ""
    worker_restarts = len(re.findall(r"Booting worker", log)) - 2
    five = {s: n for s, n in statuses.items() if not isinstance(s, int) or s >= 500}
    if five:
        problems.append(f"answers that are not a clear 2xx-4xx: {five}")
    if off_ballot:
        problems.append(f"{len(off_ballot)} queued messages with an off-ballot vote or a foreign voter id")
    if reflected:
        problems.append(f"{reflected} pages reflected hostile text unescaped")
    if cross_statuses != {403: cross} or said_why != cross or cross_queued:
        problems.append(f"cross-site votes: answers {cross_statuses}, {said_why}/{cross} said why, "
                        f"{cross_queued} queued (want all 403, none queued)")
    if not alive or worker_restarts > 0:
        problems.append(f"vote service alive={alive}, gunicorn workers restarted {worker_restarts} times")
    client.close()
    return judge(
        f"bad HTTP input x{requests}",
        f"{requests} random hostile requests to POST / and friends (bytes, forms, multipart, cookies, 8-70 KB "
        f"headers, odd methods and paths), then {cross} valid votes posted from other sites' pages",
        f"statuses {dict(sorted(statuses.items(), key=str))} ({unsendable} unsendable); {len(messages)} votes "
        f"queued, {len(off_ballot)} off-ballot; {reflected} unescaped reflections; cross-site: "
        f"{cross_statuses.get(403, 0)}/{cross} refused 403, {cross_queued} queued",
        problems, {"cross_site": cross, "cross_site_statuses": {str(k): v for k, v in cross_statuses.items()},
                   "cross_site_queued": cross_queued, "statuses": {str(k): v for k, v in statuses.items()}, "unsendable": unsendable,
                   "queued": len(messages),
                   "off_ballot": len(off_ballot), "reflected": reflected},
    )


def hostile_message(rng: random.Random) -> bytes:
    """A queue message anyone with Redis access might push: any bytes, any JSON."""
    kind = rng.randrange(7)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 1200)))
    if kind == 1:
        return random_text(rng, rng.randrange(0, 200)).encode("utf-8", "surrogatepass")
    body: dict = {"voter_id": rng.choice([*HOSTILE, f"m{rng.randrange(10**6)}", None, 7, ["x"], {"a": 1}]),
                  "vote": rng.choice(["a", "b", "c", "", None, 1, ["a"], "A", "<script>"])}
    if kind == 2:
        body["seq"] = rng.choice([-1, 0, 2**63, 2**64, 1.5, "1", True, None, 10 ** rng.randrange(1, 30)])
    if kind == 3:
        # A well-formed vote with one hostile number, e.g. an integer too large for a float.
        body = {"voter_id": f"n{rng.randrange(10**6)}", "vote": rng.choice("ab")}
        field_ = rng.choice(["ts", "seq"])
        if rng.random() < 0.5:
            body[field_] = rng.choice([1, -1]) * 10 ** rng.randrange(300, 400)
        else:
            body[field_] = rng.choice([1e308, -1, 2**63, 0.5, "now", True, None, [], {}])
    if kind == 4:
        body = rng.choice([[], "x", 1, None, [body], {"nested": body}])
    if kind == 5:
        return b"[" * rng.randrange(1, 600) + b"]" * rng.randrange(0, 600)
    return json.dumps(body).encode()


def bad_queue_input(lab: Lab, *, messages: int = 2000, seed: int = 8) -> Row:
    """Hostile messages on the Redis list: each becomes a row or a dead letter; the worker never dies."""
    rng = random.Random(seed)
    rs, pg = lab.redis(), lab.postgres()
    client = redis.Redis.from_url(rs.url)
    worker = lab.launch(stack.worker(redis_env(rs), pg.env, extra={**WORKER_FAST, "WORKER_ID": "bad-input"}))
    raw = [hostile_message(rng) for _ in range(messages)]
    # Interleave good votes, so a poison message cannot hide behind an idle worker.
    truth: dict[str, str] = {}
    batch = []
    for i, message in enumerate(raw):
        batch.append(message)
        voter, choice = f"good{i}", rng.choice("ab")
        batch.append(json.dumps({"voter_id": voter, "vote": choice}).encode())
        truth[voter] = choice
    client.rpush(QUEUE, *batch)
    problems = drain(client, 60, worker)
    dead = client.llen(DEAD_LETTER)
    reasons = collections.Counter(json.loads(m)["reason"] for m in client.lrange(DEAD_LETTER, 0, -1))
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        rows = dict(conn.execute("SELECT id, vote FROM votes").fetchall())
        bad_rows = conn.execute("SELECT count(*) FROM votes WHERE vote NOT IN ('a', 'b')").fetchone()[0]
    good_lost = sum(1 for v, c in truth.items() if rows.get(v) != c)
    accounted = dead + int(metric(worker.url, "worker_votes_processed_total")) if worker.running() else dead
    if not worker.running():
        problems.append(f"the worker died (exit {worker.proc.returncode}); its log ends: "
                        f"{worker.log_path.read_text(errors='replace').strip().splitlines()[-1][:200]}")
    if bad_rows:
        problems.append(f"{bad_rows} rows that are neither a nor b")
    if good_lost:
        problems.append(f"{good_lost} good votes between the bad ones not counted")
    if worker.running() and accounted != len(batch):
        problems.append(f"{accounted} messages accounted for (rows + dead letters), {len(batch)} sent")
    client.close()
    return judge(
        f"bad queue messages x{messages}",
        f"{messages} random hostile messages (bytes, JSON of every shape, huge numbers) between {messages} good votes",
        f"{dead} dead letters {dict(reasons.most_common(6))}; {len(rows)} rows, {bad_rows} not a/b; "
        f"{good_lost} good votes lost; worker alive: {'yes' if worker.running() else 'NO'}",
        problems, {"sent": len(batch), "dead_letters": dead, "reasons": dict(reasons), "rows": len(rows),
                   "bad_rows": bad_rows, "good_lost": good_lost, "worker_alive": worker.running()},
    )


def hostile_values(lab: Lab) -> Row:
    """HTML, script and SQL in labels, cookies and voter ids: escaped in pages, parameters in SQL."""
    rs, pg = lab.redis(), lab.postgres()
    client = redis.Redis.from_url(rs.url)
    labels = {"OPTION_A": "<script>alert('a')</script>", "OPTION_B": "\"><img src=x onerror=alert(1)>&amp;"}
    vote = lab.launch(stack.vote(redis_env(rs), extra=labels))
    worker = lab.launch(stack.worker(redis_env(rs), pg.env, extra=WORKER_FAST))
    result = lab.launch(stack.result(pg.env, extra=labels))
    problems: list[str] = []
    pages = {
        "vote GET /": httpx.get(vote.url + "/"),
        "vote POST / (bad choice)": httpx.post(vote.url + "/", data={"vote": "<script>x</script>"}),
        "vote 404": httpx.get(vote.url + "/<script>alert(1)</script>"),
        "result GET /": httpx.get(result.url + "/"),
    }
    for where, response in pages.items():
        for value in labels.values():
            if value in response.text:
                problems.append(f"{where}: label {value!r} appears unescaped")
        if "<script>alert" in response.text or "<script>x" in response.text:
            problems.append(f"{where}: a script tag from input appears in the page")
    escaped = all("&lt;script&gt;" in pages[p].text for p in ("vote GET /", "result GET /"))
    if not escaped:
        problems.append("the labels do not appear escaped on the ballot and the results")
    api = httpx.get(result.url + "/api/results").json()
    if [o["label"] for o in api["options"]] != list(labels.values()):
        problems.append(f"/api/results labels {[o['label'] for o in api['options']]} are not the configured text")
    # A hostile voter_id cookie is never used: the service gives that browser a fresh id.
    cookie_ids = ["'; DROP TABLE votes; --", "<script>alert(1)</script>", "x" * 5000]
    foreign = 0
    for value in cookie_ids:
        response = httpx.post(vote.url + "/", data={"vote": "a"}, cookies={"voter_id": value})
        fresh = re.search(r"voter_id=([0-9a-f]{32})", response.headers.get("set-cookie", ""))
        if response.status_code != 200 or not fresh or value in response.text:
            foreign += 1
    if foreign:
        problems.append(f"{foreign} hostile voter_id cookies were not replaced by a fresh id")
    # Voter ids with SQL and HTML straight onto the queue: stored verbatim, so only ever parameters.
    sql_ids = [h for h in HOSTILE if h and len(h) <= 255 and h.isprintable()]
    client.rpush(QUEUE, *[json.dumps({"voter_id": v, "vote": "b"}) for v in sql_ids])
    problems += drain(client, 30, worker)
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        stored = {r[0] for r in conn.execute("SELECT id FROM votes").fetchall()}
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    verbatim = sum(1 for v in sql_ids if v in stored)
    if verbatim != len(sql_ids):
        problems.append(f"only {verbatim} of {len(sql_ids)} hostile voter ids stored verbatim")
    if not {"votes", "vote_tallies"} <= tables:
        problems.append(f"tables now {sorted(tables)}")
    headers = {}
    for name, svc in (("vote", vote), ("result", result)):
        try:
            status = httpx.get(svc.url + "/", headers={"X-Huge": "h" * 70_000}).status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        headers[name] = status
        if not isinstance(status, int) or not 400 <= status < 500:
            problems.append(f"{name}: a 70 KB header got {status}, not a 4xx")
        if stack.http_status(svc.url + "/healthz") != 200:
            problems.append(f"{name} is unhealthy after a huge header")
    client.close()
    return judge(
        "hostile values",
        "labels with <script>/onerror, hostile voter_id cookies, SQL/HTML voter ids on the queue, 70 KB headers",
        f"pages escaped: {'yes' if escaped else 'NO'}; {len(cookie_ids) - foreign}/{len(cookie_ids)} cookies "
        f"replaced; {verbatim}/{len(sql_ids)} SQL/HTML ids stored verbatim, tables intact; huge header -> {headers}",
        problems, {"cookies_replaced": len(cookie_ids) - foreign, "ids_verbatim": verbatim,
                   "ids_sent": len(sql_ids), "huge_header_status": headers},
    )


PG_SAMPLE = {"POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": "1", "POSTGRES_USER": "u", "POSTGRES_PASSWORD": "p",
             "POSTGRES_DB": "d"}
REDIS_SAMPLE = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": "1"}
MISCONFIGURATIONS = [
    ("vote", {"REDIS_PORT": "sixty"}, "REDIS_PORT"),
    ("vote", {"REDIS_PORT": "70000"}, "REDIS_PORT"),
    ("vote", {"OPTION_B": "x" * 100}, "OPTION_B"),
    ("vote", {"HTTP_WORKERS": "0"}, "HTTP_WORKERS"),
    ("vote", {"PORT": "http"}, "PORT"),
    ("worker", {"POSTGRES_USER": None}, "POSTGRES_USER"),
    ("worker", {"POSTGRES_PASSWORD": ""}, "POSTGRES_PASSWORD"),
    ("worker", {"POSTGRES_PORT": "5432x"}, "POSTGRES_PORT"),
    ("worker", {"WORKER_BATCH_SIZE": "-5"}, "WORKER_BATCH_SIZE"),
    ("worker", {"METRICS_PORT": "nine"}, "METRICS_PORT"),
    ("result", {"POSTGRES_DB": None}, "POSTGRES_DB"),
    ("result", {"RESULT_RECHECK_SECONDS": "soon"}, "RESULT_RECHECK_SECONDS"),
    ("result", {"OPTION_A": "tab\there"}, "OPTION_A"),
]


def misconfigured(lab: Lab, *, cases: list[tuple[str, dict, str]] = MISCONFIGURATIONS) -> Row:
    """Each service refuses to start on a missing or malformed variable, and names it."""
    problems = []
    passed = 0
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "REDIS_", "OPTION_"))}
    for service, change, name in cases:
        builders = {"vote": lambda: stack.vote(REDIS_SAMPLE), "worker": lambda: stack.worker(REDIS_SAMPLE, PG_SAMPLE),
                    "result": lambda: stack.result(PG_SAMPLE)}
        svc = builders[service]()
        env = {**clean_env, **svc.env}
        for key, value in change.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        try:
            done = subprocess.run(svc.argv, env=env, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            problems.append(f"{service} {change}: still running after 60 s")
            continue
        if done.returncode != 0 and name in done.stderr and "Traceback" not in done.stderr:
            passed += 1
        else:
            problems.append(f"{service} {change}: exit {done.returncode}, stderr {done.stderr.strip()[-200:]!r}")
    return judge(
        "misconfigured services",
        f"{len(cases)} starts with a missing or malformed variable (vote, worker, result)",
        f"{passed}/{len(cases)} refused to start, naming the variable, without a traceback",
        problems, {"cases": len(cases), "refused_naming_variable": passed},
    )


# --- security -----------------------------------------------------------------------------------

def venv_tool(name: str) -> str:
    """A tool from this virtualenv, never a same-named program elsewhere on PATH."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        found = shutil.which(name, path=folder)
        if found:
            return found
    raise FileNotFoundError(f"{name} is not installed in this virtualenv: run `uv sync --frozen --all-groups`")


def render(target: str = "overlays/prod") -> list[dict]:
    import yaml

    done = subprocess.run([venv_tool("kubectl"), "kustomize", str(REPO / target)], capture_output=True, text=True,
                          check=False, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {target} failed: {done.stderr}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]


# Who may be reached from outside the namespace, and on which named or numbered port.
PUBLIC = {("vote", "http"), ("result", "http")}
FROM_OUTSIDE = PUBLIC | {("worker", "metrics"), ("redis", 6379)}
NAME = "app.kubernetes.io/name"


def _pods(objects: list[dict]) -> Iterator[tuple[dict, dict]]:
    for obj in objects:
        kind = obj["kind"]
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
            yield obj, obj["spec"]["template"]
        elif kind == "CronJob":
            yield obj, obj["spec"]["jobTemplate"]["spec"]["template"]
        elif kind == "Pod":
            yield obj, obj


def _selects(selector: dict, labels: dict) -> bool:
    # matchExpressions are ignored: a policy is taken to select at least what its matchLabels
    # select, which can only make this check report more openings, never fewer.
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def exposure_problems(objects: list[dict]) -> list[str]:
    """Only vote and result face the outside; nothing runs as root."""
    problems = []
    for svc in (o for o in objects if o["kind"] == "Service"):
        name, spec = svc["metadata"]["name"], svc["spec"]
        if spec.get("type", "ClusterIP") != "ClusterIP" or spec.get("externalIPs") or spec.get("externalName"):
            problems.append(f"Service/{name} is reachable from outside the cluster ({spec.get('type')})")
    for ing in (o for o in objects if o["kind"] == "Ingress"):
        backends = [p["backend"]["service"]["name"] for r in ing["spec"].get("rules", [])
                    for p in r.get("http", {}).get("paths", [])]
        if ing["spec"].get("defaultBackend"):
            backends.append(ing["spec"]["defaultBackend"].get("service", {}).get("name"))
        for backend in backends:
            if backend not in {n for n, _ in PUBLIC}:
                problems.append(f"Ingress/{ing['metadata']['name']} routes to {backend}")
    pods = {t.get("metadata", {}).get("labels", {}).get(NAME): t for _, t in _pods(objects)}
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"].get("podSelector") == {} and "Ingress" in p["spec"].get("policyTypes", [])
            and not p["spec"].get("ingress")]
    if not deny:
        problems.append("no default-deny ingress NetworkPolicy")
    for policy in policies:
        targets = [n for n, t in pods.items() if _selects(policy["spec"].get("podSelector") or {},
                                                         t.get("metadata", {}).get("labels", {}))]
        for rule in policy["spec"].get("ingress", []):
            peers = rule.get("from")
            outside = not peers or any("namespaceSelector" in p or "ipBlock" in p for p in peers)
            if not outside:
                continue
            ports = [p.get("port") for p in rule.get("ports", [])] or ["any"]
            for target in targets:
                for port in ports:
                    if (target, port) not in FROM_OUTSIDE:
                        problems.append(f"NetworkPolicy/{policy['metadata']['name']}: {target} port {port} "
                                        f"open to other namespaces")
                    if (target, port) == ("redis", 6379):
                        names = {p.get("namespaceSelector", {}).get("matchLabels", {}).get(
                            "kubernetes.io/metadata.name") for p in peers or [{}]}
                        if names != {"keda"} or any("podSelector" not in p and "namespaceSelector" not in p
                                                    for p in peers or [{}]):
                            problems.append(f"NetworkPolicy/{policy['metadata']['name']}: redis open beyond KEDA")
    for obj, template in _pods(objects):
        spec = template["spec"]
        pod_sc = spec.get("securityContext") or {}
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            sc = c.get("securityContext") or {}
            where = f"{obj['kind']}/{obj['metadata']['name']} container {c['name']}"
            if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
                problems.append(f"{where}: runAsNonRoot is not true")
            uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
            if not uid:
                problems.append(f"{where}: runAsUser is {uid!r}, not a non-zero UID")
            if sc.get("privileged") or sc.get("allowPrivilegeEscalation", True):
                problems.append(f"{where}: may be privileged or escalate")
    return problems


def prod_exposure(lab: Lab | None = None) -> Row:
    """The rendered prod overlay: only vote and result face the outside, and no pod runs as root."""
    objects = render("overlays/prod")
    problems = exposure_problems(objects)
    services = sorted(o["metadata"]["name"] for o in objects if o["kind"] == "Service")
    ingress = sorted({p["backend"]["service"]["name"] for o in objects if o["kind"] == "Ingress"
                      for r in o["spec"]["rules"] for p in r["http"]["paths"]})
    containers = sum(len(t["spec"].get("containers", [])) + len(t["spec"].get("initContainers", []))
                     for _, t in _pods(objects))
    return judge(
        "prod exposure and users",
        f"rendered overlays/prod: {len(services)} Services, Ingress, {sum(o['kind'] == 'NetworkPolicy' for o in objects)}"
        f" NetworkPolicies, {containers} containers",
        f"Services all ClusterIP; Ingress backends {ingress}; from other namespaces only vote/result http, worker "
        f"metrics, redis 6379 from keda; {len(problems)} problems (root, open ports)",
        problems, {"services": services, "ingress_backends": ingress, "containers": containers},
    )


SCAN_EXCLUDE = r"(^|/)(\.venv|\.git|\.data|\.drills|\.bench|\.hypothesis|node_modules)/|(^|/)uv\.lock$|^\.secrets\.baseline$"


# Never walked when git cannot list the files (a copy without .git): ignored or generated folders.
NOT_SOURCE = {".git", ".venv", ".tools", ".data", ".drills", ".bench", ".hypothesis", ".pytest_cache", "__pycache__",
              ".terraform", "node_modules"}


def tracked_files(repo: Path = REPO) -> list[str]:
    """Files git tracks or would track (untracked but not ignored), minus the excluded ones."""
    done = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=repo, capture_output=True, text=True,
        check=False,
    ) if shutil.which("git") else None
    if done is not None and done.returncode == 0:
        names = done.stdout.splitlines()
    else:
        names = []
        for folder, dirs, files in os.walk(repo):
            dirs[:] = sorted(d for d in dirs if d not in NOT_SOURCE)
            names += [str((Path(folder) / f).relative_to(repo)) for f in sorted(files)]
    return [f for f in names if f and not re.search(SCAN_EXCLUDE, f) and (repo / f).is_file()]


def scan_secrets(repo: Path = REPO, files: list[str] | None = None) -> dict[str, set[str]]:
    """detect-secrets over the repository's files: {path: {hashed secret, ...}}."""
    files = tracked_files(repo) if files is None else files
    found: dict[str, set[str]] = {}
    for start in range(0, len(files), 200):
        scan = subprocess.run([venv_tool("detect-secrets"), "scan", *files[start:start + 200]],
                              cwd=repo, capture_output=True, text=True, check=True)
        for path, secrets in json.loads(scan.stdout)["results"].items():
            found.setdefault(path, set()).update(s["hashed_secret"] for s in secrets)
    return found


def baseline_secrets(repo: Path = REPO) -> dict[str, list[dict]]:
    return json.loads((repo / ".secrets.baseline").read_text())["results"]


# An inline `pragma: allowlist secret` is how a dev default is marked; the line must say so.
PRAGMA = "pragma: allowlist secret"
DEV_MARKER = re.compile(r"dev-only|test-only", re.I)


def secret_problems(found: dict[str, set[str]], baseline: dict[str, list[dict]], pragma_lines: list[tuple[str, str]],
                    ) -> list[str]:
    """New findings, baseline entries nobody reviewed, and allow-listed lines not marked dev-only."""
    problems = []
    for path, hashes in sorted(found.items()):
        known = {s["hashed_secret"] for s in baseline.get(path, [])}
        if hashes - known:
            problems.append(f"{path}: {len(hashes - known)} possible secret(s) not in .secrets.baseline")
    for path, entries in sorted(baseline.items()):
        for entry in entries:
            if entry.get("is_secret") is not False:
                problems.append(f"{path}:{entry.get('line_number')}: baseline entry not reviewed as a false positive "
                                f"(is_secret: false)")
    for where, line in pragma_lines:
        if not DEV_MARKER.search(line):
            problems.append(f"{where}: allow-listed as a secret but not marked dev-only or test-only")
    return problems


def pragma_lines(repo: Path = REPO, files: list[str] | None = None) -> list[tuple[str, str]]:
    found = []
    for path in tracked_files(repo) if files is None else files:
        if path == "tools/devstack/src/devstack/drills.py":
            continue  # names the pragma above, allows nothing
        try:
            text = (repo / path).read_text()
        except (UnicodeDecodeError, OSError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if PRAGMA in line:
                found.append((f"{path}:{n}", line))
    return found


def secrets_scan(lab: Lab | None = None) -> Row:
    """detect-secrets over the repository against .secrets.baseline: only marked dev defaults."""
    files = tracked_files()
    found = scan_secrets(files=files)
    baseline = baseline_secrets()
    marked = pragma_lines(files=files)
    problems = secret_problems(found, baseline, marked)
    reviewed = sum(len(v) for v in baseline.values())
    return judge(
        "secrets scan",
        f"detect-secrets over {len(files)} files (git-tracked or new; not .venv or lock files)",
        f"{sum(map(len, found.values()))} findings, all in .secrets.baseline as reviewed false positives ({reviewed}); "
        f"{len(marked)} allow-listed lines, all marked dev-only/test-only: {'yes' if not problems else 'NO'}",
        problems, {"files": len(files), "findings": {p: len(h) for p, h in found.items()},
                   "allowlisted": [w for w, _ in marked]},
    )


# --- the run ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Drill:
    name: str
    run: Callable[..., Row]
    long: dict
    quick: dict


DRILLS = [
    Drill("worker-kill-1", worker_kills, {"workers": 1, "kills": 50}, {"workers": 1, "kills": 5, "voters": 200}),
    Drill("worker-kill-3", worker_kills, {"workers": 3, "kills": 50}, {"workers": 3, "kills": 5, "voters": 200}),
    Drill("redis-prod-sigterm", redis_restarts, {"mode": "prod", "how": "sigterm", "restarts": 5},
          {"mode": "prod", "how": "sigterm", "restarts": 2, "voters": 200, "surge_votes": 2000}),
    Drill("redis-prod-sigkill", redis_restarts, {"mode": "prod", "how": "sigkill", "restarts": 5},
          {"mode": "prod", "how": "sigkill", "restarts": 2, "voters": 200, "surge_votes": 2000}),
    Drill("redis-dev-sigterm", redis_restarts, {"mode": "dev", "how": "sigterm", "restarts": 5},
          {"mode": "dev", "how": "sigterm", "restarts": 2, "voters": 200, "surge_votes": 2000}),
    Drill("redis-prod-worker-down", redis_restarts, {"mode": "prod", "how": "sigterm", "restarts": 3,
                                                     "worker_down": True},
          {"mode": "prod", "how": "sigterm", "restarts": 1, "voters": 200, "surge_votes": 2000, "worker_down": True}),
    Drill("redis-dev-worker-down", redis_restarts, {"mode": "dev", "how": "sigterm", "restarts": 3,
                                                    "worker_down": True},
          {"mode": "dev", "how": "sigterm", "restarts": 1, "voters": 200, "surge_votes": 2000, "worker_down": True}),
    Drill("postgres-outage", postgres_outage, {"outage": 30.0}, {"outage": 3.0, "voters": 200}),
    Drill("websocket-viewers", websocket_viewers, {"viewers": 500, "phase": 20.0},
          {"viewers": 100, "phase": 3.0, "voters": 200}),
    Drill("rollout-worker", rollout_worker, {}, {"backlog": 10_000}),
    Drill("rollout-vote", rollout_vote, {"slow": 6, "voters": 300}, {"slow": 4, "voters": 100}),
    Drill("rollout-result", rollout_result, {"viewers": 20}, {"viewers": 0}),
    Drill("rollout-result-viewers", rollout_result_viewers, {"viewers": 20}, {"viewers": 5}),
    Drill("bad-http", bad_http_input, {"requests": 3000}, {"requests": 300}),
    Drill("bad-queue", bad_queue_input, {"messages": 3000}, {"messages": 300}),
    Drill("hostile-values", hostile_values, {}, {}),
    Drill("misconfigured", misconfigured, {}, {"cases": MISCONFIGURATIONS[::3]}),
    Drill("prod-exposure", prod_exposure, {}, {}),
    Drill("secrets-scan", secrets_scan, {}, {}),
]


def run_drill(lab: Lab, drill: Drill, *, quick: bool = False, **overrides) -> Row:
    """Run one drill; a crash of the drill itself is a failed row, never a silent pass."""
    kwargs = {**(drill.quick if quick else drill.long), **overrides}
    started = time.monotonic()
    try:
        row = drill.run(lab, **kwargs)
    except Exception as exc:  # noqa: BLE001 (reported in the table)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        row = Row(drill.name, "drill did not finish", f"{type(exc).__name__}: {first}"[:300], ok=False,
                  problems=[f"{type(exc).__name__}: {exc}"])
    finally:
        lab.cleanup()
    row.seconds = round(time.monotonic() - started, 1)
    # A shared machine's load explains some timings: kept with the row.
    row.counts["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return row


def table(rows: list[Row]) -> str:
    head = ("drill", "what it did", "what it compared", "verdict", "s")
    cells = [head] + [(r.name, r.did, r.compared, r.verdict, f"{r.seconds:.0f}") for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    widths[1], widths[2] = min(widths[1], 200), min(widths[2], 260)
    lines = []
    for n, c in enumerate(cells):
        lines.append(" | ".join(c[i].ljust(widths[i]) for i in range(len(head))).rstrip())
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    """The rows of a JSON report as a Markdown table, for the README."""
    lines = ["| drill | what it did | what it compared | verdict | s |", "| --- | --- | --- | --- | ---: |"]
    for r in rows:
        cells = [r["name"], r["did"], r["compared"], r["verdict"], f"{r['seconds']:.0f}"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.drills", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small forms `make test` runs")
    parser.add_argument("--only", nargs="+", metavar="DRILL", choices=[d.name for d in DRILLS],
                        help="run only these drills")
    parser.add_argument("--out", type=Path, default=Path(".drills"), help="folder for the JSON report")
    parser.add_argument("--markdown", type=Path, metavar="REPORT.json",
                        help="print an earlier JSON report as a Markdown table and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        report = json.loads(args.markdown.read_text())
        print(markdown(report["rows"]))
        print(f"\n{len(report['rows'])} drills in {report['seconds']:.0f} s on {report['cores']} cores ({report['when']}).")
        return 0
    chosen = [d for d in DRILLS if not args.only or d.name in args.only]
    started = time.monotonic()
    rows = []
    with lab_in() as lab:
        for drill in chosen:
            print(f"... {drill.name}", file=sys.stderr, flush=True)
            row = run_drill(lab, drill, quick=args.quick)
            print(f"    {row.verdict} in {row.seconds:.0f}s: {row.compared}", file=sys.stderr, flush=True)
            for problem in row.problems:
                print(f"    - {problem}", file=sys.stderr, flush=True)
            rows.append(row)
    wall = time.monotonic() - started
    print(table(rows))
    failed = [r.name for r in rows if not r.ok]
    print(f"\n{len(rows)} drills in {wall:.0f}s on {os.cpu_count()} cores: "
          f"{sum(r.ok for r in rows)} held, {len(failed)} failed{': ' + ', '.join(failed) if failed else ''}")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    report = {"when": stamp, "quick": args.quick, "seconds": round(wall, 1), "cores": os.cpu_count(),
              "rows": [r.to_json() for r in rows]}
    for name in (f"drills-{stamp}.json", "latest.json"):
        (args.out / name).write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
