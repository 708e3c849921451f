"""Fixtures for running the services' containers under bubblewrap against real Redis and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# The helper modules beside this file and the renderer of tests/manifests, under --import-mode=importlib.
sys.path[:0] = [str(HERE), str(HERE.parent / "manifests")]

from devstack.servers import PgCredentials, PostgresServer, RedisServer  # noqa: E402
from devstack.repo import SERVICES  # noqa: E402
from kubelet_cluster import Cluster, install  # noqa: E402
from kubelet_env import command_line, container_env, of_kind, with_cluster_ips, workload  # noqa: E402
from manifest_render import REPO, rendered_objects  # noqa: E402

# Virtualenvs built as the images build them, kept between runs while their inputs are unchanged
# (the key of each includes a hash of its inputs, so checkouts can share them). Not in the
# checkout: a checkout under /tmp would be hidden inside a pod that mounts an emptyDir there.
ENV_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "voting-app" / "test-envs"


@pytest.fixture(scope="session")
def bwrap() -> None:
    """Fails without bwrap; skips, with bwrap's reason, where it cannot create namespaces."""
    if shutil.which("bwrap") is None:
        pytest.fail("bwrap is not installed: apt-get install bubblewrap (.ci/run installs it)")
    probe = subprocess.run(
        ["bwrap", "--unshare-user", "--uid", "10001", "--gid", "10001", "--unshare-pid", "--unshare-net",
         "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"],
        capture_output=True, text=True, check=False, timeout=30,
    )
    if probe.returncode != 0:
        pytest.skip(f"bubblewrap cannot create namespaces here: {probe.stderr.strip()}")


@pytest.fixture(scope="session")
def dev_rendered() -> list[dict]:
    return rendered_objects("overlays/dev")


@pytest.fixture(scope="session")
def installed(bwrap) -> dict:
    if ENV_CACHE.is_relative_to("/tmp"):
        pytest.fail(f"{ENV_CACHE} is under /tmp, which the pods' emptyDir hides: set XDG_CACHE_HOME elsewhere")
    ENV_CACHE.mkdir(parents=True, exist_ok=True)
    return {service: install(REPO, ENV_CACHE, service) for service in SERVICES}


def _resolved(objects: list[dict], name: str) -> tuple[dict[str, str], list[str]]:
    """The environment and arguments of workload `name`'s container, as rendered."""
    pod_spec, container = workload(objects, name)
    env = container_env(container, pod_spec, objects, with_cluster_ips(of_kind(objects, "Service")))
    return env, command_line(container, [], [], env)


@pytest.fixture(scope="session")
def kube_redis(dev_rendered, servers_root) -> Iterator[RedisServer]:
    """A Redis that asks for the password the rendered redis container is started with, if any."""
    _, args = _resolved(dev_rendered, "redis")
    password = args[args.index("--requirepass") + 1] if "--requirepass" in args else None
    with RedisServer(Path(tempfile.mkdtemp(dir=servers_root, prefix="kubelet-redis-")), password=password) as server:
        yield server


@pytest.fixture(scope="session")
def kube_postgres(dev_rendered, servers_root) -> Iterator[PostgresServer]:
    """A PostgreSQL with the user, password and database the rendered db container creates."""
    env, _ = _resolved(dev_rendered, "db")
    credentials = PgCredentials(env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"])
    datadir = Path(tempfile.mkdtemp(dir=servers_root, prefix="kubelet-postgres-"))
    datadir.chmod(0o755)
    server = PostgresServer(datadir, credentials=credentials).start()
    yield server
    server.stop("immediate")


@pytest.fixture
def cluster(dev_rendered, installed, kube_redis, kube_postgres, servers_root) -> Iterator[Cluster]:
    # Short paths: Unix socket names must stay under 108 bytes.
    pods = Path(tempfile.mkdtemp(dir=servers_root, prefix="pods-"))
    # Not under /tmp: a pod with an emptyDir at /tmp sees its own empty tmpfs there.
    scratch = Path(tempfile.mkdtemp(dir=ENV_CACHE, prefix="scratch-"))
    # The only substitution: the Services redis and db stand for these servers.
    yield Cluster(dev_rendered, installed, {"redis": kube_redis.port, "db": kube_postgres.port}, pods, scratch)
    shutil.rmtree(scratch, ignore_errors=True)
