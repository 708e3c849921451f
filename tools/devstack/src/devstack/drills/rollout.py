"""Rollout drills: each service gets SIGTERM under load and must finish the work in hand."""

from __future__ import annotations

import collections
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import psycopg
import redis

from voting_contract.wire import QUEUE

from .. import stack
from ..load import VoteStream, run_threads, stop_threads
from ..truth import BALLOT, audit
from .lab import WORKER_FAST, Lab, redis_env
from .row import Row, judge
from .traffic import Viewers, drain, in_hand, missed, missed_text, surge


@dataclass
class Call:
    started: float
    ended: float
    status: int | None
    error: str | None = None


class TimedLoad:
    """Clients on keep-alive connections that record when each request started and ended, and how."""

    def __init__(self, send: Callable[[httpx.Client, random.Random], int], url: str, threads: int = 4,
                 seed: int = 5) -> None:
        self.send, self.url, self.threads, self.seed = send, url, threads, seed
        self.calls: list[Call] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _run(self, index: int) -> None:
        rng = random.Random(self.seed * 100 + index)
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    status, error = self.send(client, rng), None
                except httpx.HTTPError as exc:
                    status, error = None, type(exc).__name__
                call = Call(started, time.monotonic(), status, error)
                with self._lock:
                    self.calls.append(call)
                if error:
                    time.sleep(0.02)

    def start(self) -> TimedLoad:
        return run_threads(self)

    def stop(self) -> TimedLoad:
        return stop_threads(self, 40)

    def split(self, at: float) -> tuple[list[Call], list[Call]]:
        """Requests in flight at `at` (started before, answered after), and new requests after it.

        A request whose connection was refused never reached the server, so it was not in flight
        even if the client began it just before `at`: it counts with the new requests.
        """
        with self._lock:
            calls = list(self.calls)
        never_connected = {id(c) for c in calls if c.error == "ConnectError"}
        in_flight = [c for c in calls if c.started < at < c.ended and id(c) not in never_connected]
        after = [c for c in calls if c.started >= at or (c.ended > at and id(c) in never_connected)]
        return in_flight, after


def ok(call: Call) -> bool:
    return call.status is not None and 200 <= call.status < 300


def slow_post(port: int, choice: str) -> socket.socket:
    """A vote whose body is only half sent: the server is reading it when we look away."""
    body = f"vote={choice}".encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    sock.sendall(head + body[:3])
    return sock


def finish_slow_post(sock: socket.socket, choice: str) -> tuple[int | None, str | None]:
    """Send the rest of the body; the status and the voter id the service assigned."""
    try:
        sock.sendall(f"vote={choice}".encode()[3:])
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    except OSError:
        return None, None
    finally:
        sock.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status = re.match(r"HTTP/1\.[01] (\d{3})", head)
    voter = re.search(r"(?im)^set-cookie: voter_id=([0-9a-f]{32})", head)
    return (int(status.group(1)) if status else None), (voter.group(1) if voter else None)


def rollout_worker(lab: Lab, *, backlog: int = 20_000, seed: int = 6) -> Row:
    """SIGTERM the worker with a batch in hand: it writes the batch, acknowledges it and exits 0."""
    rng = random.Random(seed)
    rs, pg = lab.redis(), lab.postgres()
    client = redis.Redis.from_url(rs.url)
    worker = lab.launch(stack.worker(redis_env(rs), pg.env, extra={**WORKER_FAST, "WORKER_BATCH_SIZE": "2000"}))
    truth, _ = surge(client, backlog, "r", rng)
    deadline = time.monotonic() + 60
    while not (held := in_hand(client)):
        if client.llen(QUEUE) == 0:
            # The worker drained the surge while it was being pushed, before a batch was seen in
            # its hands: push another (new voters), or SIGTERM would find nothing to finish.
            more, _ = surge(client, backlog, f"r{len(truth)}-", rng)
            truth.update(more)
        if time.monotonic() > deadline:
            raise TimeoutError("the worker was never seen holding a batch")
        time.sleep(0.002)
    sigterm_at = time.monotonic()
    code = worker.stop(timeout=15)
    took = time.monotonic() - sigterm_at
    left = in_hand(client)
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        written = conn.execute("SELECT count(*) FROM votes").fetchone()[0]
    queued = client.llen(QUEUE)
    problems = []
    if code != 0:
        problems.append(f"worker exited {code} on SIGTERM")
    if left:
        problems.append(f"worker left {left} messages in hand")
    if written + queued != len(truth):
        problems.append(f"{written} written + {queued} queued != {len(truth)}")
    successor = lab.launch(stack.worker(redis_env(rs), pg.env, extra=WORKER_FAST))
    problems += drain(client, 60, successor)
    db = audit(pg.dsn, truth)
    problems += db.problems()
    client.close()
    return judge(
        "rollout: worker SIGTERM mid-batch",
        f"{len(truth)} votes queued, batches of 2000; SIGTERM with {held} in hand; a successor drains the rest",
        f"exit {code} after {took:.1f}s, {left} left in hand, {written} written + {queued} queued = "
        f"{written + queued}/{len(truth)}; {db.text()}",
        problems, {"in_hand_at_sigterm": held, "exit": code, "seconds": round(took, 2), "left_in_hand": left,
                   "written": written, "queued": queued, **db.counts()},
    )


