"""Fault drills: workers and Redis killed or restarted, PostgreSQL stopped, a crowd of viewers."""

from __future__ import annotations

import random
import re
import time

import httpx
import redis

from voting_contract.wire import QUEUE

from .. import stack
from ..load import VoteStream, misses_text
from ..truth import Audit, audit, expected_tallies
from .lab import WORKER_FAST, Lab, redis_env, set_fsync
from .row import Row, judge
from .traffic import Backlog, Viewers, drain, in_hand, metric, missed, missed_text, shown_totals, surge


def settle(client: redis.Redis, timeout: float, worker: stack.Service, dsn: str,
           stream: VoteStream) -> tuple[list[str], Audit]:
    """Drain the queue, then compare the database with what the stream's voters were told."""
    problems = drain(client, timeout, worker)
    db = audit(dsn, stream.truth, refused=stream.refused_choices)
    return problems + db.problems(), db


def worker_kills(lab: Lab, *, workers: int = 1, kills: int = 50, voters: int = 1000, backlog_voters: int = 5000,
                 seed: int = 1) -> Row:
    """SIGKILL a worker at random instants while voters vote; compare PostgreSQL with what was acknowledged."""
    rng = random.Random(seed)
    rs, pg = lab.redis(), lab.postgres()
    client = redis.Redis.from_url(rs.url)
    vote = lab.launch(stack.vote(redis_env(rs), workers=2))
    ids = [f"w{i}-0" for i in range(workers)]
    procs: list[stack.Service] = []
    for worker_id in ids:
        extra = {**WORKER_FAST, "WORKER_ID": worker_id, "WORKER_BATCH_SIZE": "50"}
        procs.append(lab.launch(stack.worker(redis_env(rs), pg.env, extra=extra), ready=False))
    stream = VoteStream(vote.url, voters=voters, threads=3, seed=seed).start()
    backlog = Backlog(rs.url, voters=backlog_voters, seed=seed).start()
    with_batch = 0
    try:
        stream.wait_for(50)
        for k in range(kills):
            time.sleep(rng.uniform(0.4, 1.6))
            slot = rng.randrange(workers)
            with_batch += in_hand(client, ids[slot]) > 0
            procs[slot].kill()
            # Half the time the pod restarts in place (same id), half a new pod replaces it.
            if rng.random() < 0.5:
                ids[slot] = f"w{slot}-{k + 1}"
            extra = {**WORKER_FAST, "WORKER_ID": ids[slot], "WORKER_BATCH_SIZE": "50"}
            procs[slot] = lab.launch(stack.worker(redis_env(rs), pg.env, extra=extra), ready=False)
    finally:
        stream.stop()
        backlog.stop()
    problems = drain(client, 120, *procs)
    truth = {**backlog.truth, **stream.truth}
    db = audit(pg.dsn, truth, backlog.uncertain, stream.refused_choices)
    problems += db.problems()
    if stream.failed:
        problems.append(f"{stream.failed} vote requests failed: {misses_text(stream.misses)}")
    client.close()
    return judge(
        f"worker SIGKILL x{kills}, {workers} worker{'s' if workers > 1 else ''}",
        f"{stream.acknowledged} votes via HTTP from {voters} voters + {backlog.pushed} queued from {backlog_voters} "
        f"voters (re-votes); {kills} kills, {with_batch} with a batch in hand",
        db.text() + missed_text(stream), problems,
        {**missed(stream), "kills": kills, "kills_with_batch_in_hand": with_batch,
         "acknowledged": stream.acknowledged + backlog.pushed, **db.counts()},
    )


