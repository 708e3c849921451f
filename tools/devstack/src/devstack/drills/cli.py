"""The drills' command line: run them, print the table, write the JSON report, or print an old one as Markdown."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path

from .lab import lab_in
from .row import Row
from .run import DRILLS, run_drill

PACKAGE_DOC = importlib.import_module(__package__).__doc__


def table(rows: list[Row]) -> str:
    """The rows as a plain-text table for the terminal."""
    head = ("drill", "what it did", "what it compared", "verdict", "s")
    cells = [head] + [(r.name, r.did, r.compared, r.verdict, f"{r.seconds:.0f}") for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    widths[1], widths[2] = min(widths[1], 200), min(widths[2], 260)
    lines = []
    for n, c in enumerate(cells):
        lines.append(" | ".join(c[i].ljust(widths[i]) for i in range(len(head))).rstrip())
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    """The rows of a JSON report as a Markdown table, for the README."""
    lines = ["| drill | what it did | what it compared | verdict | s |", "| --- | --- | --- | --- | ---: |"]
    for r in rows:
        cells = [r["name"], r["did"], r["compared"], r["verdict"], f"{r['seconds']:.0f}"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.drills", description=PACKAGE_DOC.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small forms `make test` runs")
    parser.add_argument("--only", nargs="+", metavar="DRILL", choices=[d.name for d in DRILLS],
                        help="run only these drills")
    parser.add_argument("--out", type=Path, default=Path(".drills"), help="folder for the JSON report")
    parser.add_argument("--markdown", type=Path, metavar="REPORT.json",
                        help="print an earlier JSON report as a Markdown table and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        report = json.loads(args.markdown.read_text())
        print(markdown(report["rows"]))
        print(f"\n{len(report['rows'])} drills in {report['seconds']:.0f} s on {report['cores']} cores ({report['when']}).")
        return 0
    chosen = [d for d in DRILLS if not args.only or d.name in args.only]
    started = time.monotonic()
    rows = []
    with lab_in() as lab:
        for drill in chosen:
            print(f"... {drill.name}", file=sys.stderr, flush=True)
            row = run_drill(lab, drill, quick=args.quick)
            print(f"    {row.verdict} in {row.seconds:.0f}s: {row.compared}", file=sys.stderr, flush=True)
            for problem in row.problems:
                print(f"    - {problem}", file=sys.stderr, flush=True)
            rows.append(row)
    wall = time.monotonic() - started
    print(table(rows))
    failed = [r.name for r in rows if not r.ok]
    print(f"\n{len(rows)} drills in {wall:.0f}s on {os.cpu_count()} cores: "
          f"{sum(r.ok for r in rows)} held, {len(failed)} failed{': ' + ', '.join(failed) if failed else ''}")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    report = {"when": stamp, "quick": args.quick, "seconds": round(wall, 1), "cores": os.cpu_count(),
              "rows": [r.to_json() for r in rows]}
    for name in (f"drills-{stamp}.json", "latest.json"):
        (args.out / name).write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 1 if failed else 0

