"""`make up`: the whole app on this machine, until Ctrl-C.

Redis and PostgreSQL are embedded servers keeping their data under .data/, so votes survive a
restart; set REDIS_HOST or POSTGRES_HOST (with the usual POSTGRES_* variables) to use servers
of your own instead. Service logs are short text lines when this runs in a terminal (JSON, as
in a cluster, otherwise or with LOG_FORMAT=json); OTEL_EXPORTER_OTLP_ENDPOINT sends traces to
a collector.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from voting_contract.settings import PostgresSettings, SettingsError, env_int

from . import stack
from .servers import PostgresServer, RedisServer


def stop_with_parent() -> None:
    """Get SIGTERM when the parent (make) dies, so `kill <make>` also stops everything (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def service_env(env: Mapping[str, str], *, terminal: bool) -> dict[str, str]:
    """What the runner adds to the services' environment: text logs for a person at a terminal."""
    if terminal and not env.get("LOG_FORMAT"):
        return {"LOG_FORMAT": "text"}
    return {}


def main() -> int:
    env = os.environ
    try:
        vote_port = env_int(env, "VOTE_PORT", 5000, low=1, high=65535)
        result_port = env_int(env, "RESULT_PORT", 5001, low=1, high=65535)
        worker_port = env_int(env, "WORKER_METRICS_PORT", 5002, low=1, high=65535)
    except SettingsError as exc:
        print(f"voting-up: {exc}", file=sys.stderr)
        return 2
    data = Path(env.get("DATA_DIR", ".data")).resolve()
    logs = data / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stop_with_parent()

    with contextlib.ExitStack() as cleanup:
        if env.get("REDIS_HOST"):
            redis_env = {"REDIS_HOST": env["REDIS_HOST"], "REDIS_PORT": env.get("REDIS_PORT", "6379")}
            print(f"using Redis at {redis_env['REDIS_HOST']}:{redis_env['REDIS_PORT']}")
        else:
            redis = cleanup.enter_context(RedisServer(data / "redis", appendonly=True))
            redis_env = stack.redis_env(redis.port)
            print(f"Redis {redis.url} (data in {redis.datadir})")
        if env.get("POSTGRES_HOST"):
            try:
                pg = PostgresSettings.from_env(env)
            except SettingsError as exc:
                print(f"voting-up: {exc}", file=sys.stderr)
                return 2
            pg_env = {k: env[k] for k in env if k.startswith("POSTGRES_")}
            print(f"using PostgreSQL at {pg.host}:{pg.port}")
        else:
            postgres = cleanup.enter_context(PostgresServer(data / "postgres"))
            pg_env = postgres.env
            print(f"PostgreSQL on 127.0.0.1:{postgres.port} (data in {postgres.datadir})")

        extra = service_env(env, terminal=sys.stdout.isatty())
        services = [
            stack.worker(redis_env, pg_env, metrics_port=worker_port, extra=extra, log_path=logs / "worker.log"),
            stack.vote(redis_env, port=vote_port, extra=extra, log_path=logs / "vote.log"),
            stack.result(pg_env, port=result_port, extra=extra, log_path=logs / "result.log"),
        ]
        for service in services:
            cleanup.callback(service.stop)
            service.start()
        try:
            for service in services:
                service.wait_ready(60)
        except (RuntimeError, TimeoutError) as exc:
            print(f"voting-up: {exc}", file=sys.stderr)
            return 1
        print()
        print(f"  vote:   http://127.0.0.1:{vote_port}")
        print(f"  result: http://127.0.0.1:{result_port}")
        print("  metrics:")
        for service in sorted(services, key=lambda s: ("vote", "worker", "result").index(s.name)):
            print(f"    {service.name + ':':<8}{service.url}/metrics")
        print(f"  logs:   {logs}")
        tracing = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        print(f"  traces: {'to ' + tracing if tracing else 'off (set OTEL_EXPORTER_OTLP_ENDPOINT to send them)'}")
        print("\nCtrl-C stops everything.", flush=True)
        while not stopping:
            for service in services:
                if not service.running():
                    print(f"voting-up: {service.name} exited ({service.proc.returncode}); stopping",
                          file=sys.stderr)
                    return 1
            time.sleep(0.5)
        print("stopping…", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
