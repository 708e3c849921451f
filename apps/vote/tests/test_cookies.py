"""The cookie writer says exactly what werkzeug's dump_cookie says, for plain and odd values."""

import pytest
from werkzeug.http import dump_cookie

from vote.cookies import CookieWriter

MAX_AGE = 400 * 24 * 3600


def werkzeug(name: str, value: str, secure: bool) -> str:
    return dump_cookie(name, value, max_age=MAX_AGE, httponly=True, samesite="Lax", secure=secure)


@pytest.mark.parametrize("value", ["0" * 31 + "f", "a", "b", "cats-and_dogs.2", 'needs "quoting"; yes'])
@pytest.mark.parametrize("secure", [False, True])
def test_same_header_as_dump_cookie(value, secure):
    writer = CookieWriter(MAX_AGE)
    for _ in range(3):  # the first call builds the second's template, the others reuse it
        ours, theirs = writer.value("voter_id", value, secure), werkzeug("voter_id", value, secure)
        if ours != theirs:  # the clock may tick between the two calls: once more, then it must agree
            ours, theirs = writer.value("voter_id", value, secure), werkzeug("voter_id", value, secure)
        assert ours == theirs


def test_the_comparison_sees_a_different_cookie():
    """The check above can fail: a writer with another lifetime does not match werkzeug's header."""
    assert CookieWriter(MAX_AGE - 1).value("voter_id", "a", False) != werkzeug("voter_id", "a", False)
