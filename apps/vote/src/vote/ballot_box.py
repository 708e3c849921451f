"""Queueing a vote: the contract's enqueue script, sent as one EVALSHA on a pooled connection.

redis-py's command path (retry wrapper, observability hooks, argument filters) cost more CPU
than the round trip itself; a vote needs none of it. The errors are redis-py's own, raised by
the same connection code, so `never_sent` tells them apart as before.
"""

from __future__ import annotations

import redis

from voting_contract.wire import ENQUEUE_SCRIPT, QUEUE, SEQ_COUNTER, Vote


class BallotBox:
    def __init__(self, client: redis.Redis) -> None:
        self.pool = client.connection_pool
        # The registered script knows its SHA1 and, on NOSCRIPT, loads itself and runs again.
        self.script = client.register_script(ENQUEUE_SCRIPT)

    def push(self, vote: Vote) -> int:
        """Queue one vote; return the number Redis gave it. Raises redis-py's errors."""
        payload = vote.to_json()
        conn = self.pool.get_connection()
        try:
            conn.send_command("EVALSHA", self.script.sha, 2, QUEUE, SEQ_COUNTER, payload)
            return conn.read_response()
        except redis.exceptions.NoScriptError:
            pass  # a Redis that restarted without its script cache: nothing ran; load it below
        except BaseException as exc:
            # After anything but an error reply, a reply may still be on its way: never reuse
            # this socket (redis-py's own command path disconnects the same way).
            if not isinstance(exc, redis.ResponseError):
                conn.disconnect()
            raise
        finally:
            self.pool.release(conn)
        return self.script(keys=[QUEUE, SEQ_COUNTER], args=[payload])
