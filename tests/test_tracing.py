"""One vote followed by its trace: its HTTP request, the worker's batch and commit, result's push.

The three services run in this process (vote and result through their app factories, the worker
through its loop), each with a TracerProvider of its own that writes to one in-memory exporter;
Redis and PostgreSQL are real servers. A last test runs vote and the worker as their images do,
with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a small OTLP/HTTP receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from devstack import stack
from result.app import create_app as create_result_app
from result.settings import Settings as ResultSettings
from vote.app import create_app as create_vote_app
from vote.settings import Settings as VoteSettings
from voting_contract import tracing
from voting_contract.logs import Formatter
from voting_contract.wire import DEAD_LETTER, QUEUE, Vote, decode
from worker.service import Worker
from worker.settings import Settings as WorkerSettings

VOTER = "0123456789abcdef" * 2  # a well-formed voter id (32 hex digits)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider_for(exporter):
    """provider_for("vote"): a TracerProvider whose spans say they come from that service."""
    made: list[TracerProvider] = []

    def make(service: str) -> TracerProvider:
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.shutdown()


@pytest.fixture
def env(redis_server, postgres_server, redis_client, pg_conn) -> dict[str, str]:
    return {**stack.redis_env(redis_server.port), **postgres_server.env, "WORKER_ID": "traced",
            "WORKER_HEARTBEAT_SECONDS": "3"}


@pytest.fixture
def make_worker(env):
    made: list[Worker] = []

    def make(provider: TracerProvider | None) -> Worker:
        made.append(Worker(WorkerSettings.from_env(env), tracer_provider=provider))
        return made[-1]

    yield make
    for worker in made:
        worker.close()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the vote and worker loggers write, formatted as the services format it (at emit time)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(Formatter("test"))
    loggers = [logging.getLogger(name) for name in ("vote", "worker")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield out
    for logger, level in zip(loggers, levels):
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextlib.contextmanager
def running(worker: Worker) -> Iterator[None]:
    """The worker's own loop in a thread for the block's length, then stopped as SIGTERM stops it."""
    thread = threading.Thread(target=worker.run, name="worker-loop")
    thread.start()
    try:
        yield
    finally:
        worker.stop.set()
        thread.join(30)
        assert not thread.is_alive()


def until(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def named(spans, name: str) -> list:
    return [s for s in spans if s.name == name]


def links_of(span) -> set[tuple[int, int]]:
    return {(link.context.trace_id, link.context.span_id) for link in span.links}


def ids(span) -> tuple[int, int]:
    return span.context.trace_id, span.context.span_id


def test_one_vote_from_its_request_to_its_commit_to_the_push(env, exporter, provider_for, make_worker,
                                                             redis_client, log_lines):
    vote_app = create_vote_app(VoteSettings.from_env(env), tracer_provider=provider_for("vote"))
    worker = make_worker(provider_for("worker"))
    result_app = create_result_app(ResultSettings.from_env(env), tracer_provider=provider_for("result"))
    feed = result_app.extensions["tally_feed"]
    queued: list[Vote] = []

    def cast_a_vote() -> None:
        voter = vote_app.test_client()
        voter.set_cookie("voter_id", VOTER)
        assert voter.post("/", data={"vote": "a"}).status_code == 200
        queued.extend(decode(m, ("a", "b")) for m in redis_client.lrange(QUEUE, 0, -1))

    async def scenario() -> None:
        async with result_app.test_app():
            async with asyncio.timeout(15):
                while not feed.loaded:
                    await asyncio.sleep(0.02)
            async with result_app.test_client().websocket("/ws") as ws:
                assert (await ws.receive_json())["total"] == 0
                await asyncio.to_thread(cast_a_vote)
                with running(worker):
                    async with asyncio.timeout(15):
                        while (await ws.receive_json())["total"] != 1:
                            pass

    asyncio.run(scenario())
    spans = exporter.get_finished_spans()

    (request,) = named(spans, "POST /")
    assert request.kind is SpanKind.SERVER and request.resource.attributes["service.name"] == "vote"
    assert request.attributes["http.response.status_code"] == 200
    # The queue message carries the request span's W3C trace context, beside the classic fields.
    (message,) = queued
    trace_id, span_id = ids(request)
    assert message.traceparent == f"00-{trace_id:032x}-{span_id:016x}-{request.context.trace_flags:02x}"
    assert (message.voter_id, message.vote) == (VOTER, "a")

    # The batch links to the vote (links, not parent and child: a batch serves many traces)...
    (batch,) = named(spans, "worker.batch")
    assert batch.resource.attributes["service.name"] == "worker"
    assert links_of(batch) == {ids(request)}
    assert batch.parent is None and batch.context.trace_id != trace_id
    assert (batch.attributes["voting.batch.size"], batch.attributes["voting.batch.rows_upserted"]) == (1, 1)
    # ...and its commit is its child, in the writer thread, with what it wrote.
    (commit,) = named(spans, "worker.commit")
    assert commit.parent.span_id == batch.context.span_id and commit.attributes["voting.batch.rows_upserted"] == 1
    assert commit.end_time <= batch.end_time

    # result's read of the notification links to that commit, and its push to the one viewer is its child.
    (notified,) = [s for s in named(spans, "result.notification") if ids(commit) in links_of(s)]
    assert notified.resource.attributes["service.name"] == "result"
    pushes = [s for s in named(spans, "result.push") if s.parent and s.parent.span_id == notified.context.span_id]
    assert len(pushes) == 1 and pushes[0].attributes["voting.viewers"] == 1

    # Log lines written inside a span carry its trace id; the voter's id is in none of them.
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    (queued_line,) = [line for line in lines if line["event"] == "vote.queued"]
    assert queued_line["trace_id"] == f"{trace_id:032x}"
    (committed_line,) = [line for line in lines if line["event"] == "worker.batch_committed"]
    assert committed_line["trace_id"] == f"{batch.context.trace_id:032x}"
    assert VOTER not in log_lines.getvalue()


def test_the_worker_takes_votes_with_and_without_a_traceparent(env, exporter, provider_for, make_worker,
                                                               redis_client, pg_conn):
    provider = provider_for("test")
    with provider.get_tracer("test").start_as_current_span("a vote's request") as request:
        traceparent = tracing.traceparent()
    redis_client.rpush(
        QUEUE,
        Vote("traced", "a").traced(traceparent).to_json(),
        Vote("classic", "b").to_json(),
        json.dumps({"voter_id": "odd-header", "vote": "a", "traceparent": 42}),
        json.dumps({"voter_id": "bad-header", "vote": "b", "traceparent": "00-not-a-trace-context"}),
        json.dumps({"voter_id": "off-ballot", "vote": "c", "traceparent": traceparent}),
    )
    with running(make_worker(provider_for("worker"))):
        until(lambda: redis_client.llen(DEAD_LETTER) == 1 and not redis_client.llen(QUEUE))
    assert dict(pg_conn.execute("SELECT id, vote FROM votes").fetchall()) == {
        "traced": "a", "classic": "b", "odd-header": "a", "bad-header": "b"}
    assert [json.loads(d)["reason"] for d in redis_client.lrange(DEAD_LETTER, 0, -1)] == ["unknown-vote"]
    (batch,) = named(exporter.get_finished_spans(), "worker.batch")
    assert links_of(batch) == {ids(request)}
    assert batch.attributes["voting.batch.size"] == 5


def test_tracing_off_loads_no_sdk_and_adds_nothing_to_the_message(env, redis_client):
    """Off (no OTEL_EXPORTER_OTLP_ENDPOINT), no tracing code runs: not even the SDK's tracing is imported.

    (redis-py imports a part of the OpenTelemetry SDK for metrics of its own, which stay off.)
    """
    script = """
