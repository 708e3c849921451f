"""The reliable side of the Redis queue: nothing leaves Redis before PostgreSQL has it.

A worker moves each batch atomically from `votes` to a processing list of its own
(`votes:processing:<worker>:<life>:<n>`), writes it to PostgreSQL, and only then deletes that
list. While it lives it keeps a heartbeat key; when the key lapses (SIGKILL, node loss), any
other worker moves the orphaned batches back to the head of `votes`, and a successor with the
same worker id takes them back at start. Re-applying a batch is harmless: rows are keyed by
voter and guarded by sequence numbers.
"""

from __future__ import annotations

import redis

import secrets

from voting_contract.wire import DEAD_LETTER, QUEUE

PROCESSING_PREFIX = "votes:processing:"
HEARTBEAT_PREFIX = "votes:worker:"

# Fills a batch's list up to ARGV[1] messages and returns all of it. Running it twice (a client
# retrying after a lost reply) returns the same batch, grown at most to the limit: no message
# can sit in a batch list without being handed to the worker.
_FILL = """
local want = tonumber(ARGV[1]) - redis.call('LLEN', KEYS[2])
if want > 0 then
    local items = redis.call('LRANGE', KEYS[1], 0, want - 1)
    if #items > 0 then
        redis.call('LTRIM', KEYS[1], #items, -1)
        redis.call('RPUSH', KEYS[2], unpack(items))
    end
end
return redis.call('LRANGE', KEYS[2], 0, -1)
"""

# A Redis at its maxmemory with the noeviction policy refuses any command that may grow memory,
# unless a script has already written (it cannot stop half-way). The worker is what empties a
# full Redis, so each script below writes first with a command that never grows memory (LTRIM,
# DEL, PEXPIRE): the worker goes on draining while vote is refused.
_RECLAIM = """
if redis.call('EXISTS', KEYS[2]) == 1 then
    return -1
end
local items = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
for i = #items, 1, -1 do
    redis.call('LPUSH', KEYS[3], items[i])
end
return #items
"""

_BEAT = """
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then
    redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
"""

_ACK = """
redis.call('DEL', KEYS[1])
if #ARGV > 0 then
    redis.call('RPUSH', KEYS[2], unpack(ARGV))
end
"""


def owner_of(key: str) -> str:
    """The worker id in a processing list's name."""
    return key[len(PROCESSING_PREFIX):].rsplit(":", 2)[0]


class ReliableQueue:
    def __init__(self, client: redis.Redis, worker_id: str, heartbeat_seconds: float) -> None:
        self.client = client
        self.worker_id = worker_id
        self.mine = f"{PROCESSING_PREFIX}{worker_id}:"
        # A fresh name for each life: a batch list never mixes two lives' messages.
        self._life = f"{self.mine}{secrets.token_hex(4)}:"
        self._batches = 0
        self.heartbeat = HEARTBEAT_PREFIX + worker_id
        self.heartbeat_ms = int(heartbeat_seconds * 1000)
        self._fill = client.register_script(_FILL)
        self._reclaim = client.register_script(_RECLAIM)
        self._beat = client.register_script(_BEAT)
        self._ack = client.register_script(_ACK)

    def beat(self) -> None:
        self._beat(keys=[self.heartbeat], args=[self.heartbeat_ms])

    def unfinished(self) -> list[tuple[str, list[bytes]]]:
        """Batches a previous life of this worker took but never acknowledged."""
        keys = sorted(k.decode() for k in self.client.scan_iter(match=self.mine + "*", count=100))
        return [(key, items) for key in keys if (items := self.client.lrange(key, 0, -1))]

    def take(self, limit: int, block_seconds: float) -> tuple[str, list[bytes]] | None:
        """Up to `limit` messages as a new batch, waiting up to `block_seconds` (0: no wait)."""
        self._batches += 1
        key = f"{self._life}{self._batches}"
        items = self._fill(keys=[QUEUE, key], args=[limit])
        if items:
            return key, items
        if block_seconds <= 0:
            return None
        if self.client.blmove(QUEUE, key, block_seconds, "LEFT", "RIGHT") is None:
            return None
        return key, self._fill(keys=[QUEUE, key], args=[limit])

    def ack(self, key: str, dead_letters: list[str]) -> None:
        """Forget a written batch and file its malformed messages, atomically."""
        self._ack(keys=[key, DEAD_LETTER], args=dead_letters)

    def reclaim_orphans(self) -> int:
        """Move batches of workers whose heartbeat lapsed back to the head of the queue."""
        moved = 0
        for key in self.client.scan_iter(match=PROCESSING_PREFIX + "*", count=100):
            key = key.decode() if isinstance(key, bytes) else key
            owner = owner_of(key)
            if owner == self.worker_id:
                continue
            moved += max(self._reclaim(keys=[key, HEARTBEAT_PREFIX + owner, QUEUE]), 0)
        return moved

    def depth(self) -> int:
        return self.client.llen(QUEUE)

    def release(self) -> None:
        """On a clean exit: drop the heartbeat so nothing waits for it to lapse."""
        self.client.delete(self.heartbeat)