def redis_restarts(lab: Lab, *, mode: str = "prod", how: str = "sigterm", restarts: int = 5, voters: int = 1000,
                   surge_votes: int = 5000, worker_down: bool = False, seed: int = 2) -> Row:
    """Restart Redis mid-stream; prod (append-only, fsync always) must keep every acknowledged vote.

    mode "prod" runs Redis as overlays/prod does; "dev" as base/redis does (no persistence).
    how "sigterm" is a graceful restart (what Kubernetes does); "sigkill" a crash.
    worker_down: the worker is stopped across each restart, so the surge is all still queued.
    """
    prod = mode == "prod"
    rs = lab.redis(appendonly=prod, fsync="always" if prod else None)
    pg = lab.postgres()
    client = redis.Redis.from_url(rs.url)
    vote = lab.launch(stack.vote(redis_env(rs), workers=2))
    worker = lab.launch(stack.worker(redis_env(rs), pg.env, extra=WORKER_FAST))
    stream = VoteStream(vote.url, voters=voters, threads=3, seed=seed).start()
    depth_at_restart = 0
    rng = random.Random(seed)
    truth: dict[str, str] = {}
    uncertain: set[str] = set()
    try:
        for n in range(restarts):
            stream.wait_for(stream.acknowledged + 150, timeout=60)
            # A surge of new voters just before the restart, so that some are still queued.
            if worker_down:
                worker.stop()
            acked, unknown = surge(client, surge_votes, f"s{n}-", rng)
            truth.update(acked)
            uncertain |= unknown
            depth_at_restart += client.llen(QUEUE) + in_hand(client)
            rs.kill() if how == "sigkill" else rs.stop()
            rs.start()
            if prod:
                set_fsync(rs, "always")
            if worker_down:
                worker = lab.launch(stack.worker(redis_env(rs), pg.env, extra=WORKER_FAST))
        stream.wait_for(stream.acknowledged + 150, timeout=60)
    finally:
        stream.stop()
    problems = drain(client, 60, worker)
    truth.update(stream.truth)
    db = audit(pg.dsn, truth, uncertain, stream.refused_choices)
    lost = db.outcome.lost + db.outcome.wrong
    settings = "append-only, appendfsync always (prod)" if prod else "no persistence (dev)"
    acked = stream.acknowledged + len(truth) - len(stream.truth)
    counts = {"restarts": restarts, "worker_down": worker_down, "acknowledged": acked, "acknowledged_http": stream.acknowledged,
              "acknowledged_surge": len(truth) - len(stream.truth), "surge_unknown": len(uncertain),
              "refused_503": stream.refused, "unconfirmed_503": stream.unconfirmed,
              "failed": stream.failed, "queued_at_restarts": depth_at_restart, **db.counts(),
              "lost_detail": db.losses(), **missed(stream)}
    measured = not (prod and how == "sigterm")
    if measured:
        # No promise here: report the loss; only double counting and broken tallies fail.
        problems += db.corruption()
    else:
        problems += db.problems()
    if stream.failed:
        problems.append(f"{stream.failed} vote requests failed with neither 2xx nor a clear 503: "
                        f"{misses_text(stream.misses)}")
    client.close()
    return judge(
        f"Redis {how.upper()} restart x{restarts}, {mode}{', worker down' if worker_down else ''}",
        f"{settings}; {acked} acked ({stream.acknowledged} via HTTP, the rest in surges of {surge_votes} new voters "
        f"just before each restart), {stream.refused} refused (503, {stream.unconfirmed} 'could not confirm'); "
        f"{depth_at_restart} queued at the restarts",
        f"{db.text()}; acked votes lost: {lost}{missed_text(stream)}",
        problems, counts, measured=measured,
    )


def postgres_outage(lab: Lab, *, outage: float = 30.0, voters: int = 500, seed: int = 3) -> Row:
    """Stop PostgreSQL under load; votes keep coming, the queue grows, the result page says so, then all drains."""
    rs, pg = lab.redis(), lab.own_postgres()
    client = redis.Redis.from_url(rs.url)
    vote = lab.launch(stack.vote(redis_env(rs), workers=2))
    worker = lab.launch(stack.worker(redis_env(rs), pg.env, extra=WORKER_FAST))
    result = lab.launch(stack.result(pg.env, extra={"RESULT_RECHECK_SECONDS": "2"}))
    stream = VoteStream(vote.url, voters=voters, threads=3, seed=seed).start()
    problems: list[str] = []
    peak = 0
    said_reconnecting = False
    try:
        stream.wait_for(100)
        outage_at = stream.since_start()
        pg.stop()
        acked_before = stream.acknowledged
        started = time.monotonic()
        while time.monotonic() - started < outage:
            peak = max(peak, client.llen(QUEUE))
            page = httpx.get(result.url + "/", timeout=5).text
            api = httpx.get(result.url + "/api/results", timeout=5).json()
            if api["stale"] and "Reconnecting" in page and re.search(r'id="connection"[^>]*hidden', page) is None:
                said_reconnecting = True
            time.sleep(0.25)
        acked_during = stream.acknowledged - acked_before
        worker_ready_during = stack.http_status(worker.url + "/readyz")
        result_ready_during = stack.http_status(result.url + "/readyz")
        pg.start()
        back_at = stream.since_start()
        stream.wait_for(stream.acknowledged + 100)
    finally:
        stream.stop()
    found, db = settle(client, 120, worker, pg.dsn, stream)
    problems += found
    want = expected_tallies(stream.truth)
    shown: dict = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        shown = httpx.get(result.url + "/api/results", timeout=5).json()
        if not shown["stale"] and shown_totals(shown) == want:
            break
        time.sleep(0.2)
    else:
        problems.append(f"result page shows {shown.get('options')} stale={shown.get('stale')}, truth {want}")
    if acked_during == 0:
        problems.append("the vote service accepted nothing while PostgreSQL was down")
    if peak == 0:
        problems.append("the queue never grew")
    if not said_reconnecting:
        problems.append("the result page never said it was reconnecting")
    if worker_ready_during != 503:
        problems.append(f"worker /readyz answered {worker_ready_during} during the outage, not 503")
    if result_ready_during != 200:
        problems.append(f"result /readyz answered {result_ready_during} during the outage, not 200")
    if stream.failed or stream.refused:
        problems.append(f"{stream.failed + stream.refused} votes refused or failed: {misses_text(stream.misses)} "
                        f"(outage from {outage_at:.1f}s to {back_at:.1f}s of the stream)")
    client.close()
    return judge(
        f"PostgreSQL down {outage:g}s",
        f"{acked_during} votes acked during the outage, queue peaked at {peak}; result said reconnecting: "
        f"{'yes' if said_reconnecting else 'no'}",
        f"{db.text()}; result page totals {'match' if not problems else 'checked'}"
        f"{missed_text(stream)}",
        problems,
        {**missed(stream), "outage_from": outage_at, "outage_until": back_at, "outage_seconds": outage,
         "acked_during_outage": acked_during, "queue_peak": peak, "result_ready_during": result_ready_during,
         "said_reconnecting": said_reconnecting, "acknowledged": stream.acknowledged, **db.counts()},
    )


