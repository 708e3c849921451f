"""result's spans, when tracing is on: a notification read, and each change pushed to viewers."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import ContextManager

from opentelemetry.trace import SpanKind, Tracer

from voting_contract.tracing import NOTIFICATIONS, VIEWERS, links_to

_OFF = contextlib.nullcontext()


class FeedTelemetry:
    def __init__(self, tracer: Tracer | None = None) -> None:
        self.tracer = tracer

    def notified(self, payloads: Sequence[str]) -> ContextManager:
        """The span of one tally read that notifications caused, linked to the commits that sent them.

        A notification's payload is the committing transaction's traceparent (empty from writers
        that do not trace). A read on the recheck timer, with no notification, has no span.
        """
        if self.tracer is None or not payloads:
            return _OFF
        return self.tracer.start_as_current_span(
            "result.notification", kind=SpanKind.CONSUMER, links=links_to(payloads),
            attributes={NOTIFICATIONS: len(payloads), "db.system.name": "postgresql"},
        )

    def push(self, viewers: int) -> ContextManager:
        """The span of one change pushed to every open websocket."""
        if self.tracer is None:
            return _OFF
        return self.tracer.start_as_current_span("result.push", kind=SpanKind.PRODUCER, attributes={VIEWERS: viewers})
