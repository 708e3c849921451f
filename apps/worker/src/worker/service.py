"""The worker's main loop: take a batch, write it, acknowledge it; wait out any outage."""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import psycopg
import redis
from opentelemetry.trace import TracerProvider

from voting_contract import tracing
from voting_contract.logs import event

from . import metrics
from .batch import Plan, plan_batch
from .queue import ReliableQueue
from .settings import Settings
from .store import Store
from .telemetry import BatchTelemetry

log = logging.getLogger("worker")

# A loop that has not turned for this long is stuck: liveness fails and the pod restarts.
STUCK_AFTER_SECONDS = 60.0


class Backoff:
    """Exponential waits with jitter, from 0.1 s up to 5 s."""

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self.first, self.cap, self.next = first, cap, first

    def delay(self) -> float:
        current = self.next
        self.next = min(self.cap, self.next * 2)
        return current * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class BatchBeingWritten:
    """A batch handed to the writer thread: acknowledged in Redis (`key`) once `written` says True."""

    written: Future[bool]
    key: str
    plan: Plan
    size: int


class Dependency:
    """Redis or PostgreSQL: its name for logs and metrics, the errors that mean it is away, and whether it answered."""

    def __init__(self, name: str, errors: tuple[type[Exception], ...]) -> None:
        self.name, self.errors, self.up = name, errors, False


