"""Figure 2: vote's `POST /` against `GET /healthz` of the same process, in turns, with wrk."""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
from pathlib import Path

import redis

from voting_contract.wire import QUEUE

from .. import stack
from ..servers import RedisServer
from .figures import Figure, Sizes, Turns
from .memory import MemoryWatch

WRK_POST = 'wrk.method = "POST"\nwrk.body = "vote=a"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
CONNECTIONS = 32


def _seconds(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def need_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is needed for the vote figures (Debian: apt-get install wrk)")


def wrk(url: str, seconds: float, connections: int, script: Path | None = None) -> dict:
    """One wrk run: requests/s, latency percentiles (s) and the count of non-2xx answers."""
    argv = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", url]
    if script:
        argv[1:1] = ["-s", str(script)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    percent = {int(p): _seconds(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": percent[50], "p75": percent[75], "p90": percent[90], "p99": percent[99],
        "non2xx": int(errors.group(1)) if errors else 0,
    }


def post_script(tmp: Path) -> Path:
    script = tmp / "post.lua"
    script.write_text(WRK_POST)
    return script


def bench_vote(r: RedisServer, sizes: Sizes, logs: Path, tmp: Path) -> tuple[list[Figure], int]:
    need_wrk()
    script = post_script(tmp)
    # One gunicorn process per pod, as the manifests run it (the CPU limit is half a core).
    vote = stack.vote(stack.redis_env(r.port), workers=1, log_path=logs / "bench-vote.log").start().wait_ready()
    client = redis.Redis.from_url(r.url)
    posts, gets, relaxed = [], [], []
    try:
        with MemoryWatch(vote) as memory:
            for _ in range(sizes.http_repeats):
                gets.append(wrk(vote.url + "/healthz", sizes.http_seconds, CONNECTIONS))
                posts.append(wrk(vote.url + "/", sizes.http_seconds, CONNECTIONS, script))
                # The same with Redis syncing its append-only file once a second instead of
                # before every reply: what prod's stricter setting costs, side by side.
                client.config_set("appendfsync", "everysec")
                relaxed.append(wrk(vote.url + "/", sizes.http_seconds, CONNECTIONS, script))
                client.config_set("appendfsync", "always")
                client.delete(QUEUE)  # no worker here: keep the queue from growing across repeats
        peak = memory.peak
    finally:
        vote.stop()
    rps = Turns([p["rps"] for p in posts], [g["rps"] for g in gets])
    relaxed_rps = Turns([p["rps"] for p in relaxed], [g["rps"] for g in gets])
    p50 = Turns([p["p50"] * 1000 for p in posts], [g["p50"] * 1000 for g in gets])
    p99 = Turns([p["p99"] * 1000 for p in posts], [g["p99"] * 1000 for g in gets])
    failed = sum(p["non2xx"] for p in posts + relaxed)
    return [
        Figure(2, "Vote POST / throughput", rps.median_ours, "req/s", rps.median_limit, "GET /healthz, same process",
               goal="≥ 0.80 of the limit", met=rps.ratio >= 0.8 and failed == 0, ratio=rps.ratio,
               detail={"post": posts, "healthz": gets, "ratios": rps.ratios, "connections": CONNECTIONS,
                       "redis_appendfsync": "always"}),
        Figure(2, "Vote POST /, Redis fsync each second", relaxed_rps.median_ours, "req/s", rps.median_limit,
               "GET /healthz, same process", ratio=relaxed_rps.ratio,
               detail={"post": relaxed, "ratios": relaxed_rps.ratios, "redis_appendfsync": "everysec"}),
        Figure(2, "Vote POST / latency p50", p50.median_ours, "ms", p50.median_limit, "GET /healthz p50", ratio=p50.ratio),
        Figure(2, "Vote POST / latency p99", p99.median_ours, "ms", p99.median_limit, "GET /healthz p99",
               goal=f"≤ 50 ms at {CONNECTIONS} connections", met=p99.median_ours <= 50, ratio=p99.ratio),
    ], peak


def vote_limit(vote: stack.Service, seconds: float, script: Path) -> dict:
    """vote's own ceiling for `POST /` (closed loop, 32 connections): the pipeline's limit."""
    return wrk(vote.url + "/", seconds, CONNECTIONS, script)


def median_rps(runs: list[dict]) -> float:
    return statistics.median(r["rps"] for r in runs)
