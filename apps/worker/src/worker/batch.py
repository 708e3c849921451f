"""Turning a batch of raw queue messages into rows to upsert: pure, no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from voting_contract.wire import MalformedMessage, Vote, decode


@dataclass(frozen=True)
class DeadLetter:
    raw: bytes
    reason: str

    def to_json(self, worker_id: str, at: float) -> str:
        return json.dumps(
            {"reason": self.reason, "message": self.raw.decode("utf-8", "backslashreplace"),
             "worker": worker_id, "at": at},
            separators=(",", ":"),
        )


@dataclass(frozen=True)
class Plan:
    votes: list[Vote] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    valid: int = 0

    @property
    def rows(self) -> tuple[list[str], list[str], list[int | None]]:
        """Column arrays for one `unnest` upsert."""
        return [v.voter_id for v in self.votes], [v.vote for v in self.votes], [v.seq for v in self.votes]


def supersedes(new: Vote, old: Vote) -> bool:
    """Whether `new`, later in the queue than `old`, is the voter's newer choice.

    Sequence numbers decide when both have one (several vote pods, several workers);
    otherwise queue order does, as in the classic demo.
    """
    if new.seq is not None and old.seq is not None:
        return new.seq > old.seq
    return True


def plan_batch(messages: list[bytes]) -> Plan:
    """Decode messages in queue order, keep each voter's latest vote, set the bad ones aside."""
    latest: dict[str, Vote] = {}
    dead: list[DeadLetter] = []
    valid = 0
    for raw in messages:
        try:
            vote = decode(raw)
        except MalformedMessage as exc:
            dead.append(DeadLetter(raw, exc.reason))
            continue
        valid += 1
        old = latest.get(vote.voter_id)
        if old is None or supersedes(vote, old):
            latest[vote.voter_id] = vote
    return Plan(votes=list(latest.values()), dead=dead, valid=valid)
