"""The vote app through Flask's test client, against a real Redis."""

import re

import pytest
import redis

from devstack.servers import free_port
from voting_contract.ballot import IDS, NOT_ON_BALLOT, Ballot
from voting_contract.settings import RedisSettings
from voting_contract.wire import QUEUE, decode
from vote.app import create_app, never_sent
from vote.settings import Settings


def settings_for(port: int, *labels: str) -> Settings:
    return Settings(
        redis=RedisSettings("127.0.0.1", port, None), ballot=Ballot.of(*(labels or ("Cats", "Dogs"))),
        host="127.0.0.1", port=8080, workers=1,
    )


@pytest.fixture
def client(redis_server, redis_client):
    return create_app(settings_for(redis_server.port)).test_client()


@pytest.fixture
def down_client():
    """An app whose Redis is not there."""
    return create_app(settings_for(free_port())).test_client()


def queued(redis_client):
    return [decode(m, tuple(IDS)) for m in redis_client.lrange(QUEUE, 0, -1)]  # any id a ballot can have


def test_the_ballot_names_both_options_and_the_instance(client):
    page = client.get("/").get_data(as_text=True)
    assert "Cats" in page and "Dogs" in page
    assert re.search(r'id="instance">[^<]+<', page)


def test_the_page_links_the_shared_palette_and_it_is_served(client):
    page = client.get("/").get_data(as_text=True)
    assert '<link rel="stylesheet" href="/ballot.css">' in page
    sheet = client.get("/ballot.css")
    assert sheet.status_code == 200 and sheet.mimetype == "text/css"
    assert ".a { --option: var(--a); }" in sheet.get_data(as_text=True)


def test_a_new_voter_gets_a_long_lived_private_random_id(client):
    first = client.get("/").headers.getlist("Set-Cookie")
    (cookie,) = [c for c in first if c.startswith("voter_id=")]
    voter_id = cookie.split(";")[0].split("=", 1)[1]
    assert re.fullmatch(r"[0-9a-f]{32}", voter_id)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert int(re.search(r"Max-Age=(\d+)", cookie).group(1)) >= 365 * 24 * 3600
    # A returning voter keeps the id; another browser gets another one.
    assert not [c for c in client.get("/").headers.getlist("Set-Cookie") if c.startswith("voter_id=")]
    client.delete_cookie("voter_id")
    client.get("/")
    assert client.get_cookie("voter_id").value not in ("", voter_id)


def test_a_vote_is_queued_under_the_voters_id_and_shown_back(client, redis_client):
    client.get("/")
    voter_id = client.get_cookie("voter_id").value
    response = client.post("/", data={"vote": "b"})
    assert response.status_code == 200
    assert "Your vote for Dogs is in." in response.get_data(as_text=True)
    (message,) = queued(redis_client)
    assert (message.voter_id, message.vote) == (voter_id, "b")
    assert message.seq is not None and message.ts is not None
    # The choice is shown on the next visit, and a change of mind keeps the same voter.
    assert 'class="option b chosen"' in client.get("/").get_data(as_text=True)
    client.post("/", data={"vote": "a"})
    assert [(m.voter_id, m.vote) for m in queued(redis_client)] == [(voter_id, "b"), (voter_id, "a")]


@pytest.mark.parametrize("bad", ["nope", "12345", "Z" * 32, "0" * 31, "0" * 33, '"><script>'])
def test_a_malformed_voter_id_is_replaced(client, redis_client, bad):
    client.set_cookie("voter_id", bad)
    response = client.post("/", data={"vote": "a"})
    assert response.status_code == 200
    (message,) = queued(redis_client)
    assert re.fullmatch(r"[0-9a-f]{32}", message.voter_id)
    assert f"voter_id={message.voter_id}" in " ".join(response.headers.getlist("Set-Cookie"))


@pytest.mark.parametrize("form", [{}, {"vote": NOT_ON_BALLOT}, {"vote": ""}, {"vote": "A"}, {"vote": "ab"},
                                  {"other": "a"}])
