"""Many websocket viewers from one process: a bare client, a few hundred bytes and a few
microseconds a message, so that ten thousand of them measure the server, not the client."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time
from collections.abc import Callable

TOTAL = re.compile(rb'"total":(\d+)')


class Viewer(asyncio.Protocol):
    """One websocket to /ws: keeps the last total it was sent and calls `on_total` with each."""

    def __init__(self, host: str, port: int, on_total: Callable[[int, float], None]) -> None:
        self.request = (f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n").encode()
        self.on_total = on_total
        self.buffer = b""
        self.upgraded = False
        self.total = -1
        self.opened = asyncio.get_running_loop().create_future()
        self.closed = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed before the upgrade"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace")))
                self.transport.close()
                return
            self.upgraded, self.buffer = True, rest
            self.opened.set_result(None)
        self._frames()

    def _frames(self) -> None:
        now = time.perf_counter()
        while len(self.buffer) >= 2:
            opcode, length, start = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
            if length == 126:
                if len(self.buffer) < 4:
                    return
                length, start = int.from_bytes(self.buffer[2:4], "big"), 4
            elif length == 127:
                if len(self.buffer) < 10:
                    return
                length, start = int.from_bytes(self.buffer[2:10], "big"), 10
            if len(self.buffer) < start + length:
                return
            payload, self.buffer = self.buffer[start:start + length], self.buffer[start + length:]
            if opcode == 1 and (found := TOTAL.search(payload)):
                self.total = int(found.group(1))
                self.on_total(self.total, now)
            elif opcode == 8:
                self.transport.close()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            # A masked close frame (clients must mask), code 1000.
            mask = os.urandom(4)
            body = bytes(b ^ mask[i % 4] for i, b in enumerate((1000).to_bytes(2, "big")))
            self.transport.write(bytes([0x88, 0x80 | 2]) + mask + body)
            self.transport.close()


async def open_viewers(host: str, port: int, count: int, on_total: Callable[[int, float], None],
                       batch: int = 500) -> list[Viewer]:
    """Open `count` viewers, `batch` at a time, each upgraded and sent its first tallies."""
    loop = asyncio.get_running_loop()
    viewers: list[Viewer] = []
    while len(viewers) < count:
        made = await asyncio.gather(*(loop.create_connection(lambda: Viewer(host, port, on_total), host, port)
                                      for _ in range(min(batch, count - len(viewers)))))
        fresh = [protocol for _, protocol in made]
        await asyncio.gather(*(v.opened for v in fresh))
        viewers += fresh
    deadline = time.monotonic() + 60
    while any(v.total < 0 for v in viewers) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return viewers
