"""Argo CD in the cluster syncs the dev Application from a git repository served inside the cluster."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

# The first test also pays for the cluster and the image builds: far beyond the default 300 s.
pytestmark = [pytest.mark.kind, pytest.mark.timeout(1800)]

# The app version that the argo-cd chart 8.5.0 pinned in terraform/variables.tf installs;
# Argo CD's own manifest needs only kubectl here, where the chart would need helm.
ARGOCD_VERSION = "v3.1.5"
ARGOCD_INSTALL = f"https://raw.githubusercontent.com/argoproj/argo-cd/{ARGOCD_VERSION}/manifests/install.yaml"
GIT_NAMESPACE = "e2e-git"
GIT_URL = f"http://git-server.{GIT_NAMESPACE}.svc.cluster.local/voting-app.git"


def git(cwd, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", *args],
        cwd=cwd, check=True, capture_output=True,
    )


def served_copy(e2e, workdir):
    """What Argo CD reads, committed to a fresh repository: the dev overlay names the images
    loaded into kind, and argocd/source.yaml names the in-cluster URL."""
    src = workdir / "src"
    for folder in ("base", "overlays", "argocd"):
        shutil.copytree(e2e.root / folder, src / folder)
    dev = src / "overlays" / "dev" / "kustomization.yaml"
    doc = yaml.safe_load(dev.read_text())
    doc["images"] = [
        {"name": entry["name"], "newName": f"{e2e.image_prefix}/{entry['name']}", "newTag": e2e.tag}
        for entry in doc.get("images", [])
    ]
    dev.write_text(yaml.safe_dump(doc, sort_keys=False))
    source = src / "argocd" / "source.yaml"
    doc = yaml.safe_load(source.read_text())
    doc["data"].update(repoURL=GIT_URL, targetRevision="main")
    source.write_text(yaml.safe_dump(doc, sort_keys=False))
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "what the e2e Argo CD syncs")
    context = workdir / "context"
    context.mkdir()
    git(workdir, "clone", "-q", "--bare", str(src), str(context / "repo.git"))
    for name in ("Dockerfile", "server.py"):
        shutil.copy(e2e.root / "tests" / "e2e" / "gitserver" / name, context / name)
    return src, context


def git_server_objects(image: str) -> list[dict]:
    labels = {"app.kubernetes.io/name": "git-server"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": GIT_NAMESPACE}},
        {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "git-server", "namespace": GIT_NAMESPACE, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "containers": [{
                            "name": "git-server", "image": image, "imagePullPolicy": "Never",
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 2},
                            "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
                        }],
                    },
                },
            },
        },
        {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "git-server", "namespace": GIT_NAMESPACE},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        },
    ]


def test_argocd_syncs_dev_from_the_repository_in_the_cluster(cluster, app_images, e2e, tmp_path):
    src, context = served_copy(e2e, tmp_path)
    image = f"{e2e.image_prefix}/git-server:{e2e.tag}"
    e2e.docker_build(image, context / "Dockerfile", context)
    cluster.manager.load_image(image)
    cluster.apply(git_server_objects(image))
    cluster.wait_rollouts(GIT_NAMESPACE, timeout=180)

    cluster.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}}])
    cluster.kubectl("apply", "-n", "argocd", "--server-side", "--force-conflicts", "-f", ARGOCD_INSTALL, timeout=300)
    cluster.wait_rollouts("argocd", timeout=600)

    # Start from nothing, so everything in the namespace is Argo CD's doing.
    cluster.kubectl("delete", "namespace", e2e.dev_namespace, "--ignore-not-found", "--wait=true", timeout=300)
    rendered = subprocess.run(["kubectl", "kustomize", str(src / "argocd")], capture_output=True, text=True, check=True)
    objects = [o for o in yaml.safe_load_all(rendered.stdout) if o]
    wanted = [
        o for o in objects
        if o["kind"] == "AppProject" or (o["kind"] == "Application" and o["spec"]["source"]["path"] == "overlays/dev")
    ]
    assert [o["kind"] for o in wanted] == ["AppProject", "Application"]
    cluster.apply(wanted)
    name = wanted[1]["metadata"]["name"]

    def synced_and_healthy():
        status = cluster.json("get", "applications.argoproj.io", name, "-n", "argocd").get("status", {})
        state = (status.get("sync", {}).get("status"), status.get("health", {}).get("status"))
        print(f"{name}: sync {state[0]}, health {state[1]}")
        return state == ("Synced", "Healthy")

    e2e.wait_for(synced_and_healthy, timeout=900, interval=10, what=f"{name} to be Synced and Healthy")
    assert cluster.json("get", "namespace", e2e.dev_namespace)["metadata"]["name"] == e2e.dev_namespace
