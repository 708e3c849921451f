"""A real kind cluster for the end-to-end tests, or a skip that says why there cannot be one.

The skip lives here, as a fixture of this folder only, so it can never hide a test elsewhere.
On a failure the cluster's pods, events and logs are written to $E2E_ARTIFACTS (or a temp
folder) and attached to the test report.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KIND_CONFIG = ROOT / "scripts" / "kind-cluster.yaml"
CLUSTER_NAME = "voting-app-e2e"
SERVICES = ("vote", "worker", "result")
IMAGE_PREFIX = "voting-app-e2e"
TAG = "e2e"
DEV_NAMESPACE = "voting-app-dev"
WATCHED_NAMESPACES = (DEV_NAMESPACE, "argocd", "e2e-git")


def missing_prerequisite() -> str | None:
    """Why a kind cluster cannot be made on this machine, or None when it can."""
    missing = []
    if shutil.which("docker") is None:
        missing.append("Docker is absent (no `docker` on PATH)")
    elif subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=60).returncode != 0:
        missing.append("Docker is absent (no engine answers `docker info`)")
    missing += [f"`{tool}` is not on PATH" for tool in ("kind", "kubectl") if shutil.which(tool) is None]
    if missing:
        return "; ".join(missing) + ". The e2e job in .github/workflows/ci.yml runs these tests on GitHub Actions."
    return None


@pytest.fixture(scope="session", autouse=True)
def prerequisites() -> None:
    reason = missing_prerequisite()
    if reason and os.environ.get("E2E_REQUIRED") == "1":
        pytest.fail(f"E2E_REQUIRED=1 but {reason}")  # CI's e2e job must not pass by skipping
    if reason:
        pytest.skip(reason)


class Cluster:
    """kubectl against one kind cluster, with argument lists (no shell)."""

    def __init__(self, manager) -> None:
        self.manager = manager
        self.kubeconfig = str(manager.kubeconfig)

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, *args],
            input=stdin, capture_output=True, text=True, timeout=timeout, check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def json(self, *args: str) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def apply(self, objects: list[dict], *extra: str) -> None:
        self.kubectl("apply", *extra, "-f", "-", stdin=yaml.safe_dump_all(objects), timeout=300)

    def wait_rollouts(self, namespace: str, timeout: int = 420) -> None:
        """Block until every Deployment and StatefulSet in the namespace has rolled out."""
        for kind in ("deployment", "statefulset"):
            for name in self.kubectl("get", kind, "-n", namespace, "-o", "name").stdout.split():
                self.kubectl("rollout", "status", "-n", namespace, name, f"--timeout={timeout}s", timeout=timeout + 30)

    def port_forward(self, target: str, remote_port: int, namespace: str):
        """A context manager forwarding a free local port; its `.local_port` says which."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            local = probe.getsockname()[1]
        forward = self.manager.port_forwarding(target, local, remote_port, namespace=namespace)
        forward.local_port = local
        return forward

    def dump(self, dest: Path) -> str:
        """Pods, events and logs of the namespaces the tests touch; returns a short summary."""
        dest.mkdir(parents=True, exist_ok=True)
        summary = []
        for name, args in {
            "pods.txt": ("get", "pods", "-A", "-o", "wide"),
            "events.txt": ("get", "events", "-A", "--sort-by=.lastTimestamp"),
            "applications.yaml": ("get", "applications.argoproj.io", "-A", "-o", "yaml"),
        }.items():
            proc = self.kubectl(*args, check=False)
            (dest / name).write_text(proc.stdout + proc.stderr)
            if name != "applications.yaml":
                summary.append(f"$ kubectl {' '.join(args)}\n{proc.stdout}{proc.stderr}")
        for namespace in WATCHED_NAMESPACES:
            pods = self.kubectl("get", "pods", "-n", namespace, "-o", "name", check=False).stdout.split()
            for pod in pods:
                logs = self.kubectl("logs", "-n", namespace, pod, "--all-containers", "--prefix", "--tail=300", check=False)
                (dest / f"logs-{namespace}-{pod.split('/')[-1]}.txt").write_text(logs.stdout + logs.stderr)
        summary.append(f"logs of every pod in {', '.join(WATCHED_NAMESPACES)}: {dest}")
        return "\n".join(summary)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and call.when in ("setup", "call") and item.session.config.stash.get(CLUSTER_KEY, None):
        cluster = item.session.config.stash[CLUSTER_KEY]
        item.session.config.stash[FAILED_KEY] = True
        dest = Path(os.environ.get("E2E_ARTIFACTS") or tempfile.mkdtemp(prefix="e2e-")) / item.name
        try:
            report.sections.append(("cluster state", cluster.dump(dest)))
        except Exception as exc:  # noqa: BLE001 - a broken dump must not hide the real failure
            report.sections.append(("cluster state", f"could not dump the cluster: {exc}"))
    return report


