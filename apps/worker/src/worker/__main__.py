"""Entry point: `vote-worker` or `python -m worker`."""

from __future__ import annotations

import sys

from voting_contract import logs
from voting_contract.settings import load

from . import health
from .service import Worker
from .settings import Settings


def main() -> int:
    settings = load(Settings, "worker")
    logs.configure("worker", settings.log)
    worker = Worker(settings)
    worker.install_signal_handlers()
    health.serve(settings.host, settings.metrics_port, worker.alive, worker.ready)
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
