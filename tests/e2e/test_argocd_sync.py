"""Argo CD, installed by Terraform, syncs the environment from the git server in the cluster at the served commit."""

from __future__ import annotations

import pytest

# The first test also pays for `scripts/cluster.sh up`: far beyond the default 300 s.
pytestmark = [pytest.mark.dev, pytest.mark.prod, pytest.mark.timeout(3600)]


def sources(app: dict) -> list[dict]:
    spec = app["spec"]
    return spec.get("sources") or [spec["source"]]


def test_every_application_is_synced_and_healthy_from_the_git_server_in_the_cluster(cluster, e2e):
    apps = {app["metadata"]["name"]: app for app in cluster.applications()}
    wanted = f"voting-app-{cluster.environment}"
    assert wanted in apps, f"no Application {wanted}; Argo CD has {sorted(apps)}"
    if cluster.environment == "dev":
        assert "voting-app-prod" not in apps, "dev brings only the dev Application, not prod or the platform"

    def unsettled() -> dict[str, tuple]:
        """Applications not Synced and Healthy (the platform's may still settle after ours is)."""
        states = {}
        for app in cluster.applications():
            status = app.get("status", {})
            state = (status.get("sync", {}).get("status"), status.get("health", {}).get("status"))
            if state != ("Synced", "Healthy"):
                states[app["metadata"]["name"]] = state
        return states

    e2e.wait_for(lambda: not unsettled(), timeout=900, interval=10, what="every Application Synced and Healthy",
                 last=unsettled)
    apps = {app["metadata"]["name"]: app for app in cluster.applications()}
    # Our Applications read the in-cluster git server; the platform's charts come from their own repositories.
    ours = [name for name, app in apps.items() if any(s.get("path") for s in sources(app))]
    for name in ours:
        urls = {s["repoURL"] for s in sources(apps[name]) if s.get("path")}
        assert urls == {e2e.served_url}, f"{name} reads {urls}"
    revision = apps[wanted]["status"]["sync"]["revision"]
    assert revision == cluster.served_commit(), f"{wanted} runs {revision}, not the commit cluster.sh pushed"


def test_the_environment_runs_the_images_built_from_this_checkout(cluster):
    cluster.wait_rollouts(cluster.namespace)
    images = {
        d.metadata.name: d.spec.template.spec.containers[0].image
        for d in cluster.apps.list_namespaced_deployment(cluster.namespace).items
        if d.metadata.name in ("vote", "worker", "result")
    }
    assert sorted(images) == ["result", "vote", "worker"]
    for name, image in images.items():
        assert image.startswith(f"voting-app-local/{name}:"), f"{name} runs {image}"
