"""The result service: the results page, its JSON, and a websocket of live tallies."""

from __future__ import annotations

import asyncio
import socket
import time

from opentelemetry.trace import TracerProvider
from prometheus_client import Histogram
from quart import Quart, Response, g, render_template, request

from voting_contract import tracing
from voting_contract.metrics import exposition
from voting_contract.settings import environ
from voting_contract.web import LATENCY_BUCKETS, ballot_stylesheet, security_headers

from .feed import TallyFeed
from .live import LiveTallies
from .settings import Settings
from .telemetry import FeedTelemetry

LATENCY = Histogram(
    "result_request_duration_seconds", "Time to answer an HTTP request", ["method", "endpoint", "status"],
    buckets=LATENCY_BUCKETS,
)
HEADERS = security_headers(form_action="'none'")


def create_app(settings: Settings | None = None, tracer_provider: TracerProvider | None = None) -> Quart:
    """Build the app; tests pass their own settings (and tracer provider), servers read the environment."""
    settings = settings or Settings.from_env(environ())
    app = Quart(__name__)
    own_provider = tracer_provider is None
    tracer_provider = tracer_provider or tracing.provider(settings.tracing)
    feed = TallyFeed(settings.postgres, settings.ballot, settings.recheck_seconds,
                     FeedTelemetry(tracing.tracer(tracer_provider, "result")))
    app.extensions["tally_feed"] = feed
    hostname = socket.gethostname()

    @app.before_serving
    async def start_feed() -> None:
        feed.start()

    @app.after_serving
    async def stop_feed() -> None:
        await feed.stop()
        if own_provider:
            await asyncio.to_thread(tracing.shutdown, tracer_provider)

    @app.get("/")
    async def page():
        return await render_template("index.html", snapshot=feed.current, hostname=hostname)

    @app.get("/api/results")
    async def results():
        return feed.current, (200 if feed.loaded else 503)

    @app.get("/ballot.css")
    async def ballot_css():
        return Response(ballot_stylesheet(), mimetype="text/css")

    @app.get("/healthz")
    async def healthz():
        return Response("ok\n", mimetype="text/plain")

    @app.get("/readyz")
    async def readyz():
        # Not PostgreSQL: without it this process still serves the last tallies marked
        # "reconnecting" (result_db_connected says which). Only shutting down takes it out.
        if feed.closing:
            return Response("shutting down\n", status=503, mimetype="text/plain")
        return Response("ready\n", mimetype="text/plain")

    @app.get("/metrics")
    async def metrics():
        body, content_type = exposition()
        return Response(body, content_type=content_type)

    @app.before_request
    async def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    async def finish(response: Response) -> Response:
        response.headers.update(HEADERS)
        endpoint = request.endpoint or "unknown"
        LATENCY.labels(request.method, endpoint, str(response.status_code)).observe(time.perf_counter() - g.started)
        return response

    # /ws is answered before Quart sees it (live.py says why).
    app.asgi_app = LiveTallies(app.asgi_app, feed)  # type: ignore[method-assign]
    return app
