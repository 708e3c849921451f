"""Vote traffic with a ground truth: what every voter last chose, as acknowledged.

Shared by the reliability tests, the drills and the benchmarks, so all three compare
PostgreSQL (devstack.truth) with the same truth the same way.
"""

from __future__ import annotations

import collections
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import httpx
import redis

from voting_contract.wire import QUEUE, Vote, enqueue_script

from .truth import BALLOT


def push_votes(client: redis.Redis, votes: Iterable[tuple[str, str]], chunk: int | None = 2000) -> dict[str, str]:
    """Push (voter, choice) pairs as the vote service pushes them (its numbering script), pipelined
    `chunk` at a time (None: one pipeline); returns each voter's last choice. A vote counts as
    acknowledged once Redis answered its pipeline, as the vote service answers 2xx only then."""
    push = enqueue_script(client)
    truth: dict[str, str] = {}
    votes = list(votes)
    size = chunk or max(1, len(votes))
    for start in range(0, len(votes), size):
        part = votes[start:start + size]
        with client.pipeline(transaction=False) as pipe:
            for voter, choice in part:
                push(Vote(voter, choice, ts=time.time()), client=pipe)
            pipe.execute()
        truth.update(part)
    return truth


def queue_votes(client: redis.Redis, voters: int, votes: int, rng: random.Random, prefix: str = "v",
                chunk: int = 2000) -> dict[str, str]:
    """Push `votes` votes from `voters` voters into Redis, as the vote service numbers them.

    Every voter votes once, the rest are changes of mind; returns each voter's last choice.
    """
    pairs = [(f"{prefix}{i % voters}" if i < voters else f"{prefix}{rng.randrange(voters)}", rng.choice(BALLOT.ids))
             for i in range(votes)]
    return push_votes(client, pairs, chunk)


def wait_drained(client: redis.Redis, timeout: float = 60.0) -> None:
    """Until the queue and every worker's batch in hand are empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.llen(QUEUE) == 0 and not client.keys("votes:processing:*"):
            return
        time.sleep(0.05)
    raise TimeoutError(f"queue not drained after {timeout}s: {client.llen(QUEUE)} waiting")


# gunicorn closes a connection left idle for its `keepalive` (vote/gunicorn_conf.py); a
# request sent on it at that instant is dropped unanswered ("Server disconnected without
# sending a response"). Browsers hide that race by resending on a new connection; httpx does
# not, and by default reuses connections idle up to 5 s, the very same figure: about one vote
# in five thousand met it. Voters here let a connection go well before the server would.
CLIENT_KEEPALIVE_SECONDS = 2.0

# Our error pages, told apart by what they say (apps/vote/src/vote/app.py).
PAGES = {"not recorded": "not recorded", "could not confirm": "could not confirm", "another site": "cross-site"}


def page_kind(text: str) -> str:
    """Which of the vote service's error pages this is: "not recorded", "cross-site", ... or "other"."""
    return next((kind for phrase, kind in PAGES.items() if phrase in text), "other")


@dataclass(frozen=True)
class Miss:
    """A vote that was not acknowledged: what came back instead, and when."""

    reason: str  # "503 not recorded", "403 cross-site", "502 other", or a client-side exception's type
    detail: str  # the exception's message, or "" for an HTTP answer
    elapsed: float  # seconds the request took
    at: float  # seconds since the stream started
    idle: float | None = None  # seconds since this voter's previous answer (its connection's idle time)

    def to_json(self) -> dict:
        return asdict(self)


def reasons_text(misses: list[Miss]) -> str:
    """Misses grouped by reason, e.g. "2 x 503 not recorded, 1 x ReadTimeout"."""
    grouped = collections.Counter(m.reason for m in misses)
    return ", ".join(f"{n} x {reason}" for reason, n in grouped.most_common()) or "none"


def misses_text(misses: list[Miss], limit: int = 5) -> str:
    """Grouped reasons, then the first few misses with their timing, for a failure message."""
    each = [f"{m.reason} after {m.elapsed:.3f}s at {m.at:.1f}s"
            f"{'' if m.idle is None else f', {m.idle:.2f}s after the previous answer'}"
            f"{': ' + m.detail if m.detail else ''}" for m in misses[:limit]]
    return f"{reasons_text(misses)} [{'; '.join(each)}{'; ...' if len(misses) > limit else ''}]"


