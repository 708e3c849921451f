"""GitHub Actions workflows: zizmor-clean, every action pinned by SHA, least privilege, same targets as a person."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from devstack.repo import ROOT
WORKFLOWS = ROOT / ".github" / "workflows"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"uses:\s*\S+@[0-9a-f]{40}\s+#\s*v(\d+\.\d+\.\d+)\s*$")
# The first release of each action whose action.yml says `runs.using: node24` (GitHub retires
# Node 20 on its runners), read from each action's tags.
NODE24_FROM = {
    "actions/checkout": ((5, 0, 0), "v5 moved to node24"),
    "actions/setup-python": ((6, 0, 0), "v6 moved to node24"),
    "actions/upload-artifact": ((6, 0, 0), "v5 still declares node20"),
    "actions/download-artifact": ((7, 0, 0), "v6 still declares node20"),
    "hashicorp/setup-terraform": ((4, 0, 0), "v4 moved to node24"),
    "helm/kind-action": ((1, 13, 0), "v1.13.0 moved to node24"),
    "docker/setup-qemu-action": ((4, 0, 0), "v4 moved to node24"),
    "docker/setup-buildx-action": ((4, 0, 0), "v4 moved to node24"),
    "docker/login-action": ((4, 0, 0), "v4 moved to node24"),
    "docker/metadata-action": ((6, 0, 0), "v6 moved to node24"),
    "docker/build-push-action": ((7, 0, 0), "v7 moved to node24"),
    "peter-evans/create-pull-request": ((8, 0, 0), "v8 moved to node24"),
    "sigstore/cosign-installer": ((3, 9, 2), "a composite action (no Node); v4 would also switch cosign 2 to 3"),
}
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


def pinning_problems(text: str) -> list[str]:
    """Each `uses:` of a remote action that is not a full SHA with a `# vX.Y.Z` comment of a Node 24 release."""
    problems = []
    for line in text.splitlines():
        match = re.match(r"^\s*-?\s*uses:\s*(\S+)", line)
        if not match or match.group(1).startswith("./"):
            continue
        action = match.group(1).split("@")[0]
        comment = VERSION_COMMENT.search(line)
        if not PINNED.match(match.group(1)) or not comment:
            problems.append(f"`{line.strip()}` is not pinned to a commit SHA with a `# vX.Y.Z` comment")
        elif "/".join(action.split("/")[:2]) not in NODE24_FROM:
            problems.append(f"{action}: not in NODE24_FROM, so nobody checked which runtime it uses")
        else:
            version = tuple(int(n) for n in comment.group(1).split("."))
            least, why = NODE24_FROM["/".join(action.split("/")[:2])]
            if version < least:
                problems.append(f"{action} v{comment.group(1)} is older than v{'.'.join(map(str, least))}: {why}")
    return problems


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_every_action_is_pinned_by_sha_to_a_node24_release(path):
    assert pinning_problems(path.read_text()) == []


def test_the_node20_pins_are_caught():
    """The workflows' pins before the move to Node 24, an unknown action and a tag pin."""
    old = """
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
      - uses: actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065 # v5.6.0
      - uses: actions/upload-artifact@330a01c490aca151604b8cf639adc76d48f6c5d4 # v5.0.0
      - uses: helm/kind-action@a1b0e391336a6ee6713a0583f8c6240d70863de3 # v1.12.0
      - uses: some/action@0123456789012345678901234567890123456789 # v9.0.0
      - uses: actions/checkout@v7
        uses: ./.github/workflows/release-image.yml
    """
    found = pinning_problems(old)
    assert len(found) == 6, found
    assert "older than v6.0.0: v5 still declares node20" in found[2]


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
    """For the whole run, or for each job of a workflow that is only ever called by another."""
    doc = load(path)
    if set(doc["on"]) == {"workflow_call"}:
        assert all("group" in job.get("concurrency", {}) for job in doc["jobs"].values())
    else:
        assert "group" in doc["concurrency"]


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
    for target in ("make test", "make validate", "make e2e", "make e2e ENV=prod"):
        assert target in runs
    assert "zizmor --offline" in runs and "terraform validate" in runs and "init -backend=false" in runs


E2E_JOBS = {"e2e": "make e2e", "e2e-prod": "make e2e ENV=prod"}


