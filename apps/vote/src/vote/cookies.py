"""Set-Cookie values exactly as werkzeug's dump_cookie writes them, built once a second.

dump_cookie formats an Expires date and checks every attribute on each call; a vote sets two
cookies, and that was a tenth of the CPU a vote cost. Our values are ids and option names that
need no quoting, so each second the header is made once with a placeholder and filled in after.
"""

from __future__ import annotations

import re
import time

from werkzeug.http import dump_cookie

PLACEHOLDER = "0placeholder0"
PLAIN = re.compile(r"[A-Za-z0-9_.-]{1,255}")  # values dump_cookie writes as they are, unquoted


class CookieWriter:
    """Set-Cookie header values for long-lived, HttpOnly, SameSite=Lax cookies."""

    def __init__(self, max_age: int) -> None:
        self.max_age = max_age
        self._second = -1
        self._templates: dict[tuple[str, bool], tuple[str, str]] = {}

    def _dump(self, name: str, value: str, secure: bool) -> str:
        return dump_cookie(name, value, max_age=self.max_age, httponly=True, samesite="Lax", secure=secure)

    def value(self, name: str, value: str, secure: bool) -> str:
        if not PLAIN.fullmatch(value):
            return self._dump(name, value, secure)
        now = int(time.time())
        if now != self._second:
            # Expires moves with the clock; the rest never changes. Threads may race here:
            # the worst case is one template built twice.
            self._templates = {}
            self._second = now
        template = self._templates.get((name, secure))
        if template is None:
            head, _, tail = self._dump(name, PLACEHOLDER, secure).partition(PLACEHOLDER)
            template = self._templates[(name, secure)] = (head, tail)
        return template[0] + value + template[1]
