"""The local merge: a new commit, `scripts/cluster.sh push` (make cluster-push), and Argo CD syncs it."""

from __future__ import annotations

import subprocess
import uuid

import pytest
import yaml

pytestmark = [pytest.mark.dev, pytest.mark.timeout(3600)]


def git(cwd, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@voting-app.invalid", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout.strip()


def test_a_commit_pushed_with_cluster_push_is_synced_by_argo_cd(cluster, e2e, cluster_script, tmp_path):
    # A working copy of our own with one more commit: a ConfigMap added to the dev overlay.
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", "--shared", str(e2e.root), str(work))
    run = uuid.uuid4().hex
    overlay = work / "overlays" / "dev"
    (overlay / "configmap-e2e-push.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "e2e-push"}, "data": {"run": run}}))
    doc = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    doc["resources"].append("configmap-e2e-push.yaml")
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "e2e: one more ConfigMap")

    before = cluster.served_commit()
    pushed = cluster_script("push", source=work)
    assert pushed.returncode == 0, pushed.stdout
    # Only the overlay changed, so no image's inputs did.
    assert pushed.stdout.count("inputs unchanged, not rebuilt") == 3, pushed.stdout
    after = cluster.served_commit()
    assert after != before

    def synced() -> bool:
        status = cluster.application("voting-app-dev").get("status", {})
        return (status.get("sync", {}).get("revision") == after
                and status.get("sync", {}).get("status") == "Synced" and status.get("health", {}).get("status") == "Healthy")

    cluster.wait_for(synced, timeout=600, interval=10, what="voting-app-dev to sync the pushed commit")
    live = cluster.core.read_namespaced_config_map("e2e-push", cluster.namespace)
    assert live.data == {"run": run}
