"""A kind cluster made by `scripts/cluster.sh up <env>`, as `make cluster` makes it, or a skip that says why not.

The tests are marked `dev` or `prod` (or both); `make e2e ENV=prod` runs `pytest -m prod`, and
the cluster fixture brings up the one environment the selected tests need. Without `-m`, the
dev tests run. pytest-kind's KindCluster is attached to the cluster the script made (it is given
the kind and kubectl on PATH, so it downloads nothing); the tests read and wait through the
`kubernetes` client. On a failure, pods, events, Applications and logs are written to
$E2E_ARTIFACTS (or a temp folder) and attached to the test report.
"""

from __future__ import annotations

import base64
import functools
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

from devstack.repo import ROOT

CLUSTER_SH = ROOT / "scripts" / "cluster.sh"
CLUSTER_NAME = os.environ.get("E2E_CLUSTER_NAME", "voting-app-e2e")
ENVIRONMENTS = ("dev", "prod")
PLATFORM_NAMESPACES = (
    "envoy-gateway-system", "cert-manager", "external-secrets", "keda", "monitoring", "metrics-server", "voting-app-secrets",
)
WATCHED_NAMESPACES = ("voting-app-dev", "voting-app-prod", "argocd", "git", *PLATFORM_NAMESPACES)
ARGOCD_NAMESPACE = "argocd"
SERVED_URL = "http://git.git.svc.cluster.local/voting-app.git"
ENV_KEY = pytest.StashKey[str]()


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "dev: an end-to-end test of the dev environment (make e2e)")
    config.addinivalue_line("markers", "prod: an end-to-end test of prod and its platform (make e2e ENV=prod)")


def environment_of(items, markexpr: str) -> str:
    """The one environment that every selected test runs in."""
    common = set(ENVIRONMENTS)
    for item in items:
        common &= {env for env in ENVIRONMENTS if item.get_closest_marker(env)}
    if not common:
        raise pytest.UsageError("the selected e2e tests need both dev and prod clusters; select one with -m dev or -m prod")
    if len(common) == 1:
        return common.pop()
    return "prod" if "prod" in markexpr else "dev"


@pytest.hookimpl(trylast=True)  # after `-m` has deselected what it deselects
def pytest_collection_modifyitems(config, items) -> None:
    if not config.option.markexpr:
        kept = [item for item in items if item.get_closest_marker("dev")]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
    if items:
        config.stash[ENV_KEY] = environment_of(items, config.option.markexpr or "")


def missing_prerequisite() -> str | None:
    """Why a kind cluster cannot be made on this machine, or None when it can."""
    missing = []
    if shutil.which("docker") is None:
        missing.append("Docker is absent (no `docker` on PATH)")
    elif subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=60).returncode != 0:
        missing.append("Docker is absent (no engine answers `docker info`)")
    missing += [f"`{tool}` is not on PATH" for tool in ("kind", "kubectl", "terraform", "git") if shutil.which(tool) is None]
    if missing:
        return "; ".join(missing) + ". The e2e and e2e-prod jobs in .github/workflows/ci.yml run these tests on GitHub Actions."
    return None


@pytest.fixture(scope="session", autouse=True)
def prerequisites() -> None:
    reason = missing_prerequisite()
    if reason and os.environ.get("E2E_REQUIRED") == "1":
        pytest.fail(f"E2E_REQUIRED=1 but {reason}")  # CI's e2e jobs must not pass by skipping
    if reason:
        pytest.skip(reason)


