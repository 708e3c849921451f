"""`/ws` on plain ASGI, in front of Quart: each viewer's websocket fed from the one TallyFeed.

Quart gives every websocket a request context, a Websocket object with a copy of its headers,
two tasks and two queues: about 20 KiB a viewer, 200 MB at 10,000 viewers. A viewer needs
none of it: the accept, the current tallies, then each change. So this middleware answers
`/ws` itself and hands every other request to Quart unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .feed import TallyFeed

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[Any]]


class LiveTallies:
    def __init__(self, app: ASGIApp, feed: TallyFeed, path: str = "/ws") -> None:
        self.app = app
        self.feed = feed
        self.path = path

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "websocket" or scope["path"] != self.path:
            return await self.app(scope, receive, send)
        if self.feed.closing:
            return  # shutting down: never accepted, the browser reconnects to another pod
        await send({"type": "websocket.accept"})
        with self.feed.viewer(send):
            # A viewer has nothing to say; wait for it to leave, ignoring anything it sends
            # (and the "websocket.connect" that servers put first).
            while (await receive())["type"] != "websocket.disconnect":
                pass
