"""The dev overlay's vote, worker and result, each installed as its image is and run as its pod would be."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devstack.dockerfile import Image, read_image
from devstack.repo import DOCKERFILE
from kubelet_env import (
    command_line, container_env, drain_budget, empty_dir_mounts, http_probes, of_kind, point_at_test_servers,
    run_as, with_cluster_ips, workload,
)
from kubelet_pod import Pod, PodFailed

READY_TIMEOUT = 30.0


def install_key(repo: Path, dockerfile: str, image: Image) -> str:
    """A hash of uv.lock, the Dockerfile and every file its build stage copies in."""
    digest = hashlib.sha256()
    digest.update(dockerfile.encode())
    paths = [repo / "uv.lock"] + [repo / source for source in image.copies]
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts) \
            if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(repo)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]


def install(repo: Path, cache: Path, service: str) -> tuple[Image, Path]:
    """The image's `uv sync` into a virtualenv of the service's own, reused while its inputs are unchanged."""
    text = DOCKERFILE.read_text()
    image = read_image(text, {"SERVICE": service})
    home = cache / f"{service}-{install_key(repo, text, image)}"
    venv = home / image.venv.lstrip("/")
    if not (home / ".complete").exists():
        for stale in cache.glob(f"{service}-*"):
            shutil.rmtree(stale)
        uv = repo / ".tools" / "bin" / "uv"
        if not uv.exists():
            raise FileNotFoundError(f"{uv} is missing: run `make install`")
        # The build stage's settings, except the image's own Python path and virtualenv location.
        env = {**os.environ, **image.build_env, "UV_PROJECT_ENVIRONMENT": str(venv)}
        env.pop("UV_PYTHON", None)
        done = subprocess.run([str(uv), *image.install[1:]], cwd=repo, env=env, capture_output=True, text=True,
                              check=False, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(image.install)} failed:\n{done.stderr}")
        (home / ".complete").write_text(" ".join(image.install) + "\n")
    return image, venv


@dataclass
class Cluster:
    """Rendered objects, installed services and the test servers that stand in for redis and db."""

    objects: list[dict]
    installed: dict[str, tuple[Image, Path]]
    test_ports: dict[str, int]
    folder: Path
    scratch: Path

    def pod(self, name: str, *, objects: list[dict] | None = None, extra_env: dict[str, str] | None = None,
            edit_argv: Callable[[list[str]], list[str]] = lambda argv: argv) -> tuple[Pod, dict, dict]:
        """The container `name` as the kubelet would start it from `objects` (default: as rendered)."""
        objects = self.objects if objects is None else objects
        pod_spec, container = workload(objects, name)
        services = with_cluster_ips(of_kind(objects, "Service"))
        env = point_at_test_servers(container_env(container, pod_spec, objects, services), services, self.test_ports)
        image, venv = self.installed[name]
        image_venv_bin = image.venv.rstrip("/") + "/bin"
        image_env = dict(image.env)
        image_env["PATH"] = image_env["PATH"].replace(image_venv_bin, str(venv / "bin"))
        uid, gid = run_as(pod_spec, container)
        workdir = str(venv.parent) if image.workdir == os.path.dirname(image.venv.rstrip("/")) else image.workdir
        pod = Pod(
            name=name,
            argv=edit_argv(command_line(container, image.entrypoint, image.cmd, env)),
            env={**image_env, "HOME": image.home, **env, **(extra_env or {})},
            uid=image.user[0] if uid is None else uid,
            gid=image.user[1] if gid is None else gid,
            writable=empty_dir_mounts(pod_spec, container),
            workdir=workdir,
            ports=[p["containerPort"] for p in container.get("ports", [])],
            upstream=sorted(self.test_ports.values()),
            folder=Path(tempfile.mkdtemp(dir=self.folder, prefix=f"{name}-")),
        )
        return pod, pod_spec, container


def start(pod: Pod, container: dict) -> list[str]:
    """Start the pod and wait until every httpGet probe answers 2xx; the problems found."""
    pod.start()
    try:
        pod.wait_ready(http_probes(container), READY_TIMEOUT)
    except PodFailed as exc:
        pod.kill()
        return [str(exc)]
    return []


def stop(pod: Pod, pod_spec: dict, container: dict) -> list[str]:
    """SIGTERM within the drain budget, then the log scanned for writes outside the mounts."""
    problems = []
    try:
        if pod.running() and (problem := pod.terminate(drain_budget(pod_spec, container))):
            problems.append(problem)
    finally:
        pod.kill()
    return problems + [f"{pod.name} wrote outside its mounts or crashed: {line}" for line in pod.write_failures()]


def lifecycle(pod: Pod, pod_spec: dict, container: dict, during: Callable[[Pod], None] = lambda pod: None) -> list[str]:
    """Start, serve the probes, SIGTERM, scan the log: an empty list means the pod starts, serves and stops cleanly."""
    problems = start(pod, container)
    try:
        if not problems:
            during(pod)
    finally:
        problems += stop(pod, pod_spec, container)
    return problems
