"""GitHub Actions workflows: zizmor-clean, every action pinned by SHA, least privilege, same targets as a person."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"uses:\s*\S+@[0-9a-f]{40}\s+#\s*v\d+\.\d+\.\d+\s*$")
SECRET_IN_RUN = re.compile(r"\$\{\{\s*secrets\.")


def load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
    return doc


FILES = sorted(WORKFLOWS.glob("*.yml"))
IDS = [p.name for p in FILES]


def steps(doc: dict):
    for job_name, job in doc["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, step


def test_the_three_workflows_exist():
    assert {"ci.yml", "release.yml", "promote.yml"} <= set(IDS)


def test_zizmor_finds_nothing():
    proc = subprocess.run(["zizmor", "--offline", str(WORKFLOWS)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_would_catch_an_unpinned_action_and_a_head_checkout(tmp_path):
    """Guards the check above: the same zizmor fails on a workflow that breaks the rules."""
    (tmp_path / "bad.yml").write_text(
        "on: pull_request_target\npermissions: write-all\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - uses: actions/checkout@v4\n        with:\n          ref: ${{ github.event.pull_request.head.sha }}\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    proc = subprocess.run(["zizmor", "--offline", str(tmp_path / "bad.yml")], capture_output=True, text=True)
    found = proc.stdout + proc.stderr
    assert proc.returncode == 14, found  # zizmor's exit code for "findings"
    assert "template-injection" in found and "unpinned-uses" in found


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_every_action_is_pinned_by_sha_with_a_version_comment(path):
    for job, step in steps(load(path)):
        if "uses" in step:
            assert PINNED.match(step["uses"]), f"{path.name}/{job}: {step['uses']} is not pinned to a commit SHA"
    for line in path.read_text().splitlines():
        if re.search(r"^\s*-?\s*uses:", line):
            assert VERSION_COMMENT.search(line), f"{path.name}: `{line.strip()}` lacks a `# vX.Y.Z` comment"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_top_level_permissions_are_read_only(path):
    doc = load(path)
    assert doc.get("permissions") in ({}, {"contents": "read"}), f"{path.name}: top-level permissions {doc.get('permissions')}"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_raised_permissions_say_why(path):
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^\s{6}[\w-]+:\s*write\b", line):
            assert "#" in line, f"{path.name}:{number + 1}: `{line.strip()}` needs a comment giving the reason"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_concurrency_group_is_set(path):
    assert "group" in load(path)["concurrency"]


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_checkouts_do_not_persist_credentials(path):
    for job, step in steps(load(path)):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, f"{path.name}/{job}"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_no_pull_request_target_and_no_secrets_in_run_lines(path):
    doc = load(path)
    triggers = doc["on"] if isinstance(doc["on"], (dict, list)) else [doc["on"]]
    assert "pull_request_target" not in triggers
    for job, step in steps(doc):
        assert not SECRET_IN_RUN.search(step.get("run", "")), f"{path.name}/{job}: a secret is expanded inside run:"


def test_ci_runs_the_same_make_targets_as_a_person():
    runs = " ".join(step.get("run", "") for _, step in steps(load(WORKFLOWS / "ci.yml")))
    for target in ("make test", "make validate", "make e2e"):
        assert target in runs
    assert "zizmor --offline" in runs and "terraform validate" in runs and "init -backend=false" in runs


def test_ci_e2e_job_installs_kind_and_cannot_pass_by_skipping():
    job = load(WORKFLOWS / "ci.yml")["jobs"]["e2e"]
    uses = [s.get("uses", "") for s in job["steps"]]
    assert any(u.startswith("helm/kind-action@") for u in uses)
    make = next(s for s in job["steps"] if s.get("run") == "make e2e")
    assert make["env"]["E2E_REQUIRED"] == "1"
    assert any(s.get("if") == "failure()" for s in job["steps"]), "dump cluster state on failure"


def test_ci_skips_docs_only_changes():
    on = load(WORKFLOWS / "ci.yml")["on"]
    for event in ("pull_request", "push"):
        assert "**/*.md" in on[event]["paths-ignore"]


def test_release_builds_signs_and_opens_a_dev_pull_request():
    doc = load(WORKFLOWS / "release.yml")
    assert doc["on"]["push"]["branches"] == ["main"]
    assert any(p.startswith("apps/") for p in doc["on"]["push"]["paths"])
    build = {s.get("id"): s for _, s in steps(doc)}["build"]["with"]
    assert build["platforms"] == "linux/amd64,linux/arm64"
    assert build["sbom"] is True and build["provenance"].startswith("mode=")
    runs = "\n".join(s.get("run", "") for _, s in steps(doc))
    assert 'cosign sign --yes "${IMAGE}@${DIGEST}"' in runs
    assert "kustomize\" edit set image" in runs and "cd overlays/dev" in runs
    assert any(s.get("uses", "").startswith("peter-evans/create-pull-request@") for _, s in steps(doc))


def test_promote_copies_dev_digests_to_prod_through_a_pull_request():
    doc = load(WORKFLOWS / "promote.yml")
    assert set(doc["on"]) == {"workflow_dispatch"}
    runs = "\n".join(s.get("run", "") for _, s in steps(doc))
    assert "gitops_images.py list overlays/dev" in runs and "cd overlays/prod" in runs
    assert "gitops_images.py check" in runs
    assert any(s.get("uses", "").startswith("peter-evans/create-pull-request@") for _, s in steps(doc))


def test_renovate_covers_actions_base_images_and_the_python_lock():
    import json

    config = json.loads((ROOT / ".github" / "renovate.json").read_text())
    assert {"github-actions", "dockerfile", "pep621"} <= set(config["enabledManagers"])
    assert config["lockFileMaintenance"]["enabled"] is True
