"""Entry point: `result-server` (or `python -m result`), hypercorn serving the app.

hypercorn is started from here rather than from its command line so that SIGTERM can close
the websockets first: browsers then reconnect to another pod at once, instead of hanging on
until the drain timeout cuts them off.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import sys

import hypercorn.protocol.ws_stream
from hypercorn.asyncio import serve
from hypercorn.config import Config
from wsproto.extensions import PerMessageDeflate

from voting_contract import logs
from voting_contract.settings import load

from .app import create_app
from .settings import Settings

log = logging.getLogger("result")


class NoDeflate(PerMessageDeflate):
    """Declines permessage-deflate, which hypercorn 0.18 offers to every websocket with no setting.

    Our messages are a few hundred bytes, and a deflate context costs about 100 KB per open
    websocket (a thousand viewers: 100 MB) plus compressing each update once per viewer.
    """

    def accept(self, offer: str) -> None:
        return None


def decline_compression() -> None:
    hypercorn.protocol.ws_stream.PerMessageDeflate = NoDeflate


async def serve_until_signalled(settings: Settings) -> None:
    decline_compression()
    app = create_app(settings)
    config = Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    # The pod's terminationGracePeriodSeconds (30 s) leaves room for this drain.
    config.graceful_timeout = 20
    # hypercorn's own lines go through the services' format (voting_contract.logs); its access
    # lines only at level debug, where the logger is enabled.
    access = logging.getLogger("hypercorn.access")
    config.accesslog = access if access.isEnabledFor(logging.INFO) else None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.access_log_format = '%(m)s %(U)s %(s)s %(B)s bytes %(L)ss'
    stopping = asyncio.Event()

    def on_signal(signum: int) -> None:
        log.info("received %s: closing websockets, draining requests", signal.Signals(signum).name,
                 extra=logs.event("result.stopping"))
        app.extensions["tally_feed"].close_viewers()
        stopping.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    await serve(app, config, shutdown_trigger=stopping.wait)


def raise_open_files_limit() -> None:
    """Each viewer holds a socket: lift the soft file limit to the hard one (often 1,024 -> 1M)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> int:
    settings = load(Settings, "result")
    logs.configure("result", settings.log)
    raise_open_files_limit()
    asyncio.run(serve_until_signalled(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
