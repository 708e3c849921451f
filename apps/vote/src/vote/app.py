"""The vote service: GET shows the ballot, POST queues the voter's choice in Redis."""

from __future__ import annotations

import logging
import re
import secrets
import socket
import time
from urllib.parse import parse_qsl

import redis
from flask import Flask, Response, g, render_template, request
from opentelemetry.trace import TracerProvider
from prometheus_client import Counter, Gauge, Histogram
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from voting_contract import tracing
from voting_contract.logs import event, voter_ref
from voting_contract.metrics import exposition
from voting_contract.settings import environ
from voting_contract.web import LATENCY_BUCKETS, ballot_stylesheet, security_headers
from voting_contract.wire import Vote

from .ballot_box import BallotBox
from .cookies import CookieWriter
from .origin import cross_site
from .settings import Settings
from .telemetry import traced

log = logging.getLogger("vote")

VOTER_COOKIE = "voter_id"
CHOICE_COOKIE = "vote"
VOTER_ID = re.compile(r"[0-9a-f]{32}")  # 128 random bits, as secrets.token_hex(16) writes them
COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest lifetime browsers accept
MAX_BODY_BYTES = 4096

VOTES_CAST = Counter("vote_votes_cast", "Votes accepted and queued", ["option"])
CROSS_SITE = Counter("vote_cross_site_refused", "Votes refused because they came from another site's page")
LATENCY = Histogram(
    "vote_request_duration_seconds", "Time to answer a request", ["method", "endpoint", "status"],
    buckets=LATENCY_BUCKETS,
)
# Readiness does not follow Redis (a ballot that says "not recorded, try again" is still worth
# serving); this gauge and the logs say whether Redis answers. The newest value wins across
# gunicorn workers: each sets it on every vote and every scrape.
REDIS_UP = Gauge("vote_redis_up", "1 if Redis answered this service's last command, else 0",
                 multiprocess_mode="livemostrecent")
HEADERS = security_headers(form_action="'self'")


def never_sent(exc: redis.RedisError) -> bool:
    """Whether the vote certainly was not queued: no connection, or Redis refused the script.

    redis-py says "no connection" only in the message of the errors raised while connecting.
    A Redis at its maxmemory refuses the enqueue script at its first write, before anything:
    Redis 7 answers OOM, Redis 6 wraps the same refusal in a script error.
    """
    if isinstance(exc, redis.exceptions.OutOfMemoryError) or (
            isinstance(exc, redis.ResponseError) and "OOM command not allowed" in str(exc)):
        return True
    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError)) and "connecting to" in str(exc)


