"""What the two web services share: response headers, latency buckets and the ballot's stylesheet."""

from __future__ import annotations

import functools
from importlib.resources import files

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


def security_headers(form_action: str) -> dict[str, str]:
    """Headers for every answer: assets only from ourselves, no framing, no sniffing."""
    return {
        "Content-Security-Policy": (
            f"default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action {form_action}; "
            "frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
    }


@functools.cache
def ballot_stylesheet() -> bytes:
    """static/ballot.css: the palette (one colour per option id) and the page both services draw."""
    return files("voting_contract").joinpath("static", "ballot.css").read_bytes()