CLUSTER_KEY = pytest.StashKey["Cluster | None"]()
FAILED_KEY = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def cluster(prerequisites, request, tmp_path_factory) -> Cluster:
    from pytest_kubernetes.providers import select_provider_manager

    config = yaml.safe_load(KIND_CONFIG.read_text())
    config["name"] = CLUSTER_NAME
    config_path = tmp_path_factory.mktemp("kind") / "kind.yaml"
    config_path.write_text(yaml.safe_dump(config))
    # A cluster kept from an earlier failed run would make `kind create` refuse: start clean.
    subprocess.run(["kind", "delete", "cluster", "--name", CLUSTER_NAME], capture_output=True, check=False)
    manager = select_provider_manager("kind")(None, str(config_path))
    try:
        manager.create(timeout=180)
    except subprocess.CalledProcessError as exc:
        raise AssertionError(f"kind create cluster failed:\n{exc.stderr.decode(errors='replace')}") from exc
    kind_cluster = Cluster(manager)
    request.config.stash[CLUSTER_KEY] = kind_cluster
    # terraform/main.tf makes the same StorageClass for `make cluster`; kind's provisioner backs it.
    kind_cluster.apply([{
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "local-storage"},
        "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
    }])
    yield kind_cluster
    request.config.stash[CLUSTER_KEY] = None
    if request.config.stash.get(FAILED_KEY, False) and os.environ.get("E2E_KEEP_CLUSTER_ON_FAILURE") == "1":
        print(f"\nkeeping kind cluster {CLUSTER_NAME} for inspection (E2E_KEEP_CLUSTER_ON_FAILURE=1)")
        return
    manager.delete()


def docker_build(tag: str, dockerfile: Path, context: Path) -> None:
    proc = subprocess.run(
        ["docker", "build", "-f", str(dockerfile), "-t", tag, str(context)],
        capture_output=True, text=True, check=False, timeout=1200,
    )
    assert proc.returncode == 0, f"docker build {tag} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"


@pytest.fixture(scope="session")
def app_images(cluster) -> dict[str, str]:
    """The three images built from this checkout and loaded into kind, by service."""
    images = {}
    for service in SERVICES:
        tag = f"{IMAGE_PREFIX}/{service}:{TAG}"
        docker_build(tag, ROOT / "apps" / service / "Dockerfile", ROOT)
        cluster.manager.load_image(tag)
        images[service] = tag
    return images


def overlay_image_names(overlay: Path) -> dict[str, str]:
    """service -> the image name the overlay renders (its newName), read from its kustomization."""
    doc = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    return {entry["name"]: entry.get("newName", entry["name"]) for entry in doc.get("images", [])}


def render_with_local_images(overlay: Path, workdir: Path) -> list[dict]:
    """`kubectl kustomize` of the overlay with the app images swapped for the ones loaded into kind."""
    workdir.mkdir(parents=True, exist_ok=True)
    names = overlay_image_names(overlay)
    wrapper = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(overlay, workdir)],
        "images": [
            {"name": names.get(service, service), "newName": f"{IMAGE_PREFIX}/{service}", "newTag": TAG}
            for service in SERVICES
        ],
    }
    (workdir / "kustomization.yaml").write_text(yaml.safe_dump(wrapper))
    out = subprocess.run(["kubectl", "kustomize", str(workdir)], capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="session")
def dev_deployed(cluster, app_images, tmp_path_factory) -> list[dict]:
    """The dev overlay, rendered with the local images, applied and rolled out."""
    objects = render_with_local_images(ROOT / "overlays" / "dev", tmp_path_factory.mktemp("render"))
    cluster.apply(objects)
    cluster.wait_rollouts(DEV_NAMESPACE)
    return objects


def wait_for(predicate, timeout: float, interval: float = 2.0, what: str = "condition"):
    """Poll until predicate() returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}")


@pytest.fixture(scope="session")
def e2e() -> SimpleNamespace:
    """The helpers and names above, for the test modules (importlib mode cannot import conftest)."""
    return SimpleNamespace(
        root=ROOT, services=SERVICES, image_prefix=IMAGE_PREFIX, tag=TAG, dev_namespace=DEV_NAMESPACE,
        docker_build=docker_build, render_with_local_images=render_with_local_images, wait_for=wait_for,
    )
