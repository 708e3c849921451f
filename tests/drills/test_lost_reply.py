"""A Redis reply lost after the command ran must not lose a batch.

Found by the Redis restart drill (prod settings): a restart now and then loses exactly one
batch of votes. Here the fault is made exact with a proxy that drops one reply: Redis has run
the worker's "take a batch" script, the connection breaks before the answer arrives, as it does
when Redis shuts down (or is killed) between running a command and writing its reply.
"""

from __future__ import annotations

import socket
import threading

import pytest
import redis

from devstack.load import push_votes
from worker.queue import PROCESSING_PREFIX
from worker.service import Worker
from worker.settings import Settings


class DropOneReply:
    """A TCP proxy to Redis that, once armed, swallows the reply to the next script call and closes that connection."""

    def __init__(self, upstream_port: int, *, then_refuse: bool = False) -> None:
        self.upstream_port = upstream_port
        self.then_refuse = then_refuse  # after the drop, refuse new connections, as a Redis going down does
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.dropped = 0
        self._drop_next = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, replies: bool) -> None:
        try:
            while data := src.recv(65536):
                if not replies and self.armed.is_set() and b"EVALSHA" in data.upper():
                    self.armed.clear()
                    self._drop_next.set()
                elif replies and self._drop_next.is_set():
                    self._drop_next.clear()
                    self.dropped += 1
                    if self.then_refuse:
                        self.close()
                    break  # the script ran; its answer never arrives
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread; the port then refuses
        except OSError:
            pass
        self.listener.close()


@pytest.fixture
def proxy(redis_server):
    p = DropOneReply(redis_server.port)
    yield p
    p.close()


def test_a_lost_reply_to_take_loses_no_vote(redis_server, postgres_server, redis_client, pg_conn, proxy):
    truth = push_votes(redis_client, [(f"v{i}", "ab"[i % 2]) for i in range(10)])
    settings = Settings.from_env({
        "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(proxy.port), **postgres_server.env,
        "WORKER_ID": "lost-reply", "WORKER_BATCH_SIZE": "5", "WORKER_HEARTBEAT_SECONDS": "5",
    })
    worker = Worker(settings)
    try:
        worker.queue.beat()  # connect, and have the scripts loaded, before the fault
        redis_client.script_load(worker.queue._fill.script)
        proxy.armed.set()
        for _ in range(20):  # as Worker.run does: a Redis error ends the step, the next one goes on
            try:
                if not worker.pipeline_step():
                    break
            except redis.RedisError:
                continue
    finally:
        worker.store.close()
        worker.redis.close()
    assert proxy.dropped == 1
    rows = dict(pg_conn.execute("SELECT id, vote FROM votes").fetchall())
    held = sum(redis_client.llen(k) for k in redis_client.keys(PROCESSING_PREFIX + "*"))
    assert held == 0
    assert rows == truth, f"{len(truth) - len(rows)} votes lost: {sorted(set(truth) - set(rows))}"


def test_a_vote_whose_reply_is_lost_is_never_called_not_recorded(redis_server, redis_client):
    """Redis ran the enqueue script, then the reply was lost: the service cannot know, and says so."""
    from vote.app import create_app
    from vote.settings import Settings
    from voting_contract.ballot import Ballot
    from voting_contract.settings import RedisSettings
    from voting_contract.wire import ENQUEUE_SCRIPT, QUEUE

    proxy = DropOneReply(redis_server.port, then_refuse=True)
    try:
        settings = Settings(redis=RedisSettings("127.0.0.1", proxy.port, None), ballot=Ballot.of("Cats", "Dogs"),
                            host="127.0.0.1", port=8080, workers=1)
        client = create_app(settings).test_client()
        assert client.get("/").status_code == 200
        redis_client.script_load(ENQUEUE_SCRIPT)  # so the first call runs the script, not SCRIPT LOAD
        assert client.post("/", data={"vote": "a"}).status_code == 200  # a connection through the proxy
        before = redis_client.llen(QUEUE)
        proxy.armed.set()
        response = client.post("/", data={"vote": "b"})
    finally:
        proxy.close()
    assert proxy.dropped == 1
    queued = redis_client.llen(QUEUE) - before
    text = response.get_data(as_text=True)
    assert queued == 1  # the script ran
    assert response.status_code == 503
    assert "not recorded" not in text and "could not confirm your vote" in text
