"""Each service's real output: one JSON object a line with the shared fields, and never a voter id."""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import datetime

import httpx
import pytest

from devstack import stack
from voting_contract.wire import QUEUE

REQUIRED = ("time", "level", "service", "event", "message")
LEVELS = {"debug", "info", "warning", "error", "critical"}
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
EVENT = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")
# Two voters whose ids must never reach a log, whatever the service does with their votes.
VOTERS = ("0123456789abcdef" * 2, "0123456789abcdef"[::-1] * 2)  # well-formed ids: 32 hex digits


def problems(text: str, service: str, secrets: tuple[str, ...] = ()) -> list[str]:
    """What is wrong with a service's log: lines that are not our JSON, or that name a secret."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{service} line {number}: {line[:160]!r}"
        if any(secret in line for secret in secrets):
            found.append(f"{where} names a voter")
        try:
            fields = json.loads(line)
        except ValueError:
            found.append(f"{where} is not JSON")
            continue
        if type(fields) is not dict:
            found.append(f"{where} is not an object")
            continue
        missing = [name for name in REQUIRED if not isinstance(fields.get(name), str)]
        if missing:
            found.append(f"{where} lacks {missing}")
            continue
        if not RFC3339_UTC.fullmatch(fields["time"]):
            found.append(f"{where} has a time that is not RFC 3339 UTC")
        else:
            datetime.fromisoformat(fields["time"])
        if fields["level"] not in LEVELS:
            found.append(f"{where} has level {fields['level']!r}")
        if fields["service"] != service:
            found.append(f"{where} says it is from {fields['service']!r}")
        if not EVENT.fullmatch(fields["event"]):
            found.append(f"{where} has event {fields['event']!r}, not a short dotted name")
        if "trace_id" in fields and not re.fullmatch(r"(?!0{32})[0-9a-f]{32}", str(fields["trace_id"])):
            found.append(f"{where} has a malformed trace_id")
    return found


def events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("[2026-12-01 10:00:00 +0000] [12] [INFO] Booting worker with pid: 12", "is not JSON"),
        ('["a list"]', "is not an object"),
        ('{"time": "2026-12-01T10:00:00.000Z", "level": "info", "service": "vote", "message": "m"}', "lacks"),
        ('{"time": "2026-12-01 10:00:00", "level": "info", "service": "vote", "event": "vote.x", "message": "m"}',
         "not RFC 3339"),
        ('{"time": "2026-12-01T10:00:00+01:00", "level": "info", "service": "vote", "event": "vote.x", '
         '"message": "m"}', "not RFC 3339"),
        ('{"time": "2026-12-01T10:00:00.1Z", "level": "INFO", "service": "vote", "event": "vote.x", "message": "m"}',
         "has level"),
        ('{"time": "2026-12-01T10:00:00.1Z", "level": "info", "service": "worker", "event": "vote.x", '
         '"message": "m"}', "says it is from"),
        ('{"time": "2026-12-01T10:00:00.1Z", "level": "info", "service": "vote", "event": "Vote queued!", '
         '"message": "m"}', "not a short dotted name"),
        ('{"time": "2026-12-01T10:00:00.1Z", "level": "info", "service": "vote", "event": "vote.x", '
         '"message": "m", "trace_id": "00000000000000000000000000000000"}', "malformed trace_id"),
        ('{"time": "2026-12-01T10:00:00.1Z", "level": "info", "service": "vote", "event": "vote.queued", '
         f'"message": "queued a vote from {VOTERS[0]}"}}', "names a voter"),
    ],
)
def test_the_check_catches_a_broken_line(line, complaint):
    good = ('{"time": "2026-12-01T10:00:00.123Z", "level": "info", "service": "vote", "event": "vote.queued", '
            '"message": "queued a vote", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}')
    assert problems(good, "vote", VOTERS) == []
    found = problems(line, "vote", VOTERS)
    assert found and complaint in found[0], found


@pytest.fixture
def logged_stack(redis_server, postgres_server, redis_client, pg_conn, launch):
    """The three services at level debug (the most they write), each logging to its own file."""
    redis_env = stack.redis_env(redis_server.port)
    debug = {"LOG_LEVEL": "debug"}
    vote = launch(stack.vote(redis_env, workers=2, extra=debug))
    worker = launch(stack.worker(redis_env, postgres_server.env, extra=debug))
    result = launch(stack.result(postgres_server.env, extra=debug))
    return vote, worker, result


def test_every_line_of_every_service_is_json_with_the_fields_and_no_voter_id(logged_stack, redis_client):
    vote, worker, result = logged_stack
    for voter, choice in zip(VOTERS, "ab"):
        with httpx.Client(base_url=vote.url, cookies={"voter_id": voter}) as client:
            assert client.get("/").status_code == 200
            assert client.post("/", data={"vote": choice}).status_code == 200
    # One vote from another site (refused and logged), one message the worker must set aside:
    # neither may bring the voter's id into a log.
    assert httpx.post(vote.url + "/", data={"vote": "a"}, headers={"Origin": "https://elsewhere.example"},
                      cookies={"voter_id": VOTERS[0]}).status_code == 403
    redis_client.rpush(QUEUE, json.dumps({"voter_id": VOTERS[1], "vote": "z"}))
    deadline = time.monotonic() + 20
    while httpx.get(result.url + "/api/results").json()["total"] != 2:
        assert time.monotonic() < deadline, "the votes never reached the result page"
        time.sleep(0.1)
    while redis_client.llen("votes:dead") != 1:
        assert time.monotonic() < deadline, "the malformed message was never set aside"
        time.sleep(0.1)
    for service in (vote, worker, result):
        httpx.get(service.url + "/metrics")
        assert service.stop() == 0

    texts = {s.name: s.log_path.read_text() for s in (vote, worker, result)}
    for name, text in texts.items():
        assert text.strip(), f"{name} wrote nothing"
        assert problems(text, name, VOTERS) == []

    vote_events = events(texts["vote"])
    names = {e["event"] for e in vote_events}
    assert {"http.server", "http.access", "vote.queued", "vote.cross_site_refused"} <= names, names
    assert any("Booting worker" in e["message"] for e in vote_events)  # gunicorn's own lines
    queued = [e for e in vote_events if e["event"] == "vote.queued"]
    # Each voter appears as a short keyed hash: one per voter, and not a piece of the id.
    assert len({e["voter"] for e in queued}) == 2
    assert all(re.fullmatch(r"[0-9a-f]{12}", e["voter"]) and e["voter"] not in "".join(VOTERS) for e in queued)
    assert any(e["event"] == "http.access" and "POST / 200" in e["message"] for e in vote_events)

    worker_events = events(texts["worker"])
    names = [e["event"] for e in worker_events]
    assert {"worker.started", "worker.batch_committed", "worker.dead_lettered", "worker.stopping",
            "worker.stopped"} <= set(names), names
    committed = [e for e in worker_events if e["event"] == "worker.batch_committed"]
    assert sum(e["votes"] for e in committed) == 2 and sum(e["rows_upserted"] for e in committed) == 2
    assert [e["reason"] for e in worker_events if e["event"] == "worker.dead_lettered"] == ["unknown-vote"]

    result_events = events(texts["result"])
    names = {e["event"] for e in result_events}
    assert {"http.server", "http.access", "result.following", "result.stopping"} <= names, names
    assert any(e["event"] == "http.access" and "/api/results" in e["message"] for e in result_events)


def test_at_the_default_level_no_line_per_request(redis_server, redis_client, postgres_server, pg_conn, launch):
    """Access lines and vote.queued cost a line per vote: written only at level debug."""
    vote = launch(stack.vote(stack.redis_env(redis_server.port)))
    result = launch(stack.result(postgres_server.env))
    for _ in range(5):
        assert httpx.post(vote.url + "/", data={"vote": "a"}).status_code == 200
        assert httpx.get(result.url + "/api/results").status_code == 200
    for service in (vote, result):
        assert service.stop() == 0
        text = service.log_path.read_text()
        assert problems(text, service.name) == []
        names = {e["event"] for e in events(text)}
        assert "http.server" in names and not names & {"http.access", "vote.queued"}, names


def test_text_format_is_one_short_line_each(redis_server, redis_client, postgres_server, pg_conn, launch):
    """LOG_FORMAT=text, as `make up` sets it in a terminal."""
    text_env = {"LOG_FORMAT": "text", "LOG_LEVEL": "debug"}
    redis_env = stack.redis_env(redis_server.port)
    vote = launch(stack.vote(redis_env, extra=text_env))
    worker = launch(stack.worker(redis_env, postgres_server.env, extra=text_env))
    with httpx.Client(base_url=vote.url, cookies={"voter_id": VOTERS[0]}) as client:
        assert client.post("/", data={"vote": "b"}).status_code == 200
    deadline = time.monotonic() + 20
    while "worker.batch_committed" not in worker.log_path.read_text():
        assert time.monotonic() < deadline, worker.log_path.read_text()
        time.sleep(0.1)
    for service in (vote, worker):
        assert service.stop() == 0
        # A record that needs more than a line (gunicorn's settings at debug) goes on indented.
        lines = [line for line in service.log_path.read_text().splitlines() if not line.startswith("    ")]
        assert lines
        for line in lines:
            assert re.fullmatch(rf"\d\d:\d\d:\d\d (debug|info|warning|error|critical) +{service.name} [a-z0-9_.]+: .+",
                                line), line
            assert len(line) < 300 and VOTERS[0] not in line
    assert re.search(r" vote\.queued: queued a vote for b from voter [0-9a-f]{12}$", vote.log_path.read_text(), re.M)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_bad_setting_is_reported_in_the_log_format(log_format):
    svc = stack.worker(stack.redis_env(1), {"POSTGRES_USER": "u", "POSTGRES_PASSWORD": "p", "POSTGRES_DB": "d"},
                       extra={"WORKER_BATCH_SIZE": "many", "LOG_FORMAT": log_format})
    done = subprocess.run(svc.argv, env={**svc.env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    (line,) = done.stderr.splitlines()
    if log_format == "json":
        assert problems(line, "worker") == []
        assert json.loads(line)["event"] == "worker.misconfigured" and "WORKER_BATCH_SIZE" in line
    else:
        assert re.fullmatch(r"\d\d:\d\d:\d\d critical worker worker\.misconfigured: configuration error: "
                            r"WORKER_BATCH_SIZE .*", line), line
