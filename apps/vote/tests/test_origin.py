"""Cross-site votes: a POST from a page on another site is refused and never queued."""

import pytest

from voting_contract.ballot import Ballot
from voting_contract.settings import RedisSettings
from voting_contract.wire import QUEUE, decode
from vote.app import create_app
from vote.origin import cross_site, origin_of
from vote.settings import Settings


@pytest.fixture
def client(redis_server, redis_client):
    settings = Settings(redis=RedisSettings("127.0.0.1", redis_server.port, None), ballot=Ballot.of("Cats", "Dogs"),
                        host="127.0.0.1", port=8080, workers=1)
    return create_app(settings).test_client()


def queued(redis_client):
    return [decode(m, ("a", "b")) for m in redis_client.lrange(QUEUE, 0, -1)]


# Flask's test client sends to http://localhost, as a browser on that ballot would.
SAME = [
    pytest.param({"Origin": "http://localhost"}, id="same-origin"),
    pytest.param({"Origin": "HTTP://LocalHost:80"}, id="same-origin-spelled-otherwise"),
    pytest.param({"Referer": "http://localhost/?x=1"}, id="referer-only-same"),
    pytest.param({}, id="neither-header"),
    pytest.param({"Origin": "https://localhost", "X-Forwarded-Proto": "https"}, id="forwarded-proto-https"),
    pytest.param({"Origin": "http://localhost:8080", "Host": "localhost:8080"}, id="host-with-port"),
]
CROSS = [
    pytest.param({"Origin": "https://evil.example"}, id="other-origin"),
    pytest.param({"Origin": "http://localhost:8081"}, id="other-port"),
    pytest.param({"Origin": "https://localhost"}, id="other-scheme"),
    pytest.param({"Origin": "http://localhost", "X-Forwarded-Proto": "https"}, id="http-page-behind-https-proxy"),
    pytest.param({"Origin": "null"}, id="null-origin"),
    pytest.param({"Referer": "https://evil.example/page.html"}, id="referer-only-other"),
    pytest.param({"Referer": "not a url"}, id="referer-unreadable"),
    pytest.param({"Origin": "https://evil.example", "Referer": "http://localhost/"}, id="origin-wins-over-referer"),
    # The app trusts X-Forwarded-Proto only: a forwarded host cannot make another site ours.
    pytest.param({"Origin": "http://evil.example", "X-Forwarded-Host": "evil.example"}, id="forwarded-host-ignored"),
]


@pytest.mark.parametrize("headers", SAME)
def test_a_vote_from_the_ballot_itself_counts(client, redis_client, headers):
    response = client.post("/", data={"vote": "a"}, headers=headers)
    assert response.status_code == 200
    assert [m.vote for m in queued(redis_client)] == ["a"]


@pytest.mark.parametrize("headers", CROSS)
def test_a_vote_from_another_site_is_refused_with_our_page_and_never_queued(client, redis_client, headers):
    response = client.post("/", data={"vote": "a"}, headers=headers)
    assert response.status_code == 403
    assert "this vote came from another site" in response.get_data(as_text=True)
    assert queued(redis_client) == []
    # No fresh voter id either: it would replace the voter's own in their browser.
    assert not [c for c in response.headers.getlist("Set-Cookie") if c.startswith("voter_id=")]


def test_refusals_are_counted(client):
    client.post("/", data={"vote": "b"}, headers={"Origin": "https://evil.example"})
    text = client.get("/metrics").get_data(as_text=True)
    assert "vote_cross_site_refused_total" in text


@pytest.mark.parametrize(("url", "expected"), [
    ("https://Example.COM", ("https", "example.com", 443)),
    ("http://example.com:8080/path?q", ("http", "example.com", 8080)),
    ("http://[::1]:5000", ("http", "::1", 5000)),
    ("null", None),
    ("", None),
    ("ftp://example.com", None),
    ("http://example.com:notaport", None),
    ("http://[::1", None),
])
def test_origin_of(url, expected):
    assert origin_of(url) == expected


def test_neither_header_cannot_be_judged_so_it_passes():
    assert cross_site(None, None, "https", "vote.example") is None
    assert cross_site("", "", "https", "vote.example") is None
    assert cross_site(None, "https://evil.example/", "https", "vote.example") == "Referer is not this ballot"
