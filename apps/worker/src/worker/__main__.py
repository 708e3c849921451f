"""Entry point: `vote-worker` or `python -m worker`."""

from __future__ import annotations

import logging
import sys

from voting_contract.settings import load

from . import health
from .service import Worker
from .settings import Settings


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load(Settings, "worker")
    worker = Worker(settings)
    worker.install_signal_handlers()
    health.serve(settings.host, settings.metrics_port, worker.alive, worker.ready)
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
