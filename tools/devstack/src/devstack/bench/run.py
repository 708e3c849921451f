"""`make bench`: the order of the jobs, the table, results.json and the charts."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import resource
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from ..servers import PostgresServer, RedisServer
from . import charts
from .figures import FULL, QUICK, TINY, MiB, Figure, print_table
from .pipeline import bench_pipeline
from .result import CLASSIC_REQUEST_MIB, bench_crowd, bench_fanout, bench_freshness
from .tallies import bench_tallies
from .vote import bench_vote
from .worker import bench_worker

PACKAGE_DOC = importlib.import_module(__package__).__doc__


def machine() -> dict:
    cpu = re.search(r"^model name\s+:\s+(.*)$", Path("/proc/cpuinfo").read_text(), re.M)
    return {"cpu": cpu.group(1) if cpu else platform.processor(), "cores": os.cpu_count(),
            "python": platform.python_version(), "system": platform.platform(),
            "load_average_at_start": os.getloadavg()}


def raise_open_files_limit() -> None:
    """Ten thousand websockets need as many file descriptors; the services inherit this."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=PACKAGE_DOC.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a few minutes")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # the test suite's smoke run
    parser.add_argument("--out", type=Path, default=Path(".bench/results.json"))
    args = parser.parse_args(argv)
    sizes, kind = (TINY, "tiny") if args.tiny else (QUICK, "quick") if args.quick else (FULL, "full")
    raise_open_files_limit()
    at_start = machine()

    started = time.perf_counter()
    figures: list[Figure] = []
    peaks: dict[str, int] = {}

    def done(what: str) -> None:
        print(f"  {what} done ({time.perf_counter() - started:.0f}s)", flush=True)

    with tempfile.TemporaryDirectory(prefix="voting-bench-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)
        logs = tmp / "logs"
        logs.mkdir()
        # Redis with prod's persistence: every acknowledged vote is on disk before the reply.
        with RedisServer(tmp / "redis", appendonly=True, appendfsync="always") as r, \
                PostgresServer(tmp / "postgres") as pg:
            print(f"bench: Redis on {r.port}, PostgreSQL on {pg.port}; {kind} sizes; "
                  f"load average {at_start['load_average_at_start'][0]:.1f}", flush=True)
            figure, peaks["worker"] = bench_worker(r, pg, sizes, logs)
            figures.append(figure)
            done("1 worker drain")
            vote_figures, peaks["vote"] = bench_vote(r, sizes, logs, tmp)
            figures += vote_figures
            done("2 vote HTTP")
            fresh, peak_fresh, fresh_delays = bench_freshness(pg, sizes, logs)
            figures += fresh
            done("3 freshness")
            fanout, peak_fanout, one_viewer_reads = bench_fanout(pg, sizes, logs)
            figures += fanout
            peaks["result"] = max(peak_fresh, peak_fanout)
            done("5 fan-out")
            crowd, crowd_delays = bench_crowd(pg, sizes, logs, one_viewer_reads)
            figures += crowd
            done(f"5 {sizes.crowd:,} websockets")
            pipeline_figures, pipeline_data = bench_pipeline(r, pg, sizes, logs, tmp)
            figures += pipeline_figures
            done("7 pipeline capacity")
            figures += bench_tallies(pg, sizes)
            done("4 tallies")
    classic_requests = {"vote": 64, "result": CLASSIC_REQUEST_MIB, "worker": 128}
    for name in ("vote", "worker", "result"):
        peak_mib = peaks[name] / MiB
        viewers = f", {max(sizes.fanout_viewers):,} websockets" if name == "result" else ""
        figures.append(Figure(6, f"Peak memory (PSS), {name}{viewers}", peak_mib, "MiB", classic_requests[name],
                              "the classic architecture's memory request", goal="within the request",
                              met=peak_mib <= classic_requests[name]))
    figures.sort(key=lambda f: f.number)
    print()
    print_table(figures)
    wall = time.perf_counter() - started
    at_end = os.getloadavg()
    print(f"\n{kind} run, {wall:.0f} s on {at_start['cores']} cores: {at_start['cpu']}; "
          f"load average {at_start['load_average_at_start'][0]:.1f} at start, {at_end[0]:.1f} at end")
    out_dir = args.out.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "size": kind, "seconds": wall, "machine": at_start, "load_average_at_end": at_end,
        "figures": [asdict(f) for f in figures],
    }, indent=2, default=str))
    worker_figure = next(f for f in figures if f.number == 1)
    vote_detail = next(f for f in figures if f.name == "Vote POST / throughput").detail
    charts.pipeline(out_dir / "pipeline.png", pipeline_data)
    charts.freshness(out_dir / "freshness.png", {**fresh_delays, "crowd": crowd_delays["delays"],
                                                 "crowd_size": sizes.crowd})
    charts.vote_latency(out_dir / "vote-latency.png", {"POST /": vote_detail["post"], "GET /healthz": vote_detail["healthz"]},
                        pipeline_data["steps"])
    charts.drain(out_dir / "drain.png", worker_figure.detail["runs"], worker_figure.detail["limit_runs"])
    print(f"figures written to {args.out}, charts beside it (pipeline, freshness, vote-latency, drain .png)")
    return 0