class Worker:
    def __init__(self, settings: Settings, tracer_provider: TracerProvider | None = None) -> None:
        self.settings = settings
        # Tests pass a provider of their own; otherwise one exists only when tracing is on.
        self._own_tracer_provider = tracer_provider is None
        self.tracer_provider = tracer_provider or tracing.provider(settings.tracing)
        self.batches = BatchTelemetry(tracing.tracer(self.tracer_provider, "worker"))
        self.redis = redis.Redis(
            host=settings.redis.host, port=settings.redis.port, password=settings.redis.password,
            socket_connect_timeout=2, socket_timeout=settings.block_seconds + 5, health_check_interval=30,
        )
        self.queue = ReliableQueue(self.redis, settings.worker_id, settings.heartbeat_seconds)
        self.store = Store(settings.postgres)
        self.stop = threading.Event()
        self.last_loop = time.monotonic()
        self.redis_dep = Dependency("redis", (redis.RedisError,))
        self.postgres_dep = Dependency("postgres", (psycopg.OperationalError,))
        self.ids = settings.ballot.ids  # a vote for any other id is dead-lettered
        self._next_reclaim = 0.0
        # Whether Redis may hold batches of ours that nobody will acknowledge: at start (a previous
        # life's), and after a Redis error (a batch taken whose reply was lost). Cleared by a clean step.
        self._must_recover = True
        # One writer thread: PostgreSQL works on batch n while this thread reads batch n+1.
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-writer")
        self.being_written: BatchBeingWritten | None = None

    # -- probes -----------------------------------------------------------------------
    def alive(self) -> bool:
        return time.monotonic() - self.last_loop < STUCK_AFTER_SECONDS

    def ready(self) -> bool:
        return self.redis_dep.up and self.postgres_dep.up and not self.stop.is_set()

    def _mark_alive(self) -> None:
        """Liveness only: the loop is still turning (or still patiently waiting out an outage)."""
        self.last_loop = time.monotonic()
        metrics.LAST_LOOP.set_to_current_time()

    # -- retries ----------------------------------------------------------------------
    def _keepalive(self) -> None:
        """While waiting on a dependency: stay live, and keep the batch in hand ours."""
        self._mark_alive()
        try:
            self.queue.beat()
            metrics.QUEUE_DEPTH.set(self.queue.depth())  # votes pile up while PostgreSQL is away
        except redis.RedisError:
            pass  # Redis itself is down: nobody can reclaim the batch meanwhile

    def _retry(self, dependency: Dependency, action: Callable[[], object]) -> bool:
        """Run `action` until it succeeds; False if asked to stop while the dependency is down."""
        backoff = Backoff()
        while True:
            try:
                action()
            except dependency.errors as exc:
                dependency.up = False
                metrics.RETRIES.labels(dependency.name).inc()
                if self.stop.is_set():
                    return False
                delay = backoff.delay()
                log.warning("%s unavailable (%s); retrying in %.1fs", dependency.name, exc, delay,
                            extra=event("worker.dependency_unavailable", dependency=dependency.name))
                self._keepalive()
                self.stop.wait(delay)
                continue
            dependency.up = True
            return True

    # -- the loop ---------------------------------------------------------------------
    def _write(self, plan: Plan) -> bool:
        """In the writer thread: the batch into PostgreSQL, waiting out an outage."""
        return self._retry(self.postgres_dep, lambda: self.batches.write(plan, self.store.write))

    def _acknowledge(self, key: str, plan: Plan, count: int) -> None:
        committed_at = time.time()
        dead = [d.to_json(self.settings.worker_id, committed_at) for d in plan.dead]
        self._retry(self.redis_dep, lambda: self.queue.ack(key, dead))
        metrics.BATCH_SIZE.observe(count)
        metrics.PROCESSED.inc(plan.valid)
        for d in plan.dead:
            metrics.DEAD_LETTERED.labels(d.reason).inc()
            log.warning("dead-lettered a message: %s", d.detail or d.reason,
                        extra=event("worker.dead_lettered", reason=d.reason))
        oldest = plan.oldest_ts
        if oldest is not None:
            metrics.LAG.observe(max(0.0, committed_at - oldest))
        self.batches.committed(plan, None if oldest is None else max(0.0, committed_at - oldest))

    def _settle(self) -> None:
        """Wait for the batch being written; acknowledge it once it is committed."""
        batch = self.being_written
        if batch is None:
            return
        while True:
            try:
                written = batch.written.result(timeout=0.5)
                break
            except FutureTimeout:
                self._keepalive()
        self.being_written = None
        if written:
            self._acknowledge(batch.key, batch.plan, batch.size)
        else:  # stopping with PostgreSQL down; the batch stays in Redis for a successor
            self.batches.abandoned(batch.plan)

    # pipeline_step() moves one batch along (take n+1, settle n, start writing n+1); run() calls recover_then_step(),
    # which first recover()s while _must_recover says Redis may hold batches of ours; _mark_alive() only feeds liveness.
    def pipeline_step(self) -> int:
        """Take and decode the next batch while the previous one is written; return its size.

        The write of batch n overlaps the reading of batch n+1, and batch n is acknowledged
        (removed from Redis) only after its commit.
        """
        self._mark_alive()
        self.queue.beat()
        self.redis_dep.up = True
        now = time.monotonic()
        if now >= self._next_reclaim:
            self._next_reclaim = now + self.settings.heartbeat_seconds / 2
            # Also between batches: a queue that never empties must still show its depth.
            metrics.QUEUE_DEPTH.set(self.queue.depth())
            moved = self.queue.reclaim_orphans()
            if moved:
                metrics.RECLAIMED.inc(moved)
                log.info("moved %d messages of a dead worker back to the queue", moved,
                         extra=event("worker.reclaimed", messages=moved))
        # Wait for new votes only when nothing is being written.
        batch = self.queue.take(self.settings.batch_size, 0 if self.being_written else self.settings.block_seconds)
        plan = plan_batch(batch[1], self.ids) if batch else None
        if self.being_written:
            self._settle()
        if batch is None or plan is None:
            metrics.QUEUE_DEPTH.set(self.queue.depth())
            return 0
        key, items = batch
        self.batches.taken(plan, len(items))
        self.being_written = BatchBeingWritten(self.writer.submit(self._write, plan), key, plan, len(items))
        return len(items)

    def recover(self) -> None:
        """Write and acknowledge every batch of ours still in Redis.

        At start, what a previous life left; after a Redis error, a batch whose reply was lost.
        """
        if self.being_written:
            self._settle()
        for key, items in self.queue.unfinished():
            plan = plan_batch(items, self.ids)
            log.info("finishing %d messages a previous life of this worker took", len(items),
                     extra=event("worker.recovering", messages=len(items)))
            self.batches.taken(plan, len(items))
            if self._write(plan):
                self._acknowledge(key, plan, len(items))
            else:
                self.batches.abandoned(plan)

    def recover_then_step(self) -> None:
        """One pipeline step; first, after a start or a Redis error, finish what Redis still holds of ours."""
        if self._must_recover:
            self.recover()
        # Cleared only when the step completes: a batch may be taken whose reply never came.
        self._must_recover = True
        self.pipeline_step()
        self._must_recover = False

    def run(self) -> int:
        log.info("worker %s starting: redis %s:%d, postgres %s:%d, batches of %d, ballot %s", self.settings.worker_id,
                 self.settings.redis.host, self.settings.redis.port, self.settings.postgres.host,
                 self.settings.postgres.port, self.settings.batch_size, self.settings.ballot.text(),
                 extra=event("worker.started", tracing=self.tracer_provider is not None))
        self._retry(self.postgres_dep, self.store.ping)
        while not self.stop.is_set():
            self._retry(self.redis_dep, self.recover_then_step)
        if self.being_written:
            self._settle()
        self.writer.shutdown()
        try:
            self.queue.release()
        except redis.RedisError:
            pass  # the heartbeat lapses by itself
        self.store.close()
        if self._own_tracer_provider:
            tracing.shutdown(self.tracer_provider)
        log.info("worker %s stopped", self.settings.worker_id, extra=event("worker.stopped"))
        return 0

    def close(self) -> None:
        """Release the writer thread and both connections, for a worker whose run() never ran or has returned."""
        self.writer.shutdown()
        self.store.close()
        self.redis.close()

    def install_signal_handlers(self) -> None:
        def on_signal(signum: int, _frame: object) -> None:
            log.info("received %s: finishing the batch in hand", signal.Signals(signum).name,
                     extra=event("worker.stopping"))
            self.stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
