"""`make bench` (`python -m devstack.bench [--quick]`): each figure beside its limit, in one run.

Starts its own Redis (with prod's append-only settings) and PostgreSQL, runs the services as
their images run them, measures, prints a table and writes the figures to .bench/results.json
with PNG charts beside it. Where a figure has a limit, the two are measured in turns
(ours, limit, ours, limit, ...) and the ratio reported is the median of the turns' ratios, so
a neighbour's burst on a shared machine moves both sides of one ratio, not one figure.

One job per module: figures (the table's rows, sizes, the turns), memory (PSS), worker
(drain rate), vote (HTTP), result (freshness, fan-out, ten thousand websockets), tallies,
pipeline (open-loop capacity of the whole stack), charts and run (the command line).
"""