def e2e_job_problems(job: dict, command: str) -> list[str]:
    """What keeps a kind job from proving anything: no kind or Terraform, a skip that passes, no state on failure."""
    problems = []
    uses = [s.get("uses", "") for s in job.get("steps", [])]
    for action in ("helm/kind-action@", "hashicorp/setup-terraform@"):
        if not any(u.startswith(action) for u in uses):
            problems.append(f"does not install {action[:-1]}")
    runs = [s for s in job.get("steps", []) if s.get("run") == command]
    if not runs:
        problems.append(f"does not run `{command}`")
    elif runs[0].get("env", {}).get("E2E_REQUIRED") != "1":
        problems.append("E2E_REQUIRED is not 1, so a missing Docker engine would pass as skips")
    failure = [s for s in job.get("steps", []) if s.get("if") == "failure()"]
    if not any(s.get("name") == "dump cluster state" for s in failure):
        problems.append("dumps no cluster state on failure")
    if not any(s.get("uses", "").startswith("actions/upload-artifact@") for s in failure):
        problems.append("uploads nothing on failure")
    return problems


@pytest.mark.parametrize("name", sorted(E2E_JOBS))
def test_ci_e2e_jobs_install_kind_and_terraform_and_cannot_pass_by_skipping(name):
    assert e2e_job_problems(load(WORKFLOWS / "ci.yml")["jobs"][name], E2E_JOBS[name]) == []


def test_an_e2e_job_that_could_pass_by_skipping_is_caught():
    """The e2e job before `make e2e` needed Terraform, with its required flag dropped."""
    job = copy.deepcopy(load(WORKFLOWS / "ci.yml")["jobs"]["e2e"])
    job["steps"] = [s for s in job["steps"] if not s.get("uses", "").startswith("hashicorp/setup-terraform@")]
    next(s for s in job["steps"] if s.get("run") == "make e2e")["env"].pop("E2E_REQUIRED")
    assert e2e_job_problems(job, "make e2e") == [
        "does not install hashicorp/setup-terraform", "E2E_REQUIRED is not 1, so a missing Docker engine would pass as skips"]


def runs_on(condition: str | None, event: str, ref: str) -> bool:
    """A job's `if:` for one event, for the expressions we write: ==, !=, &&, || and parentheses over github.*."""
    if not condition:
        return True
    expr = condition.replace("${{", "").replace("}}", "")
    expr = re.sub(r"github\.event_name", repr(event), expr)
    expr = re.sub(r"github\.ref\b", repr(ref), expr)
    assert "github." not in expr, f"the model does not know {condition}"
    return bool(eval(expr.replace("&&", " and ").replace("||", " or "), {"__builtins__": {}}))  # noqa: S307 - our own workflow text


def event_problems(doc: dict, job: str, wanted: dict[tuple[str, str], bool]) -> list[str]:
    condition = doc["jobs"][job].get("if")
    return [f"{job} {'skips' if want else 'runs on'} {event} of {ref}"
            for (event, ref), want in wanted.items() if runs_on(condition, event, ref) != want]


PROD_E2E_RUNS = {
    ("schedule", "refs/heads/main"): True,
    ("push", "refs/heads/main"): True,
    ("pull_request", "refs/pull/7/merge"): False,
    ("push", "refs/heads/renovate/actions"): False,
}


def test_the_prod_e2e_runs_after_merges_and_nightly_but_not_on_pull_requests():
    doc = load(WORKFLOWS / "ci.yml")
    assert event_problems(doc, "e2e-prod", PROD_E2E_RUNS) == []
    nightly = [c["cron"] for c in doc["on"]["schedule"] if c["cron"].split()[2:] == ["*", "*", "*"]]
    assert nightly, f"no daily schedule among {doc['on']['schedule']}"
    # ...while the dev e2e still runs on pull requests.
    assert runs_on(doc["jobs"]["e2e"].get("if", "").replace("needs.changes.outputs.images == 'true'", "True"),
                   "pull_request", "refs/pull/7/merge")


