"""The drills by name, each with its long and quick form, and how one is run into a row."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from .faults import postgres_outage, redis_restarts, websocket_viewers, worker_kills
from .hostile import MISCONFIGURATIONS, bad_http_input, bad_queue_input, hostile_values, misconfigured
from .lab import Lab
from .rollout import rollout_result, rollout_result_viewers, rollout_vote, rollout_worker
from .row import Row
from .security import prod_exposure, secrets_scan


@dataclass(frozen=True)
class Drill:
    """A drill's name (for --only), its function, and the arguments of its long and quick forms."""

    name: str
    run: Callable[..., Row]
    long: dict
    quick: dict


DRILLS = [
    Drill("worker-kill-1", worker_kills, {"workers": 1, "kills": 50}, {"workers": 1, "kills": 5, "voters": 200}),
    Drill("worker-kill-3", worker_kills, {"workers": 3, "kills": 50}, {"workers": 3, "kills": 5, "voters": 200}),
    Drill("redis-prod-sigterm", redis_restarts, {"mode": "prod", "how": "sigterm", "restarts": 5},
          {"mode": "prod", "how": "sigterm", "restarts": 2, "voters": 200, "surge_votes": 2000}),
    Drill("redis-prod-sigkill", redis_restarts, {"mode": "prod", "how": "sigkill", "restarts": 5},
          {"mode": "prod", "how": "sigkill", "restarts": 2, "voters": 200, "surge_votes": 2000}),
    Drill("redis-dev-sigterm", redis_restarts, {"mode": "dev", "how": "sigterm", "restarts": 5},
          {"mode": "dev", "how": "sigterm", "restarts": 2, "voters": 200, "surge_votes": 2000}),
    Drill("redis-prod-worker-down", redis_restarts, {"mode": "prod", "how": "sigterm", "restarts": 3,
                                                     "worker_down": True},
          {"mode": "prod", "how": "sigterm", "restarts": 1, "voters": 200, "surge_votes": 2000, "worker_down": True}),
    Drill("redis-dev-worker-down", redis_restarts, {"mode": "dev", "how": "sigterm", "restarts": 3,
                                                    "worker_down": True},
          {"mode": "dev", "how": "sigterm", "restarts": 1, "voters": 200, "surge_votes": 2000, "worker_down": True}),
    Drill("postgres-outage", postgres_outage, {"outage": 30.0}, {"outage": 3.0, "voters": 200}),
    Drill("websocket-viewers", websocket_viewers, {"viewers": 500, "phase": 20.0},
          {"viewers": 100, "phase": 3.0, "voters": 200}),
    Drill("rollout-worker", rollout_worker, {}, {"backlog": 10_000}),
    Drill("rollout-vote", rollout_vote, {"slow": 6, "voters": 300}, {"slow": 4, "voters": 100}),
    Drill("rollout-result", rollout_result, {"viewers": 20}, {"viewers": 0}),
    Drill("rollout-result-viewers", rollout_result_viewers, {"viewers": 20}, {"viewers": 5}),
    Drill("bad-http", bad_http_input, {"requests": 3000}, {"requests": 300}),
    Drill("bad-queue", bad_queue_input, {"messages": 3000}, {"messages": 300}),
    Drill("hostile-values", hostile_values, {}, {}),
    Drill("misconfigured", misconfigured, {}, {"cases": MISCONFIGURATIONS[::3]}),
    Drill("prod-exposure", prod_exposure, {}, {}),
    Drill("secrets-scan", secrets_scan, {}, {}),
]


def run_drill(lab: Lab, drill: Drill, *, quick: bool = False, **overrides) -> Row:
    """Run one drill; a crash of the drill itself is a failed row, never a silent pass."""
    kwargs = {**(drill.quick if quick else drill.long), **overrides}
    started = time.monotonic()
    try:
        row = drill.run(lab, **kwargs)
    except Exception as exc:  # noqa: BLE001 (reported in the table)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        row = Row(drill.name, "drill did not finish", f"{type(exc).__name__}: {first}"[:300], ok=False,
                  problems=[f"{type(exc).__name__}: {exc}"])
    finally:
        lab.cleanup()
    row.seconds = round(time.monotonic() - started, 1)
    # A shared machine's load explains some timings: kept with the row.
    row.counts["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return row

