"""The reliable side of the Redis queue: nothing leaves Redis before PostgreSQL has it.

A worker moves a batch atomically from `votes` to its own processing list, writes it to
PostgreSQL, and only then deletes the processing list. While it lives it keeps a heartbeat
key; when the key lapses (SIGKILL, node loss), any other worker moves the orphaned batch back
to the head of `votes`. Re-applying a batch is harmless: rows are keyed by voter and guarded
by sequence numbers.
"""

from __future__ import annotations

import redis

from voting_contract.wire import DEAD_LETTER, QUEUE

PROCESSING_PREFIX = "votes:processing:"
HEARTBEAT_PREFIX = "votes:worker:"

_TAKE = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items > 0 then
    redis.call('LTRIM', KEYS[1], #items, -1)
    redis.call('RPUSH', KEYS[2], unpack(items))
end
return items
"""

_RECLAIM = """
if redis.call('EXISTS', KEYS[2]) == 1 then
    return -1
end
local items = redis.call('LRANGE', KEYS[1], 0, -1)
for i = #items, 1, -1 do
    redis.call('LPUSH', KEYS[3], items[i])
end
redis.call('DEL', KEYS[1])
return #items
"""


class ReliableQueue:
    def __init__(self, client: redis.Redis, worker_id: str, heartbeat_seconds: float) -> None:
        self.client = client
        self.worker_id = worker_id
        self.processing = PROCESSING_PREFIX + worker_id
        self.heartbeat = HEARTBEAT_PREFIX + worker_id
        self.heartbeat_ms = int(heartbeat_seconds * 1000)
        self._take = client.register_script(_TAKE)
        self._reclaim = client.register_script(_RECLAIM)

    def beat(self) -> None:
        self.client.set(self.heartbeat, "1", px=self.heartbeat_ms)

    def unfinished(self) -> list[bytes]:
        """A batch this worker took but never acknowledged (its previous life crashed)."""
        return self.client.lrange(self.processing, 0, -1)

    def take(self, limit: int, block_seconds: float) -> list[bytes]:
        """Up to `limit` messages, waiting up to `block_seconds` while the queue is empty."""
        items = self._take(keys=[QUEUE, self.processing], args=[limit])
        if items:
            return items
        first = self.client.blmove(QUEUE, self.processing, block_seconds, "LEFT", "RIGHT")
        if first is None:
            return []
        if limit > 1:
            return [first, *self._take(keys=[QUEUE, self.processing], args=[limit - 1])]
        return [first]

    def ack(self, dead_letters: list[str]) -> None:
        """Forget the batch in hand, filing its malformed messages, in one transaction."""
        with self.client.pipeline(transaction=True) as pipe:
            if dead_letters:
                pipe.rpush(DEAD_LETTER, *dead_letters)
            pipe.delete(self.processing)
            pipe.execute()

    def reclaim_orphans(self) -> int:
        """Move batches of workers whose heartbeat lapsed back to the head of the queue."""
        moved = 0
        for key in self.client.scan_iter(match=PROCESSING_PREFIX + "*", count=100):
            key = key.decode() if isinstance(key, bytes) else key
            if key == self.processing:
                continue
            owner = key[len(PROCESSING_PREFIX):]
            n = self._reclaim(keys=[key, HEARTBEAT_PREFIX + owner, QUEUE])
            moved += max(n, 0)
        return moved

    def depth(self) -> int:
        return self.client.llen(QUEUE)

    def release(self) -> None:
        """On a clean exit: drop the heartbeat so nothing waits for it to lapse."""
        self.client.delete(self.heartbeat)