def test_a_prod_e2e_that_would_run_on_every_pull_request_is_caught():
    doc = copy.deepcopy(load(WORKFLOWS / "ci.yml"))
    doc["jobs"]["e2e-prod"].pop("if")
    assert event_problems(doc, "e2e-prod", PROD_E2E_RUNS) == [
        "e2e-prod runs on pull_request of refs/pull/7/merge", "e2e-prod runs on push of refs/heads/renovate/actions"]
    doc["jobs"]["e2e-prod"]["if"] = "github.event_name != 'pull_request'"
    assert event_problems(doc, "e2e-prod", PROD_E2E_RUNS) == ["e2e-prod runs on push of refs/heads/renovate/actions"]


def test_ci_skips_docs_only_changes():
    on = load(WORKFLOWS / "ci.yml")["on"]
    for event in ("pull_request", "push"):
        assert "**/*.md" in on[event]["paths-ignore"]


def test_release_builds_signs_and_opens_a_dev_pull_request():
    doc = load(WORKFLOWS / "release.yml")
    assert doc["on"]["push"]["branches"] == ["main"]
    assert any(p.startswith("apps/") for p in doc["on"]["push"]["paths"])
    image = load(WORKFLOWS / "release-image.yml")
    build = {s.get("id"): s for _, s in steps(image)}["build"]["with"]
    assert build["platforms"] == "linux/amd64,linux/arm64"
    assert build["sbom"] is True and build["provenance"].startswith("mode=")
    runs = "\n".join(s.get("run", "") for _, s in steps(image))
    assert 'cosign sign --yes "${IMAGE}@${DIGEST}"' in runs
    assert "kustomize\" edit set image" in runs and "cd overlays/dev" in runs
    assert any(s.get("uses", "").startswith("peter-evans/create-pull-request@") for _, s in steps(image))


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


KIND_STUB = """#!/bin/sh
case "$1 $2" in
  "get clusters") echo voting-app-e2e ;;
  "get kubeconfig") shift 2; [ "$1" = --name ] && echo "kubeconfig of $2" ;;
  "export logs") mkdir -p "$3" ;;
esac
"""
# Records which kubeconfig each call reads: --kubeconfig, else $KUBECONFIG, else kubectl's default.
KUBECTL_STUB = """#!/bin/sh
config="${KUBECONFIG:-$HOME/.kube/config}"
while [ $# -gt 0 ]; do
  case "$1" in --kubeconfig) config="$2"; shift ;; --kubeconfig=*) config="${1#*=}" ;; esac
  shift
done
cat "$config" >> "$CALLS" 2>/dev/null || echo "no kubeconfig at $config" >> "$CALLS"
"""


def kubeconfigs_read_by_dump(script: str, tmp_path: Path) -> list[str]:
    """Run the failure-dump script with kind and kubectl stand-ins; say which kubeconfig each kubectl call read."""
    bin_dir, home = tmp_path / "bin", tmp_path / "home"
    for folder in (bin_dir, home, tmp_path / "runner"):
        folder.mkdir()
    for name, body in (("kind", KIND_STUB), ("kubectl", KUBECTL_STUB)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "calls"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home), "RUNNER_TEMP": str(tmp_path / "runner"), "CALLS": str(calls)}
    subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], env=env, check=True, timeout=30)
    return calls.read_text().splitlines() if calls.exists() else []


@pytest.mark.parametrize("job", sorted(E2E_JOBS))
def test_the_failure_dump_reads_the_test_clusters_kubeconfig(job, tmp_path):
    """The tests hand kind a kubeconfig file of their own, so kubectl's default knows no kind cluster."""
    dump = next(s for s in load(WORKFLOWS / "ci.yml")["jobs"][job]["steps"] if s.get("name") == "dump cluster state")
    assert dump["if"] == "failure()"
    assert kubeconfigs_read_by_dump(dump["run"], tmp_path) == ["kubeconfig of voting-app-e2e"]


def test_a_dump_through_kubectls_default_kubeconfig_is_caught(tmp_path):
    old = """for cluster in $(kind get clusters); do
  kind export logs "$RUNNER_TEMP/e2e/kind-$cluster" --name "$cluster" || true
  kubectl --context "kind-$cluster" get all,events -A -o wide || true
done
"""
    assert kubeconfigs_read_by_dump(old, tmp_path) == [f"no kubeconfig at {tmp_path}/home/.kube/config"]
