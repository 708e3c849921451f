"""scripts/cluster.sh, the kind config, and the in-cluster git server of deploy/gitserver.

`cluster.sh up` runs here for real, but with stand-ins for docker, kind, kubectl and terraform
(none can run without a Docker engine): the git server it pushes to is the real deploy/gitserver
server on 127.0.0.1, and what it served is read back with git."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from manifest_render import rendered_objects

from devstack.repo import ROOT

CLUSTER_SH = ROOT / "scripts" / "cluster.sh"
GIT_SERVER = ROOT / "deploy" / "gitserver" / "server.py"


def test_cluster_script_is_strict_and_parses():
    text = CLUSTER_SH.read_text()
    assert "set -euo pipefail" in text and "usage()" in text
    subprocess.run(["bash", "-n", str(CLUSTER_SH)], check=True)


def test_shell_scripts_pass_shellcheck():
    scripts = sorted((ROOT / "scripts").glob("*.sh"))
    assert scripts
    proc = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cluster_script_explains_itself_and_rejects_unknown_commands():
    helped = subprocess.run(["bash", str(CLUSTER_SH), "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "up [dev|prod] | push | wait | down | status" in helped.stdout
    assert "host ports 8080 8081 8443" in helped.stdout  # read from the kind config
    wrong = subprocess.run(["bash", str(CLUSTER_SH), "sideways"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "Usage" in wrong.stderr
    staging = subprocess.run(["bash", str(CLUSTER_SH), "up", "staging"], capture_output=True, text=True)
    assert staging.returncode == 2 and "unknown environment 'staging'" in staging.stderr


def test_cluster_script_names_what_is_missing(tmp_path):
    for tool in ("dirname", "basename", "sed"):  # what the script needs before it checks; none of the six
        (tmp_path / tool).symlink_to(shutil.which(tool))
    env = {**os.environ, "PATH": str(tmp_path)}
    proc = subprocess.run(["/bin/bash", str(CLUSTER_SH), "up"], capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "missing on PATH: docker kind kubectl terraform git python3" in proc.stderr


KIND_PORTS = {8080: 30080, 8081: 30081, 8443: 30443}  # dev vote, dev result, prod Gateway HTTPS


def port_mapping_problems(config: dict) -> list[str]:
    """How a kind config differs from the host ports the README promises (127.0.0.1 only)."""
    problems = []
    for node in config["nodes"]:
        if "@sha256:" not in node["image"]:
            problems.append(f"node image {node['image']} is not pinned by digest")
    mappings = [m for node in config["nodes"] for m in node.get("extraPortMappings", [])]
    found = {m["hostPort"]: m["containerPort"] for m in mappings}
    if found != KIND_PORTS:
        problems.append(f"host port -> NodePort {found}, not {KIND_PORTS}")
    problems += [f"host port {m['hostPort']} listens on {m.get('listenAddress', '0.0.0.0')}"
                 for m in mappings if m.get("listenAddress") != "127.0.0.1"]
    return problems


def test_kind_maps_the_fixed_host_ports_on_loopback_and_pins_its_node_image():
    config = yaml.safe_load((ROOT / "scripts" / "kind-cluster.yaml").read_text())
    assert config["name"] == "voting-app"
    assert port_mapping_problems(config) == []


def test_a_kind_config_without_the_mappings_or_open_to_the_network_is_caught():
    before = {"nodes": [{"role": "control-plane", "image": "kindest/node:v1.35.0"}]}  # what it had before
    assert port_mapping_problems(before) == [
        "node image kindest/node:v1.35.0 is not pinned by digest", f"host port -> NodePort {{}}, not {KIND_PORTS}"]
    wide = {"nodes": [{"image": "x@sha256:0", "extraPortMappings": [
        {"hostPort": h, "containerPort": c} for h, c in KIND_PORTS.items()]}]}
    assert len(port_mapping_problems(wide)) == 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_git_server_serves_a_clone(tmp_path):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    work = tmp_path / "work"
    work.mkdir()
    (work / "README").write_text("served\n")
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=work, check=True)
    subprocess.run([*git, "add", "README"], cwd=work, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], cwd=work, check=True)
    served = tmp_path / "srv"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(served / "voting-app.git")], check=True)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(GIT_SERVER), str(served), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/voting-app.git"
        for _ in range(50):
            if subprocess.run(["git", "ls-remote", url], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        clone = tmp_path / "clone"
        subprocess.run(["git", "clone", "-q", url, str(clone)], check=True, timeout=60)
        assert (clone / "README").read_text() == "served\n"
        missing = subprocess.run(["git", "ls-remote", f"http://127.0.0.1:{port}/nothing.git"], capture_output=True)
        assert missing.returncode != 0
    finally:
        server.terminate()
        server.wait(timeout=10)


def git_commit(work: Path, text: str) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    (work / "README").write_text(text)
    subprocess.run([*git, "add", "README"], cwd=work, check=True)
    subprocess.run([*git, "commit", "-q", "-m", text], cwd=work, check=True)


class GitServer:
    """deploy/gitserver/server.py on a free loopback port, creating voting-app.git as the pod does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/voting-app.git"
        self.process = subprocess.Popen(
            [sys.executable, str(GIT_SERVER), str(root), str(self.port), "voting-app.git"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60  # a busy machine starts Python slowly
        while time.monotonic() < deadline:
            if subprocess.run(["git", "ls-remote", self.url], capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError("the git server did not answer within 60 s")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def test_the_git_server_takes_a_push_from_a_shallow_checkout(tmp_path):
    """CI checks out one commit without history; cluster.sh pushes from such a checkout."""
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=full, check=True)
    git_commit(full, "one\n")
    git_commit(full, "two\n")
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{full}", str(shallow)], check=True)
    server = GitServer(tmp_path / "srv")
    try:
        subprocess.run(["git", "-C", str(shallow), "push", "-q", server.url, "HEAD:refs/heads/main"], check=True, timeout=60)
        clone = tmp_path / "clone"
        subprocess.run(["git", "clone", "-q", "--branch", "main", server.url, str(clone)], check=True, timeout=60)
        assert (clone / "README").read_text() == "two\n"
    finally:
        server.stop()


def test_the_git_server_manifests_are_what_cluster_sh_and_argo_cd_expect():
    from manifest_checks import containers, pod_specs, restricted_problems

    objects = rendered_objects("deploy/gitserver")
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {("Namespace", "git"), ("Service", "git"), ("Deployment", "git-server")} <= kinds
    assert all(o["metadata"].get("namespace", "git") == "git" for o in objects)
    service = next(o for o in objects if o["kind"] == "Service")
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(80, "http")]
    problems = [p for obj, tpl in pod_specs(objects) for c in containers(tpl["spec"])
                for p in restricted_problems(obj["metadata"]["name"], tpl["spec"], c)]
    assert problems == []
    dockerfile = (ROOT / "deploy" / "gitserver" / "Dockerfile").read_text()
    assert re.search(r"^FROM \S+@sha256:[0-9a-f]{64}$", dockerfile, re.M), "the base image is pinned by digest"
    assert 'CMD ["python", "/srv/server.py", "/srv/git", "8080", "voting-app.git"]' in dockerfile


def test_the_git_server_pod_would_be_refused_without_its_restricted_settings():
    from manifest_checks import containers, pod_specs, restricted_problems

    objects = rendered_objects("deploy/gitserver")
    obj, tpl = next(pod_specs(objects))
    del tpl["spec"]["securityContext"]
    container = containers(tpl["spec"])[0]
    container["securityContext"].pop("readOnlyRootFilesystem")
    assert restricted_problems("git-server", tpl["spec"], container) == [
        "git-server: seccompProfile is None, not RuntimeDefault", "git-server: readOnlyRootFilesystem is not true"]


# Stand-ins for what needs a Docker engine. Each records its arguments in $CALLS; $STATE keeps what a
# real one would remember (clusters, built images, the recorded environment, created secrets).
STUBS = {
    "docker": r"""#!/bin/bash
echo "docker $*" >> "$CALLS"
if [ "$1 $2" = "image inspect" ]; then grep -qxF "$3" "$STATE/images" 2>/dev/null; exit; fi
if [ "$1" = build ]; then
  while [ $# -gt 0 ]; do [ "$1" = -t ] && echo "$2" >> "$STATE/images"; shift; done
fi
""",
    "kind": r"""#!/bin/bash
echo "kind $*" >> "$CALLS"
case "$1 $2" in
  "get clusters") cat "$STATE/clusters" 2>/dev/null ;;
  "create cluster") shift 2; [ "$1" = --name ] && echo "$2" >> "$STATE/clusters" ;;
esac
exit 0
""",
    "terraform": r"""#!/bin/bash
echo "terraform $*" >> "$CALLS"
""",
    "kubectl": r"""#!/bin/bash
echo "kubectl $*" >> "$CALLS"
args=" $* "
case "$args" in
  *" port-forward "*) echo $$ >> "$STATE/forwards"; echo "Forwarding from 127.0.0.1:$GIT_PORT -> 8080"; exec sleep 600 ;;
  *" get configmap served "*) cat "$STATE/environment" 2>/dev/null || exit 1 ;;
  *" create configmap served "*)
    for a in "$@"; do case "$a" in --from-literal=environment=*) echo -n "${a#*=environment=}" > "$STATE/environment" ;; esac; done
    echo "kind: ConfigMap" ;;
  *" create secret generic "*)
    name=""; for a in "$@"; do
      case "$a" in
        prod-db|prod-redis) name="$a" ;;
        --from-file=*) spec="${a#--from-file=}"; cp "${spec#*=}" "$STATE/secret-$name-${spec%%=*}" ;;
      esac
    done ;;
  *" get secret "*)
    prev=""; for a in "$@"; do [ "$prev" = secret ] && name="$a"; prev="$a"; done
    compgen -G "$STATE/secret-$name-*" > /dev/null || exit 1 ;;
  *" get applications.argoproj.io "*) printf 'Synced Healthy' ;;
  *" apply "*) cat > /dev/null ;;
  *" create namespace "*) echo "kind: Namespace" ;;
esac
exit 0
""",
}


class StubbedRun:
    """cluster.sh with the stand-ins above first on PATH, free host ports, and a git server on loopback."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.bin, self.state = tmp_path / "bin", tmp_path / "state"
        for folder in (self.bin, self.state, tmp_path / "terraform"):
            folder.mkdir()
        for name, body in STUBS.items():
            (self.bin / name).write_text(body)
            (self.bin / name).chmod(0o755)
        self.calls = tmp_path / "calls"
        self.ports = [free_port() for _ in range(3)]
        config = yaml.safe_load((ROOT / "scripts" / "kind-cluster.yaml").read_text())
        for mapping, port in zip(config["nodes"][0]["extraPortMappings"], self.ports):
            mapping["hostPort"] = port
        self.kind_config = tmp_path / "kind.yaml"
        self.kind_config.write_text(yaml.safe_dump(config))
        (tmp_path / "terraform" / "values").mkdir()
        (tmp_path / "terraform" / "values" / "argocd.yaml").write_text("configs:\n  cm:\n    timeout.reconciliation: 60s\n")
        self.server = GitServer(tmp_path / "srv")

    def __call__(self, *args: str, **extra: str) -> subprocess.CompletedProcess:
        env = {**extra, 
            "PATH": f"{self.bin}:{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(self.tmp),
            "CALLS": str(self.calls), "STATE": str(self.state), "GIT_PORT": str(self.server.port),
            "CLUSTER_NAME": "stub", "KUBECONFIG": str(self.tmp / "kubeconfig"), "KIND_CONFIG": str(self.kind_config),
            "TERRAFORM_DIR": str(self.tmp / "terraform"),
        }
        return subprocess.run(["bash", str(CLUSTER_SH), *args], env=env, capture_output=True, text=True, timeout=300)

    def served(self) -> Path:
        clone = self.tmp / f"served-{time.monotonic_ns()}"
        subprocess.run(["git", "clone", "-q", "--branch", "main", self.server.url, str(clone)], check=True, timeout=120)
        return clone

    def forwards_left(self) -> list[int]:
        """The stand-in port-forwards still running (each wrote its PID); ends them too."""
        pids = [int(p) for p in (self.state / "forwards").read_text().split()]
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            alive.append(pid)
            os.kill(pid, 15)
        return alive

    def call_lines(self, tool: str) -> list[str]:
        return [line for line in self.calls.read_text().splitlines() if line.startswith(f"{tool} ")]


def served_problems(clone: Path, commit: str, env: str) -> list[str]:
    """What is wrong with a served copy: it must be `commit` plus one commit pinning local images in overlays/<env>."""
    problems = []
    git = ["git", "-C", str(clone)]
    parent = subprocess.run([*git, "rev-parse", "HEAD^"], capture_output=True, text=True).stdout.strip()
    if parent != commit:
        problems.append(f"the served commit's parent is {parent or 'missing'}, not the working copy's {commit}")
    changed = subprocess.run([*git, "diff", "--name-only", "HEAD^", "HEAD"], capture_output=True, text=True).stdout.split()
    if changed != [f"overlays/{env}/kustomization.yaml"]:
        problems.append(f"the pin commit changes {changed}")
    images = yaml.safe_load((clone / "overlays" / env / "kustomization.yaml").read_text()).get("images", [])
    for entry in images:
        want = f"voting-app-local/{entry['name']}"
        if entry.get("newName") != want or not re.fullmatch(r"[0-9a-f]{12}", str(entry.get("newTag"))) or "digest" in entry:
            problems.append(f"overlays/{env} pins {entry}")
    return problems


def head() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


def test_cluster_up_prod_serves_the_commit_plus_the_pin_and_hands_terraform_the_in_cluster_source(tmp_path):
    run = StubbedRun(tmp_path)
    try:
        done = run("up", "prod")
        assert done.returncode == 0, done.stdout + done.stderr
        clone = run.served()
        assert served_problems(clone, head(), "prod") == []
        pins = {e["name"]: f"{e['newName']}:{e['newTag']}" for e in
                yaml.safe_load((clone / "overlays" / "prod" / "kustomization.yaml").read_text())["images"]}
        builds = run.call_lines("docker build")
        for service, image in pins.items():
            assert any(f"-t {image} " in line and f"--build-arg SERVICE={service}" in line
                       and "/apps/Dockerfile" in line for line in builds), (service, builds)
            assert f"kind load docker-image --name stub {image}" in run.call_lines("kind")
        apply = next(line for line in run.call_lines("terraform") if " apply " in line)
        for var in ("environment=prod", "repo_url=http://git.git.svc.cluster.local/voting-app.git",
                    "target_revision=main", "kube_context=kind-stub"):
            assert f"-var {var}" in apply, apply
        # The Secrets the ClusterSecretStore reads, random and made before Terraform ran.
        user, password = (run.state / "secret-prod-db-username").read_text(), (run.state / "secret-prod-db-password").read_text()
        assert user == "votes" and re.fullmatch(r"[0-9a-f]{48}", password)
        assert re.fullmatch(r"[0-9a-f]{48}", (run.state / "secret-prod-redis-password").read_text())
        lines = run.calls.read_text().splitlines()
        assert max(i for i, l in enumerate(lines) if "create secret generic" in l) < min(
            i for i, l in enumerate(lines) if l.startswith("terraform "))
        assert f"--config {run.kind_config}" in next(l for l in run.call_lines("kind") if "create cluster" in l)
        assert "https://vote.localhost:8443" in done.stdout and "voting-app-local-ca" in done.stdout
        assert run.forwards_left() == [], "the port-forward outlived the script"
    finally:
        run.server.stop()


def test_cluster_push_rebuilds_nothing_unchanged_and_refuses_another_environment(tmp_path):
    run = StubbedRun(tmp_path)
    try:
        up = run("up")
        assert up.returncode == 0, up.stdout + up.stderr
        built = len(run.call_lines("docker build"))
        assert built == 4  # the git server and the three services
        # A working copy one commit ahead that changes no image's inputs.
        work = tmp_path / "work"
        subprocess.run(["git", "clone", "-q", "--shared", str(ROOT), str(work)], check=True)
        git_commit(work, "a change to the docs only\n")
        pushed = run("push", SOURCE_REPO=str(work))
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        assert len(run.call_lines("docker build")) == built, "inputs unchanged, yet images were rebuilt"
        assert "Argo CD was asked to refresh now and will sync within about 60 s" in pushed.stdout
        ahead = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        assert served_problems(run.served(), ahead, "dev") == []
        assert any("annotate applications.argoproj.io --all argocd.argoproj.io/refresh=normal" in line
                   for line in run.call_lines("kubectl"))
        assert run.forwards_left() == [], "a port-forward outlived the script"
        other = run("up", "prod")
        assert other.returncode == 1 and "runs dev, not prod: make cluster-down first" in other.stderr
    finally:
        run.server.stop()


def test_a_served_copy_without_the_pin_is_caught(tmp_path):
    """What the e2e once served: the commit as it is, its overlay naming the placeholder digests."""
    server = GitServer(tmp_path / "srv")
    try:
        subprocess.run(["git", "-C", str(ROOT), "push", "-q", server.url, "HEAD:refs/heads/main"], check=True, timeout=120)
        clone = tmp_path / "clone"
        subprocess.run(["git", "clone", "-q", "--branch", "main", server.url, str(clone)], check=True, timeout=120)
        found = served_problems(clone, head(), "dev")
        assert any("is not the working copy's" in p or "parent is" in p for p in found)
        assert any("overlays/dev pins" in p for p in found)
    finally:
        server.stop()


def test_cluster_up_names_the_host_ports_that_are_taken(tmp_path):
    run = StubbedRun(tmp_path)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", run.ports[2]))
        listener.listen()
        try:
            done = run("up")
        finally:
            run.server.stop()
    assert done.returncode == 1
    assert f"127.0.0.1 port(s) {run.ports[2]} already in use" in done.stderr
    assert not run.call_lines("kind create"), "kind must not be asked to create a cluster it cannot map"


def test_gitops_images_set_pins_a_tag_like_kustomize_edit_set_image(gitops_images):
    text = (ROOT / "overlays" / "dev" / "kustomization.yaml").read_text()
    out = yaml.safe_load(gitops_images.set_images(text, ["vote=voting-app-local/vote:0123456789ab"]))
    vote = next(e for e in out["images"] if e["name"] == "vote")
    assert vote == {"name": "vote", "newName": "voting-app-local/vote", "newTag": "0123456789ab"}
    for bad in ("nope=x/y:z", "vote=x/y", "vote=x/y@sha256:00"):
        try:
            gitops_images.set_images(text, [bad])
        except ValueError:
            continue
        raise AssertionError(f"{bad} was accepted")


def route_hosts(objects: list[dict]) -> dict[str, str]:
    """service -> the first hostname of the HTTPRoute that sends traffic to it."""
    found = {}
    for obj in objects:
        if obj["kind"] == "HTTPRoute":
            for rule in obj["spec"].get("rules", []):
                for backend in rule.get("backendRefs", []):
                    found[backend["name"]] = obj["spec"]["hostnames"][0]
    return found


def printed_host_problems(script: str, objects: list[dict]) -> list[str]:
    """Where the URLs cluster.sh prints for prod differ from what prod's routes serve."""
    match = re.search(r"^prod_hosts=\((\S+) (\S+)\)$", script, re.M)
    if not match:
        return ["cluster.sh has no prod_hosts=(vote result)"]
    routes = route_hosts(objects)
    return [f"cluster.sh prints https://{printed}:8443 for {service}, prod routes {routes.get(service)}"
            for service, printed in zip(("vote", "result"), match.groups()) if routes.get(service) != printed]


def test_cluster_sh_prints_the_hostnames_prods_routes_serve(overlays):
    if not route_hosts(overlays["prod"]):
        pytest.skip("overlays/prod renders no HTTPRoute yet")
    assert printed_host_problems(CLUSTER_SH.read_text(), overlays["prod"]) == []


def test_a_printed_hostname_that_no_route_serves_is_caught():
    routes = [{"kind": "HTTPRoute", "spec": {"hostnames": [host], "rules": [{"backendRefs": [{"name": name}]}]}}
              for name, host in (("vote", "vote.example.test"), ("result", "result.localhost"))]
    script = "prod_hosts=(vote.localhost result.localhost)\n"
    assert printed_host_problems(script, routes) == [
        "cluster.sh prints https://vote.localhost:8443 for vote, prod routes vote.example.test"]
