"""Whether a POST came from the ballot itself or from a page on another site. Pure."""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a URL or an Origin value, default ports filled in; None if it has none."""
    try:
        parts = urlsplit(url.strip())
        scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:  # a port that is not a number, an unclosed IPv6 bracket
        return None
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return scheme, host, port if port is not None else DEFAULT_PORTS[scheme]


def cross_site(origin: str | None, referer: str | None, own_scheme: str, own_host: str) -> str | None:
    """Why a POST is not from our own pages, or None when it is (or cannot be told).

    Browsers send Origin with every form POST; `Origin: null` (sandboxed frames, some
    redirects) counts as foreign. Without Origin, the Referer's origin is judged instead.
    With neither (curl, old clients), there is nothing to judge, and the POST goes through.
    `own_host` is the Host the request was sent to, as the proxy passes it on.
    """
    if origin:
        theirs, header = origin_of(origin), "Origin"
    elif referer:
        theirs, header = origin_of(referer), "Referer"
    else:
        return None
    if theirs is None or theirs != origin_of(f"{own_scheme}://{own_host}"):
        return f"{header} is not this ballot"
    return None