def test_anything_but_a_or_b_is_refused_and_nothing_is_queued(client, redis_client, form):
    response = client.post("/", data=form)
    assert response.status_code == 400
    assert "not a choice on this ballot" in response.get_data(as_text=True)
    assert queued(redis_client) == []


def test_an_oversized_body_is_refused(client, redis_client):
    response = client.post("/", data={"vote": "a", "pad": "x" * 10_000})
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)
    assert queued(redis_client) == []


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_refused(client, method):
    response = client.open("/", method=method)
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]


def test_when_redis_is_down_the_voter_is_told_the_vote_was_not_recorded(down_client):
    response = down_client.post("/", data={"vote": "a"})
    assert response.status_code == 503
    assert "Your vote was not recorded" in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


def redis_up(client) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    return float(re.search(r"^vote_redis_up (\S+)$", text, re.M).group(1))


def test_without_redis_it_stays_ready_serves_the_ballot_and_says_redis_is_down(down_client):
    """Readiness must not follow Redis: our "not recorded" page beats the proxy's bare 503."""
    assert down_client.get("/healthz").status_code == 200
    assert down_client.get("/readyz").status_code == 200
    ballot = down_client.get("/")
    assert ballot.status_code == 200 and "Cats" in ballot.get_data(as_text=True)
    assert redis_up(down_client) == 0


def test_with_redis_the_metric_says_it_is_up(client):
    assert client.get("/readyz").status_code == 200
    assert redis_up(client) == 1


def test_labels_are_escaped(redis_server, redis_client):
    app = create_app(settings_for(redis_server.port, "<script>alert(1)</script>", "Tom & Jerry"))
    page = app.test_client().get("/").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "Tom &amp; Jerry" in page


def test_security_headers_are_on_every_answer(client):
    for response in (client.get("/"), client.post("/", data={}), client.get("/nowhere")):
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_metrics_count_votes_by_option(client):
    def cast(option: str) -> float:
        text = client.get("/metrics").get_data(as_text=True)
        found = re.search(rf'^vote_votes_cast_total\{{option="{option}"\}} (\S+)$', text, re.M)
        return float(found.group(1)) if found else 0.0

    before = cast("a")
    client.post("/", data={"vote": "a"})
    client.post("/", data={"vote": "a"})
    assert cast("a") == before + 2
    assert "vote_request_duration_seconds_bucket" in client.get("/metrics").get_data(as_text=True)


@pytest.mark.parametrize(
    ("error", "certainly_not_queued"),
    [
        (redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), True),
        (redis.ResponseError("Error running script (call to f_0): @user_script:6: @user_script: 6: "
                             "-OOM command not allowed when used memory > 'maxmemory'."), True),
        (redis.ConnectionError("Error 111 connecting to redis:6379. Connection refused."), True),
        (redis.ConnectionError("Connection closed by server."), False),
        (redis.TimeoutError("Timeout reading from socket"), False),
        (redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), False),
    ],
)
def test_a_vote_is_called_not_recorded_only_when_it_certainly_was_not_queued(error, certainly_not_queued):
    assert never_sent(error) is certainly_not_queued


def test_a_ballot_of_four_shows_four_buttons_and_takes_the_fourth(redis_server, redis_client):
    client = create_app(settings_for(redis_server.port, "Cats", "Dogs", "Birds", "Fish")).test_client()
    page = client.get("/").get_data(as_text=True)
    assert re.findall(r'<button name="vote" value="(\w)"', page) == ["a", "b", "c", "d"]
    assert "<title>Cats, Dogs, Birds or Fish?</title>" in page
    response = client.post("/", data={"vote": "d"})
    assert response.status_code == 200 and "Your vote for Fish is in." in response.get_data(as_text=True)
    assert client.get("/").get_data(as_text=True).count('aria-pressed="true"') == 1
    assert client.post("/", data={"vote": "e"}).status_code == 400  # the id after the last one
    assert [m.vote for m in queued(redis_client)] == ["d"]