def websocket_viewers(lab: Lab, *, viewers: int = 500, phase: float = 20.0, voters: int = 500, seed: int = 4) -> Row:
    """Many viewers on one result process: tally reads follow changes, not viewers; all see the final totals."""
    rs, pg = lab.redis(), lab.postgres()
    client = redis.Redis.from_url(rs.url)
    vote = lab.launch(stack.vote(redis_env(rs), workers=2))
    worker = lab.launch(stack.worker(redis_env(rs), pg.env, extra=WORKER_FAST))
    recheck = 5.0
    result = lab.launch(stack.result(pg.env, extra={"RESULT_RECHECK_SECONDS": str(recheck)}))
    ws_url = f"ws://127.0.0.1:{result.port}/ws"
    stream = VoteStream(vote.url, voters=voters, threads=2, seed=seed).start()
    phases = []
    crowd = Viewers(ws_url, viewers)
    one = Viewers(ws_url, 1)
    problems: list[str] = []
    try:
        stream.wait_for(50)
        for crowd_size, group in ((1, one), (viewers, crowd)):
            group.start()
            q0, b0, v0, t0 = (metric(result.url, "result_db_queries_total"),
                              metric(worker.url, "worker_batch_size_count"), stream.acknowledged, time.monotonic())
            time.sleep(phase)
            q1, b1, v1, t1 = (metric(result.url, "result_db_queries_total"),
                              metric(worker.url, "worker_batch_size_count"), stream.acknowledged, time.monotonic())
            seconds = t1 - t0
            phases.append({"viewers": crowd_size, "seconds": round(seconds, 1), "reads": q1 - q0,
                           "reads_per_s": round((q1 - q0) / seconds, 2), "batches": b1 - b0,
                           "reads_per_batch": round((q1 - q0) / max(b1 - b0, 1), 2),
                           "votes_per_s": round((v1 - v0) / seconds, 1)})
            # Reads follow tally changes (at most one per committed batch) and the periodic recheck,
            # whatever the number of viewers; a read per viewer would be hundreds per change.
            bound = (b1 - b0) + seconds / recheck + 2
            if q1 - q0 > bound:
                problems.append(f"{q1 - q0:g} reads with {crowd_size} viewers > {bound:.0f} (batches + rechecks)")
    finally:
        stream.stop()
    found, db = settle(client, 60, worker, pg.dsn, stream)
    problems += found
    want = expected_tallies(stream.truth)

    def final(snapshot: dict) -> bool:
        return not snapshot["stale"] and shown_totals(snapshot) == want

    deadline = time.monotonic() + 60
    while crowd.seeing(final) < viewers and time.monotonic() < deadline:
        time.sleep(0.2)
    saw_final = crowd.seeing(final)
    connected = crowd.connected
    crowd.stop()
    one.stop()
    if connected < viewers:
        problems.append(f"only {connected} of {viewers} viewers connected: {crowd.errors[:3]}")
    if saw_final < viewers:
        problems.append(f"only {saw_final} of {viewers} viewers saw the final totals {want}")
    client.close()
    base, many = phases if len(phases) == 2 else ({}, {})
    return judge(
        f"{viewers} websocket viewers",
        f"{phase:g}s with 1 viewer then {phase:g}s with {viewers}, votes flowing "
        f"({base.get('votes_per_s')}/s, {many.get('votes_per_s')}/s)",
        f"DB reads/s {base.get('reads_per_s')} -> {many.get('reads_per_s')}, per committed batch "
        f"{base.get('reads_per_batch')} -> {many.get('reads_per_batch')} (1 -> {viewers} viewers); "
        f"{saw_final}/{viewers} viewers saw final totals a={want.get('a', 0)} "
        f"b={want.get('b', 0)}; {db.text()}{missed_text(stream)}",
        problems,
        {**missed(stream), "viewers": viewers, "connected": connected, "saw_final": saw_final, "phases": phases,
         "acknowledged": stream.acknowledged, **db.counts()},
    )

