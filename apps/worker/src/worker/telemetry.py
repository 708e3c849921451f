"""What the worker tells about each batch: a log line once it is committed, spans when tracing is on.

The batch span (`worker.batch`) lasts from the take to the acknowledgement and links to the
span of every vote in the batch; its child `worker.commit` wraps the upsert, runs in the writer
thread, and hands its traceparent to the tally trigger's NOTIFY.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from voting_contract.logs import event
from voting_contract.tracing import BATCH_SIZE, BATCH_VOTES, ROWS_UPSERTED, links_to, traceparent

from .batch import Plan

log = logging.getLogger("worker")


@dataclass
class _Batch:
    messages: int
    rows: int = 0
    span: trace.Span | None = None


class BatchTelemetry:
    def __init__(self, tracer: Tracer | None) -> None:
        self.tracer = tracer
        self._open: dict[int, _Batch] = {}  # by id(plan): a plan lives until its batch is settled

    def taken(self, plan: Plan, messages: int) -> None:
        batch = _Batch(messages)
        if self.tracer is not None:
            batch.span = self.tracer.start_span(
                "worker.batch", kind=SpanKind.CONSUMER, links=links_to(plan.traceparents),
                attributes={BATCH_SIZE: messages, BATCH_VOTES: len(plan.votes), "messaging.system": "redis",
                            "messaging.destination.name": "votes", "messaging.batch.message_count": messages},
            )
        self._open[id(plan)] = batch

    def write(self, plan: Plan, store_write: Callable[[Plan, str | None], int]) -> None:
        """In the writer thread: one attempt at the upsert, in a commit span when tracing is on."""
        batch = self._open.get(id(plan))
        if batch is None or batch.span is None:
            rows = store_write(plan, None)
        else:
            with self.tracer.start_as_current_span(
                "worker.commit", context=trace.set_span_in_context(batch.span), kind=SpanKind.CLIENT,
                attributes={"db.system.name": "postgresql", "db.collection.name": "votes",
                            "db.operation.name": "upsert", BATCH_VOTES: len(plan.votes)},
            ) as span:
                rows = store_write(plan, traceparent())
                span.set_attribute(ROWS_UPSERTED, rows)
        if batch is not None:
            batch.rows = rows

    def committed(self, plan: Plan, lag_seconds: float | None) -> None:
        """Once the batch is committed and acknowledged: its log line, and the end of its span."""
        batch = self._open.pop(id(plan), None) or _Batch(plan.valid + len(plan.dead))
        fields = {"messages": batch.messages, "votes": len(plan.votes), "rows_upserted": batch.rows,
                  "dead_lettered": len(plan.dead)}
        if lag_seconds is not None:
            fields["lag_seconds"] = round(lag_seconds, 3)
        if batch.span is None:
            self._log(batch, fields)
            return
        batch.span.set_attribute(ROWS_UPSERTED, batch.rows)
        with trace.use_span(batch.span, end_on_exit=True):
            self._log(batch, fields)

    @staticmethod
    def _log(batch: _Batch, fields: dict) -> None:
        log.info("committed %d messages: %d votes, %d rows changed, %d dead-lettered", batch.messages,
                 fields["votes"], batch.rows, fields["dead_lettered"], extra=event("worker.batch_committed", **fields))

    def abandoned(self, plan: Plan) -> None:
        """Stopping with PostgreSQL down: the batch stays in Redis for a successor."""
        batch = self._open.pop(id(plan), None)
        if batch is not None and batch.span is not None:
            batch.span.set_status(Status(StatusCode.ERROR, "not committed: left in Redis for a successor"))
            batch.span.end()