def rollout_vote(lab: Lab, *, slow: int = 6, voters: int = 300, seed: int = 7) -> Row:
    """SIGTERM vote under load: requests in flight complete with 2xx and count; new ones are refused."""
    rng = random.Random(seed)
    rs, pg = lab.redis(), lab.postgres()
    client = redis.Redis.from_url(rs.url)
    vote = lab.launch(stack.vote(redis_env(rs), workers=2))
    worker = lab.launch(stack.worker(redis_env(rs), pg.env, extra=WORKER_FAST))
    stream = VoteStream(vote.url, voters=voters, threads=3, seed=seed).start()
    truth: dict[str, str] = {}
    try:
        stream.wait_for(100)
        choices = [rng.choice(BALLOT.ids) for _ in range(slow)]
        pending = [slow_post(vote.port, c) for c in choices]
        time.sleep(0.5)  # the service has accepted them and is reading their bodies
        failed_before = stream.failed + stream.refused
        acked_before = stream.acknowledged
        vote.proc.send_signal(15)
        sigterm_at = time.monotonic()
        time.sleep(0.5)
        answered = [finish_slow_post(sock, c) for sock, c in zip(pending, choices)]
        code = vote.proc.wait(25)
        took = time.monotonic() - sigterm_at
        acked_after = stream.acknowledged - acked_before
        refused_after = stream.failed + stream.refused - failed_before
        replacement = lab.launch(stack.vote(redis_env(rs), port=vote.port, workers=2))
        stream.wait_for(stream.acknowledged + 100)
    finally:
        stream.stop()
    in_flight_ok = 0
    for (status, voter_id), choice in zip(answered, choices):
        if status is not None and 200 <= status < 300 and voter_id:
            in_flight_ok += 1
            truth[voter_id] = choice
    truth.update(stream.truth)
    problems = drain(client, 60, worker)
    db = audit(pg.dsn, truth, refused=stream.refused_choices)
    problems += db.problems()
    if in_flight_ok != slow:
        problems.append(f"only {in_flight_ok} of {slow} requests in flight at SIGTERM got a 2xx: {answered}")
    if code != 0:
        problems.append(f"vote exited {code}")
    if not replacement.running():
        problems.append("the replacement vote service died")
    client.close()
    return judge(
        "rollout: vote SIGTERM under load",
        f"{voters} voters voting; {slow} POSTs mid-body at SIGTERM; replaced on the same port after exit",
        f"in flight: {in_flight_ok}/{slow} 2xx and counted; exit {code} after {took:.1f}s; after SIGTERM "
        f"{acked_after} more acked on open connections, {refused_after} new refused (Kubernetes sends none); "
        f"{db.text()}{missed_text(stream)}",
        problems, {**missed(stream), "in_flight": slow, "in_flight_2xx": in_flight_ok, "exit": code, "seconds": round(took, 2),
                   "acked_after_sigterm": acked_after, "refused_after_sigterm": refused_after,
                   **db.counts()},
    )


def _result_under_sigterm(lab: Lab, viewers: int) -> tuple[dict, Viewers, TimedLoad, float, int, float]:
    pg = lab.postgres()
    result = lab.launch(stack.result(pg.env))
    crowd = Viewers(f"ws://127.0.0.1:{result.port}/ws", viewers).start()
    load = TimedLoad(lambda c, r: c.get(r.choice(["/", "/api/results"])).status_code, result.url, threads=4).start()
    time.sleep(1.0)
    result.proc.send_signal(15)
    sigterm_at = time.monotonic()
    code = result.proc.wait(25)
    took = time.monotonic() - sigterm_at
    time.sleep(0.2)
    load.stop()
    closes = dict(collections.Counter(kind for _, kind in crowd.closed))
    crowd.stop()
    return closes, crowd, load, sigterm_at, code, took


def rollout_result(lab: Lab, *, viewers: int = 20) -> Row:
    """SIGTERM result while pages are read and viewers watch: HTTP requests in flight complete."""
    closes, crowd, load, sigterm_at, code, took = _result_under_sigterm(lab, viewers)
    in_flight, after = load.split(sigterm_at)
    failed = [c for c in in_flight if not ok(c)]
    refused = sum(1 for c in after if not ok(c))
    problems = []
    if failed:
        problems.append(f"{len(failed)} requests in flight at SIGTERM failed: "
                        f"{collections.Counter(c.error or c.status for c in failed)}")
    if code != 0:
        problems.append(f"result exited {code}")
    before = sum(1 for c in load.calls if c.ended < sigterm_at)
    return judge(
        "rollout: result SIGTERM (HTTP)",
        f"4 clients reading / and /api/results ({before} requests before SIGTERM), {viewers} websocket viewers",
        f"in flight at SIGTERM: {len(in_flight) - len(failed)}/{len(in_flight)} 2xx; exit {code} after {took:.1f}s; "
        f"{refused}/{len(after)} new requests refused after SIGTERM",
        problems, {"in_flight": len(in_flight), "in_flight_failed": len(failed), "exit": code,
                   "seconds": round(took, 2), "after": len(after), "refused_after": refused,
                   "viewer_closes": closes},
    )


def rollout_result_viewers(lab: Lab, *, viewers: int = 20) -> Row:
    """SIGTERM result with viewers: each websocket gets a close frame and the process exits without waiting out the grace."""
    closes, crowd, load, sigterm_at, code, took = _result_under_sigterm(lab, viewers)
    problems = []
    if closes.get("clean", 0) != viewers:
        problems.append(f"websocket viewers at SIGTERM ended {closes}, not all with a close frame")
    if took >= 19.5:
        problems.append(f"exit took {took:.1f}s: the full graceful_timeout, waiting on the websockets")
    return judge(
        "rollout: result SIGTERM (websockets)",
        f"{viewers} websocket viewers connected at SIGTERM",
        f"viewer endings {closes}; exit {code} after {took:.1f}s",
        problems, {"viewers": viewers, "endings": closes, "exit": code, "seconds": round(took, 2)},
    )