def run_threads(load):
    """Start `load.threads` daemon threads, each running `load._run(index)` until `load._stop` is set."""
    for i in range(load.threads):
        thread = threading.Thread(target=load._run, args=(i,), daemon=True)
        thread.start()
        load._threads.append(thread)
    return load


def stop_threads(load, join_seconds: float):
    """Ask the threads of `load` to stop, and wait for each up to `join_seconds`."""
    load._stop.set()
    for thread in load._threads:
        thread.join(join_seconds)
    return load


@dataclass
class VoteStream:
    """Browsers voting through the vote service: many voters, some changing their minds.

    Records, per voter, the last choice the service acknowledged with a 2xx; a vote refused
    with "not recorded" must not count. Choices answered otherwise since a voter's last
    acknowledged vote (503 "could not confirm", a cut connection) may have been queued: they
    are kept in `refused_choices` so a comparison can tell them from an older vote winning.
    Every vote not acknowledged is kept in `misses` with its reason and timing.
    Runs in threads until stop().
    """

    url: str
    voters: int = 200
    threads: int = 4
    change_rate: float = 0.3
    seed: int = 1
    truth: dict[str, str] = field(default_factory=dict)
    acknowledged: int = 0
    refused: int = 0
    failed: int = 0
    unconfirmed: int = 0
    refused_choices: dict[str, set[str]] = field(default_factory=dict)
    misses: list[Miss] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        clients: dict[int, httpx.Client] = {}
        answered: dict[int, float] = {}  # when each voter's last request ended
        mine = range(index, self.voters, self.threads)
        try:
            while not self._stop.is_set():
                n = rng.choice(mine)
                client = clients.get(n)
                if client is None:
                    client = clients[n] = httpx.Client(
                        base_url=self.url, timeout=10, limits=httpx.Limits(keepalive_expiry=CLIENT_KEEPALIVE_SECONDS))
                voter_id = client.cookies.get("voter_id")
                if voter_id in self.truth and rng.random() > self.change_rate:
                    continue  # most people vote once
                choice = rng.choice(BALLOT.ids)
                sent = time.monotonic()
                idle = round(sent - answered[n], 3) if n in answered else None
                try:
                    response = client.post("/", data={"vote": choice})
                except httpx.HTTPError as exc:
                    answered[n] = time.monotonic()
                    with self._lock:
                        self.failed += 1
                        self._missed(type(exc).__name__, str(exc).strip()[:200], sent, idle)
                        if voter_id:
                            self.refused_choices.setdefault(voter_id, set()).add(choice)
                    time.sleep(0.01)
                    continue
                answered[n] = time.monotonic()
                voter_id = client.cookies.get("voter_id")
                with self._lock:
                    if 200 <= response.status_code < 300:
                        self.acknowledged += 1
                        self.truth[voter_id] = choice
                        self.refused_choices.pop(voter_id, None)
                        continue
                    self._missed(f"{response.status_code} {page_kind(response.text)}", "", sent, idle)
                    if response.status_code == 503:
                        self.refused += 1
                    else:
                        self.failed += 1
                    # "not recorded" means Redis was never reached: that vote must never count.
                    # Anything else may have been queued, so it is remembered apart.
                    if voter_id and "not recorded" not in response.text:
                        self.unconfirmed += 1
                        self.refused_choices.setdefault(voter_id, set()).add(choice)
        finally:
            for client in clients.values():
                client.close()

    def _missed(self, reason: str, detail: str, sent: float, idle: float | None) -> None:
        now = time.monotonic()
        self.misses.append(Miss(reason, detail, round(now - sent, 3), round(now - self.started, 3), idle))

    def since_start(self) -> float:
        """Seconds since the stream started, the clock its misses are timed by."""
        return round(time.monotonic() - self.started, 3)

    def reasons(self) -> dict[str, int]:
        """Votes not acknowledged, counted by reason."""
        return dict(collections.Counter(m.reason for m in self.misses).most_common())

    def start(self) -> VoteStream:
        self.started = time.monotonic()
        return run_threads(self)

    def stop(self) -> VoteStream:
        return stop_threads(self, 30)

    def wait_for(self, acknowledged: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.acknowledged < acknowledged:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.acknowledged} of {acknowledged} votes acknowledged")
            time.sleep(0.02)
