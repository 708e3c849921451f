"""The drills' vote streams: every vote not acknowledged is kept with its reason and timing."""

from __future__ import annotations

import ast
import importlib.util
import time
from pathlib import Path

import pytest

from devstack import stack
from devstack.load import CLIENT_KEEPALIVE_SECONDS, Miss, VoteStream, misses_text, page_kind, reasons_text
from devstack.servers import free_port


def wait_for(condition, limit: float = 30.0) -> None:
    """Until condition() holds; a stream that never gets there fails the test instead of hanging it."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "the stream recorded nothing"
        time.sleep(0.01)


def gunicorn_keepalive() -> float:
    """vote's gunicorn `keepalive`, read from its config file without running it."""
    spec = importlib.util.find_spec("vote")
    path = Path(next(iter(spec.submodule_search_locations))) / "gunicorn_conf.py"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "keepalive" for t in node.targets):
            return float(ast.literal_eval(node.value))
    raise AssertionError(f"no keepalive in {path}")


def test_voters_let_a_connection_go_well_before_gunicorn_closes_it():
    # gunicorn looks for expired connections about once a second: keep more than that apart.
    assert CLIENT_KEEPALIVE_SECONDS < gunicorn_keepalive() - 1


@pytest.mark.parametrize(("text", "kind"), [
    ("<p>Your vote was not recorded: the ballot box is unavailable.</p>", "not recorded"),
    ("<p>We could not confirm your vote: the ballot box stopped answering.</p>", "could not confirm"),
    ("<p>Your vote was not counted: this vote came from another site.</p>", "cross-site"),
    ("<html>502 Bad Gateway</html>", "other"),
])
def test_error_pages_are_told_apart(text, kind):
    assert page_kind(text) == kind


def test_misses_are_grouped_and_timed():
    misses = [Miss("503 not recorded", "", 0.01, 3.0, 0.5), Miss("ReadTimeout", "timed out", 10.0, 4.2, None),
              Miss("503 not recorded", "", 0.02, 3.1, 1.0)]
    assert reasons_text(misses) == "2 x 503 not recorded, 1 x ReadTimeout"
    assert reasons_text([]) == "none"
    text = misses_text(misses, limit=2)
    assert "after 10.000s at 4.2s: timed out" in text and text.endswith("; ...]")


def test_a_stream_records_why_votes_were_refused(launch):
    vote = launch(stack.vote(stack.redis_env(free_port())))  # no Redis there
    stream = VoteStream(vote.url, voters=5, threads=1).start()
    try:
        wait_for(lambda: len(stream.misses) >= 3)
    finally:
        stream.stop()
    assert set(stream.reasons()) == {"503 not recorded"}
    assert stream.acknowledged == 0 and stream.refused == len(stream.misses)


def test_a_stream_records_client_side_failures():
    stream = VoteStream(f"http://127.0.0.1:{free_port()}", voters=3, threads=1).start()  # nothing listens
    try:
        wait_for(lambda: len(stream.misses) >= 2)
    finally:
        stream.stop()
    assert set(stream.reasons()) == {"ConnectError"}
    assert all(m.detail and m.at >= m.elapsed >= 0 for m in stream.misses)