import json, sys
from vote.app import create_app
from vote.settings import Settings
from worker.service import Worker
from worker.settings import Settings as WorkerSettings
from voting_contract.settings import environ
app = create_app(Settings.from_env(environ()))
worker = Worker(WorkerSettings.from_env(environ()))
status = app.test_client().post("/", data={"vote": "b"}).status_code
print(json.dumps({"status": status, "wrapped": hasattr(app.view_functions["cast"], "__wrapped__"),
                  "tracer": worker.batches.tracer is not None,
                  "sdk": sorted(m for m in sys.modules
                                if m.startswith(("opentelemetry.sdk.trace", "opentelemetry.exporter")))}))
"""
    done = subprocess.run([sys.executable, "-c", script], env={**env, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == {"status": 200, "wrapped": False, "tracer": False, "sdk": []}
    (raw,) = redis_client.lrange(QUEUE, 0, -1)
    assert set(json.loads(raw)) == {"voter_id", "vote", "ts", "seq"}


class Collector:
    """A stand-in for an OpenTelemetry Collector's OTLP/HTTP receiver: keeps the spans it is sent."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, str, list[str]]] = []  # (service, span name, trace id, linked trace ids)
        self.paths: set[str] = set()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.paths.add(self.path)
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    service = next(a.value.string_value for a in resource_spans.resource.attributes
                                   if a.key == "service.name")
                    for scope in resource_spans.scope_spans:
                        for span in scope.spans:
                            collector.spans.append((service, span.name, span.trace_id.hex(),
                                                    [link.trace_id.hex() for link in span.links]))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_with_an_endpoint_the_services_export_their_spans_over_otlp_http(redis_server, postgres_server,
                                                                          redis_client, pg_conn, launch):
    """The switch itself: with OTEL_EXPORTER_OTLP_ENDPOINT set, the three services as their images run them send spans."""
    collector = Collector()
    try:
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
        redis_env = stack.redis_env(redis_server.port)
        vote = launch(stack.vote(redis_env, extra={**otel, "OTEL_SERVICE_NAME": "ballot"}))
        worker = launch(stack.worker(redis_env, postgres_server.env, extra=otel))
        result = launch(stack.result(postgres_server.env, extra=otel))
        assert httpx.post(vote.url + "/", data={"vote": "a"}).status_code == 200
        deadline = time.monotonic() + 20
        while httpx.get(result.url + "/api/results").json()["total"] != 1:
            assert time.monotonic() < deadline, "the vote never reached the result page"
            time.sleep(0.1)
        # Stopping flushes what the batch processors still hold.
        assert vote.stop() == 0 and worker.stop() == 0 and result.stop() == 0
    finally:
        collector.close()
    assert collector.paths == {"/v1/traces"}
    (request,) = [s for s in collector.spans if s[1] == "POST /"]
    (batch,) = [s for s in collector.spans if s[1] == "worker.batch"]
    assert request[0] == "ballot" and batch[0] == "worker"  # OTEL_SERVICE_NAME, or the service's own name
    assert batch[3] == [request[2]]
    (commit,) = [s for s in collector.spans if s[1] == "worker.commit"]
    assert commit[2] == batch[2]
    (notified,) = [s for s in collector.spans if s[1] == "result.notification" and commit[2] in s[3]]
    assert notified[0] == "result"
    assert [s for s in collector.spans if s[1] == "result.push" and s[2] == notified[2]]
