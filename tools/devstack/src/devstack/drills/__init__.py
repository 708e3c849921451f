"""Reliability and security drills: `make drills` (`python -m devstack.drills [--quick]`).

Each drill is one function that starts real servers and real service processes on 127.0.0.1,
does something unkind to them, compares what it finds with a ground truth, and returns a Row.
The quick forms in tests/drills/ call the same functions with small parameters, so there is
one implementation; `make drills` runs the long forms, prints one line per drill, writes the
rows as JSON under .drills/ and exits non-zero if any drill failed.

A row is a promise (PASS or FAIL) or, where the app makes no promise, a measurement
(MEASURED): losses the dev settings accept, or what a SIGKILL of Redis costs.

The parts: lab (servers and processes), row (one line of the table), traffic (votes, backlogs,
viewers), faults, rollout, hostile (bad input), security, run (the drills by name) and cli.
The comparison with the ground truth is devstack.truth, shared with the tests and the bench.
"""
