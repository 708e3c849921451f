"""Property-based tests of `POST /`: any bytes, any form, any cookie get a clear answer, never a 500."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape

from voting_contract.ballot import NOT_ON_BALLOT, Ballot
from voting_contract.settings import RedisSettings
from voting_contract.wire import QUEUE, decode
from vote.app import create_app
from vote.settings import Settings

HOSTILE = ["<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "'; DROP TABLE votes; --", "{{7*7}}",
           "a", "b", "", " a", "A"]
header_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=300)
cookies = st.none() | header_text | st.sampled_from(HOSTILE).map(lambda v: f"voter_id={v}") | st.builds(
    lambda a, b: f"voter_id={a}; vote={b}", st.sampled_from(["0" * 32, "f" * 32, "F" * 32, "x" * 5000]) | header_text,
    st.sampled_from(HOSTILE) | header_text)
forms = st.dictionaries(st.sampled_from(["vote", "voter_id", "x"]) | st.text(max_size=10),
                        st.sampled_from(HOSTILE) | st.text(max_size=100), max_size=4)
content_types = st.sampled_from(["application/x-www-form-urlencoded", "multipart/form-data",
                                 "multipart/form-data; boundary=zz", "application/json", "text/plain", ""])


def settings_for(port: int, a: str = "Cats", b: str = "Dogs") -> Settings:
    return Settings(redis=RedisSettings("127.0.0.1", port, None), ballot=Ballot.of(a, b), host="127.0.0.1",
                    port=8080, workers=1)


@pytest.fixture
def app(redis_server, redis_client):
    return create_app(settings_for(redis_server.port))


def check(response, redis_client, before: int) -> None:
    """A clear answer: 200 with one well-formed vote queued, or a 4xx with nothing queued."""
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.status_code
    queued = redis_client.llen(QUEUE) - before
    if response.status_code == 200:
        assert queued == 1
        vote = decode(redis_client.lindex(QUEUE, -1), ("a", "b"))
        assert vote.vote in ("a", "b") and re.fullmatch(r"[0-9a-f]{32}", vote.voter_id)
    else:
        assert queued == 0
    for value in HOSTILE[:2]:
        assert value not in response.get_data(as_text=True)


SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@settings(max_examples=300, deadline=None, suppress_health_check=SUPPRESS)
@given(form=forms, cookie=cookies)
def test_any_form_and_cookie(app, redis_client, form, cookie):
    client = app.test_client()
    before = redis_client.llen(QUEUE)
    headers = {"Cookie": cookie} if cookie is not None else {}
    check(client.post("/", data=form, headers=headers), redis_client, before)


@settings(max_examples=300, deadline=None, suppress_health_check=SUPPRESS)
@given(body=st.binary(max_size=6000), content_type=content_types, cookie=cookies)
def test_any_bytes(app, redis_client, body, content_type, cookie):
    client = app.test_client()
    before = redis_client.llen(QUEUE)
    headers = {"Cookie": cookie} if cookie is not None else {}
    check(client.post("/", data=body, content_type=content_type, headers=headers), redis_client, before)


@settings(max_examples=200, deadline=None, suppress_health_check=SUPPRESS)
@given(a=st.builds(lambda x, y: f"{x}<i>{y}", st.text(max_size=28), st.text(max_size=28)).filter(str.isprintable),
       b=st.sampled_from(HOSTILE[:4]))
def test_labels_are_escaped_wherever_they_appear(redis_server, a, b):
    client = create_app(settings_for(redis_server.port, a, b)).test_client()
    for response in (client.get("/"), client.post("/", data={"vote": NOT_ON_BALLOT}), client.get("/nowhere")):
        page = response.get_data(as_text=True)
        for label in (a, b):
            assert str(escape(label)) in page
            if "<" in label:
                assert label not in page  # markup from a label never reaches the page as markup