@functools.cache
def artifacts() -> Path:
    """Where failures and the cluster script's log go: $E2E_ARTIFACTS, or one temp folder per run."""
    path = Path(os.environ.get("E2E_ARTIFACTS") or tempfile.mkdtemp(prefix="e2e-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


class Cluster:
    """One kind cluster: pytest-kind for kubectl and port-forwards, the kubernetes client for reading and waiting."""

    def __init__(self, kind, environment: str) -> None:
        from kubernetes import client, config

        self.kind = kind
        self.environment = environment
        self.namespace = f"voting-app-{environment}"
        api = config.new_client_from_config(config_file=str(kind.kubeconfig_path))
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.autoscaling = client.AutoscalingV2Api(api)

    def kubectl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """kubectl against this cluster, for what only kubectl does (a dump for people to read)."""
        return subprocess.run(
            [str(self.kind.kubectl_path), "--kubeconfig", str(self.kind.kubeconfig_path), *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )

    def wait_for(self, *args, **kwargs):
        return wait_for(*args, **kwargs)

    def application(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object("argoproj.io", "v1alpha1", ARGOCD_NAMESPACE, "applications", name)

    def applications(self) -> list[dict]:
        return self.custom.list_namespaced_custom_object("argoproj.io", "v1alpha1", ARGOCD_NAMESPACE, "applications")["items"]

    def secret(self, namespace: str, name: str) -> dict[str, str]:
        data = self.core.read_namespaced_secret(name, namespace).data or {}
        return {key: base64.b64decode(value).decode() for key, value in data.items()}

    def served_commit(self) -> str:
        """The commit scripts/cluster.sh pushed to the in-cluster git server last."""
        return self.core.read_namespaced_config_map("served", "git").data["commit"]

    def wait_rollouts(self, namespace: str, timeout: float = 600) -> None:
        """Until every Deployment and StatefulSet in the namespace runs its current spec on every replica."""

        def pending() -> list[str]:
            late = []
            for kind, items in (
                ("deployment", self.apps.list_namespaced_deployment(namespace).items),
                ("statefulset", self.apps.list_namespaced_stateful_set(namespace).items),
            ):
                for obj in items:
                    want, status = obj.spec.replicas or 0, obj.status
                    current = (status.observed_generation or 0) >= obj.metadata.generation
                    if not current or (status.updated_replicas or 0) < want or (status.ready_replicas or 0) < want:
                        late.append(f"{kind}/{obj.metadata.name} {status.ready_replicas or 0}/{want} ready")
            return late

        wait_for(lambda: not pending(), timeout, what=f"rollouts in {namespace}", last=pending)

    def port_forward(self, target: str, remote_port: int, namespace: str):
        """pytest-kind's port-forward on a free local port; yields that port."""
        return self.kind.port_forward(target, remote_port, "--namespace", namespace, local_port=free_port())

    def exec(self, namespace: str, pod: str, command: list[str], container: str | None = None, timeout: float = 120) -> tuple[int, str]:
        """Run a command in a pod through the API; its exit code and its output."""
        from kubernetes.stream import stream

        kwargs = {"container": container} if container else {}
        resp = stream(
            self.core.connect_get_namespaced_pod_exec, pod, namespace, command=command,
            stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False, **kwargs,
        )
        resp.run_forever(timeout=timeout)
        output = resp.read_stdout() + resp.read_stderr()
        code = resp.returncode
        resp.close()
        return (code if code is not None else -1), output

    def pod_of(self, namespace: str, name: str) -> str:
        """A running pod of the workload labelled app.kubernetes.io/name=<name>."""
        pods = self.core.list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/name={name}").items
        running = [p.metadata.name for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
        assert running, f"no running pod of {name} in {namespace}"
        return running[0]

    def dump(self, dest: Path) -> str:
        """Pods, events, Applications and logs of the namespaces the tests touch; returns a short summary."""
        dest.mkdir(parents=True, exist_ok=True)
        summary = []
        for name, args in {
            "pods.txt": ("get", "pods", "-A", "-o", "wide"),
            "events.txt": ("get", "events", "-A", "--sort-by=.lastTimestamp"),
            "applications.yaml": ("get", "applications.argoproj.io", "-A", "-o", "yaml"),
        }.items():
            proc = self.kubectl(*args)
            (dest / name).write_text(proc.stdout + proc.stderr)
            if name != "applications.yaml":
                summary.append(f"$ kubectl {' '.join(args)}\n{proc.stdout}{proc.stderr}")
        for namespace in WATCHED_NAMESPACES:
            pods = self.kubectl("get", "pods", "-n", namespace, "-o", "name").stdout.split()
            for pod in pods:
                logs = self.kubectl("logs", "-n", namespace, pod, "--all-containers", "--prefix", "--tail=300")
                (dest / f"logs-{namespace}-{pod.split('/')[-1]}.txt").write_text(logs.stdout + logs.stderr)
        summary.append(f"logs of every pod in {', '.join(WATCHED_NAMESPACES)}: {dest}")
        return "\n".join(summary)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 5.0, what: str = "condition", last=None):
    """Poll until predicate() returns something truthy; fail after timeout seconds, saying what was seen."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    seen = last() if last else value
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {seen!r}")


CLUSTER_KEY = pytest.StashKey["Cluster | None"]()
FAILED_KEY = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and call.when in ("setup", "call") and item.session.config.stash.get(CLUSTER_KEY, None):
        cluster = item.session.config.stash[CLUSTER_KEY]
        item.session.config.stash[FAILED_KEY] = True
        try:
            report.sections.append(("cluster state", cluster.dump(artifacts() / item.name)))
        except Exception as exc:  # noqa: BLE001 - a broken dump must not hide the real failure
            report.sections.append(("cluster state", f"could not dump the cluster: {exc}"))
    return report


def run_cluster_script(command: str, *args: str, kubeconfig: Path, log: Path, timeout: float,
                       source: Path | None = None) -> subprocess.CompletedProcess:
    """scripts/cluster.sh, as `make cluster` runs it, for the e2e's own cluster name and kubeconfig.

    Its output goes to `log` and comes back as `stdout`."""
    env = {**os.environ, "CLUSTER_NAME": CLUSTER_NAME, "KUBECONFIG": str(kubeconfig), "WAIT_SECONDS": "2400"}
    if source:
        env["SOURCE_REPO"] = str(source)
    done = subprocess.run(
        ["bash", str(CLUSTER_SH), command, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=timeout, check=False, cwd=ROOT,
    )
    with log.open("a") as out:
        out.write(f"$ scripts/cluster.sh {command} {' '.join(args)}\n{done.stdout}")
    return done


@pytest.fixture(scope="session")
def cluster(prerequisites, request, tmp_path_factory) -> Cluster:
    from pytest_kind import KindCluster

    environment = request.config.stash.get(ENV_KEY, "dev")
    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    log = artifacts() / f"cluster-up-{environment}.log"
    # A cluster kept from an earlier failed run would carry its state: start clean.
    run_cluster_script("down", kubeconfig=kubeconfig, log=log, timeout=300)
    up = run_cluster_script("up", environment, kubeconfig=kubeconfig, log=log, timeout=3600)
    kind = KindCluster(
        CLUSTER_NAME, kubeconfig=kubeconfig,
        kind_path=Path(shutil.which("kind")), kubectl_path=Path(shutil.which("kubectl")),
    )
    made = CLUSTER_NAME in subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True).stdout.split()
    if made:
        kind.create()  # the cluster exists, so this only attaches to it through the kubeconfig
        request.config.stash[CLUSTER_KEY] = Cluster(kind, environment)
    tail = "".join(up.stdout.splitlines(keepends=True)[-60:])
    assert up.returncode == 0, f"scripts/cluster.sh up {environment} failed ({up.returncode}); its log, {log}, ends:\n{tail}"
    yield request.config.stash[CLUSTER_KEY]
    request.config.stash[CLUSTER_KEY] = None
    if request.config.stash.get(FAILED_KEY, False) and os.environ.get("E2E_KEEP_CLUSTER_ON_FAILURE") == "1":
        print(f"\nkeeping kind cluster {CLUSTER_NAME} for inspection (E2E_KEEP_CLUSTER_ON_FAILURE=1)")
        return
    run_cluster_script("down", kubeconfig=kubeconfig, log=log, timeout=300)


@pytest.fixture(scope="session")
def cluster_script(cluster):
    """Run scripts/cluster.sh against the e2e cluster: cluster_script("push", source=<a working copy>)."""

    def run(command: str, *args: str, source: Path | None = None) -> subprocess.CompletedProcess:
        log = artifacts() / f"cluster-{command}.log"
        return run_cluster_script(command, *args, kubeconfig=cluster.kind.kubeconfig_path, log=log, timeout=3600, source=source)

    return run


def tallies(message: str) -> dict[str, int]:
    """Votes per option id, from one message of result's websocket."""
    return {option["id"]: option["votes"] for option in json.loads(message)["options"]}


def websocket_shows(ws, expected: dict[str, int], timeout: float = 90) -> None:
    """Read result's websocket until its tallies are `expected`; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    seen = None
    while seen != expected:
        left = deadline - time.monotonic()
        assert left > 0, f"the websocket never showed {expected}; last tallies {seen}"
        seen = tallies(ws.recv(timeout=left))


@pytest.fixture(scope="session")
def e2e() -> SimpleNamespace:
    """The helpers and names above, for the test modules (importlib mode cannot import conftest)."""
    return SimpleNamespace(
        root=ROOT, cluster_sh=CLUSTER_SH, served_url=SERVED_URL, argocd_namespace=ARGOCD_NAMESPACE,
        wait_for=wait_for, free_port=free_port, tallies=tallies, websocket_shows=websocket_shows,
    )