def create_app(settings: Settings | None = None, tracer_provider: TracerProvider | None = None) -> Flask:
    """Build the app; tests pass their own settings (and tracer provider), servers read the environment."""
    settings = settings or Settings.from_env(environ())
    # None unless tracing is on: then POST / runs in a span and each vote carries its traceparent.
    tracer = tracing.tracer(tracer_provider or tracing.provider(settings.tracing), "vote")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    # The scheme comes from the proxy's X-Forwarded-Proto; the host is the Host header, which the
    # ingress passes on unchanged (X-Forwarded-Host is not trusted). Both judge a vote's origin.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1)  # type: ignore[method-assign]
    client = redis.Redis(
        host=settings.redis.host, port=settings.redis.port, password=settings.redis.password,
        # No automatic retry: a retried vote whose first reply was lost could be queued twice,
        # and the voter could be told "not recorded" about a vote that was.
        socket_connect_timeout=0.5, socket_timeout=1.0, retry=Retry(NoBackoff(), 0),
    )
    push = BallotBox(client).push
    cookies = CookieWriter(COOKIE_MAX_AGE)
    hostname = socket.gethostname()
    redis_was_up: bool | None = None

    def saw_redis(up: bool, exc: redis.RedisError | None = None) -> None:
        """Record whether Redis answered: the gauge always, the log when it changes."""
        nonlocal redis_was_up
        REDIS_UP.set(1 if up else 0)
        if up and redis_was_up is False:
            log.info("redis answers again", extra=event("vote.redis_up"))
        elif not up and redis_was_up is not False:
            log.warning("redis stopped answering: %s", exc, extra=event("vote.redis_down"))
        redis_was_up = up

    # A ballot page depends only on the voter's choice (none, or one of the options, just cast
    # or not): a handful of pages, each rendered once.
    pages: dict[str | None, str] = {}

    def ballot(choice: str | None, *, just_cast: bool = False) -> Response:
        key = f"{choice}:cast" if just_cast else choice
        if key not in pages:
            notice = f"Your vote for {settings.ballot.label(choice)} is in." if just_cast and choice else None
            pages[key] = render_template(
                "index.html", ballot=settings.ballot, choice=choice, hostname=hostname, notice=notice
            )
        return Response(pages[key], mimetype="text/html")

    @app.get("/")
    def show():
        choice = request.cookies.get(CHOICE_COOKIE)
        return ballot(choice if choice in settings.ballot else None)

    @app.post("/")
    def cast():
        why = cross_site(request.headers.get("Origin"), request.headers.get("Referer"), request.scheme, request.host)
        if why:
            # The browser sent no voter cookie (SameSite=Lax): do not hand it a new one either.
            g.new_voter = False
            CROSS_SITE.inc()
            log.warning("refused a cross-site vote: %s (%.100r)", why,
                        request.headers.get("Origin") or request.headers.get("Referer"),
                        extra=event("vote.cross_site_refused"))
            return error_page(403, "Your vote was not counted: this vote came from another site, not from "
                                   "this ballot. If you meant to vote, go back to the ballot and choose there.")
        choice = form_choice()
        if choice not in settings.ballot:
            return error_page(400, "That is not a choice on this ballot: pick one of the buttons.")
        voter_id = g.voter_id
        try:
            cast_vote = Vote(voter_id=voter_id, vote=choice, ts=round(time.time(), 3))
            if tracer is not None:
                cast_vote = cast_vote.traced(tracing.traceparent())
            push(cast_vote)
        except redis.RedisError as exc:
            saw_redis(False, exc)
            if never_sent(exc):
                log.warning("vote not queued, redis unreachable: %s", exc, extra=event("vote.not_queued"))
                return error_page(503, "Your vote was not recorded: the ballot box is unavailable. "
                                       "Please try again.")
            log.warning("vote may or may not be queued, redis failed mid-request: %s", exc,
                        extra=event("vote.unconfirmed"))
            return error_page(503, "We could not confirm your vote: the ballot box stopped answering. "
                                   "Please vote again; only your latest vote counts.")
        saw_redis(True)
        if log.isEnabledFor(logging.DEBUG):
            ref = voter_ref(voter_id)
            log.debug("queued a vote for %s from voter %s", choice, ref, extra=event("vote.queued", voter=ref))
        VOTES_CAST.labels(choice).inc()
        response = ballot(choice, just_cast=True)
        response.headers.add("Set-Cookie", cookies.value(CHOICE_COOKIE, choice, request.is_secure))
        return response

    if tracer is not None:
        app.view_functions["cast"] = traced(tracer, "POST /", cast)

    @app.get("/ballot.css")
    def ballot_css():
        return Response(ballot_stylesheet(), mimetype="text/css")

    @app.get("/healthz")
    def healthz():
        return Response("ok\n", mimetype="text/plain")

    @app.get("/readyz")
    def readyz():
        # Ready whenever this process answers: with Redis down it still serves the ballot and
        # a clear "not recorded" page; the Service keeps its endpoints, users keep our pages.
        return Response("ready\n", mimetype="text/plain")

    @app.get("/metrics")
    def metrics():
        try:
            client.ping()
            saw_redis(True)
        except redis.RedisError as exc:
            saw_redis(False, exc)
        body, content_type = exposition()
        return Response(body, content_type=content_type)

    def form_choice() -> str | None:
        """The form's `vote` field. A browser's ballot sends a short urlencoded body, which
        parse_qsl reads at a quarter of the cost of werkzeug's general form parser."""
        if request.mimetype != "application/x-www-form-urlencoded":
            return request.form.get("vote")
        text = request.get_data().decode("utf-8", "replace")  # MAX_CONTENT_LENGTH still applies
        return next((value for key, value in parse_qsl(text, keep_blank_values=True) if key == "vote"), None)

    def error_page(status: int, message: str) -> Response:
        page = render_template("error.html", status=status, message=message, ballot=settings.ballot)
        return Response(page, status=status, mimetype="text/html")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        messages = {
            404: "There is nothing here. The ballot is at the home page.",
            405: "This page does not accept that kind of request.",
            413: "That request was too large to be a vote.",
        }
        response = error_page(exc.code or 500, messages.get(exc.code or 500, exc.description or "Bad request."))
        if exc.code == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unexpected error", extra=event("vote.unexpected_error"))
        return error_page(500, "Something went wrong on our side. Your vote may not have been recorded.")

    @app.before_request
    def start_timer():
        g.started = time.perf_counter()

    @app.before_request
    def assign_voter_id():
        """The voter's id from their cookie, or a new random one (the after_request hook sets the cookie).

        Only the ballot's two pages know voters: /healthz, /metrics and the rest skip the work."""
        if request.endpoint not in ("show", "cast"):
            return
        voter_id = request.cookies.get(VOTER_COOKIE, "")
        g.new_voter = not VOTER_ID.fullmatch(voter_id)
        g.voter_id = secrets.token_hex(16) if g.new_voter else voter_id

    @app.after_request
    def finish(response: Response) -> Response:
        if g.get("new_voter"):
            response.headers.add("Set-Cookie", cookies.value(VOTER_COOKIE, g.voter_id, request.is_secure))
        response.headers.update(HEADERS)
        if "started" in g:
            endpoint = request.endpoint or "unknown"
            LATENCY.labels(request.method, endpoint, str(response.status_code)).observe(time.perf_counter() - g.started)
        return response

    return app
