"""release.yml: images named after the repository as the overlays pin them; one image's failure holds no other back."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from devstack.repo import ROOT, SERVICES
WORKFLOWS = ROOT / ".github" / "workflows"
EXPRESSION = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")
OPENS_PR = "peter-evans/create-pull-request@"


def load(text: str) -> dict:
    doc = yaml.safe_load(text)
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
    return doc


def workflows() -> dict[str, dict]:
    return {path.name: load(path.read_text()) for path in sorted(WORKFLOWS.glob("*.yml"))}


def run_step(step: dict, context: dict[str, str], tmp_path: Path, cwd: Path | None = None) -> dict[str, str]:
    """Run a step's `run:` as the runner would, its `env:` filled from `context`; return its $GITHUB_OUTPUT."""
    env = {key: EXPRESSION.sub(lambda m: context[m.group(1)], str(value)) for key, value in step.get("env", {}).items()}
    output = tmp_path / "github_output"
    output.write_text("")
    subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        env={**env, "GITHUB_OUTPUT": str(output), "PATH": os.environ["PATH"]}, check=True, timeout=30, cwd=cwd,
    )
    return dict(line.split("=", 1) for line in output.read_text().splitlines())


def image_names(step: dict, repository: str, tmp_path: Path) -> dict[str, str]:
    """service -> the image name the step computes in `repository`."""
    names = {}
    for service in SERVICES:
        context = {"github.repository": repository, "github.repository_owner": repository.split("/")[0],
                   "inputs.service": service, "matrix.service": service}
        names[service] = run_step(step, context, tmp_path)["name"]
    return names


def naming_problems(names: dict[str, str], repository: str, rendered: dict[str, dict[str, str]]) -> list[str]:
    """Names not scoped to the repository (GHCR links a package to one repository), or not what the overlays run."""
    problems = []
    for service, name in names.items():
        if name != f"ghcr.io/{repository.lower()}/{service}":
            problems.append(f"{service}: {name} is not ghcr.io/<owner>/<repository>/{service}, lower-cased")
        for overlay, images in rendered.items():
            if images.get(service) != name:
                problems.append(f"{service}: overlays/{overlay} runs {images.get(service)}, the release pushes {name}")
    return problems


def repository() -> str:
    """owner/name of the repository Argo CD syncs from, which is the one whose release workflow pushes."""
    url = yaml.safe_load((ROOT / "argocd" / "source.yaml").read_text())["data"]["repoURL"]
    return url.removeprefix("https://github.com/").removesuffix(".git")


def image_step(doc: dict) -> dict:
    return next(s for job in doc["jobs"].values() for s in job.get("steps", []) if s.get("id") == "image")


def test_images_are_named_after_the_repository_as_the_overlays_run_them(overlays, tmp_path):
    rendered = {
        overlay: {
            obj["metadata"]["name"]: obj["spec"]["template"]["spec"]["containers"][0]["image"].split("@")[0]
            for obj in objects if obj["kind"] == "Deployment" and obj["metadata"]["name"] in SERVICES
        }
        for overlay, objects in overlays.items()
    }
    names = image_names(image_step(workflows()["release-image.yml"]), repository(), tmp_path)
    assert naming_problems(names, repository(), rendered) == []


def test_owner_wide_names_and_a_stale_overlay_are_caught(tmp_path):
    """The release's form before images moved under the repository, and an overlay left behind."""
    old = {"env": {"OWNER": "${{ github.repository_owner }}", "SERVICE": "${{ matrix.service }}"},
           "run": 'echo "name=ghcr.io/${OWNER,,}/${SERVICE}" >> "$GITHUB_OUTPUT"'}
    names = image_names(old, "voting-app/voting-app", tmp_path)
    assert names["vote"] == "ghcr.io/voting-app/vote"
    assert len(naming_problems(names, "voting-app/voting-app", {"dev": names})) == 3
    new = image_names(image_step(workflows()["release-image.yml"]), "Voting-App/Voting-App", tmp_path)
    assert new["vote"] == "ghcr.io/voting-app/voting-app/vote"
    assert naming_problems(new, "Voting-App/Voting-App", {"dev": names}) == [
        f"{s}: overlays/dev runs ghcr.io/voting-app/{s}, the release pushes ghcr.io/voting-app/voting-app/{s}" for s in SERVICES
    ]


def held_back(docs: dict[str, dict]) -> list[str]:
    """Matrices that cancel the other images on a failure, and pull requests that wait for every matrix leg."""
    problems = []
    for file, doc in docs.items():
        jobs = doc["jobs"]
        for name, job in jobs.items():
            strategy = job.get("strategy", {})
            if "matrix" in strategy and strategy.get("fail-fast", True) is not False:
                problems.append(f"{file}/{name}: without `fail-fast: false` one failed leg cancels the others")
            if not any(s.get("uses", "").startswith(OPENS_PR) for s in job.get("steps", [])):
                continue
            needs = job.get("needs", [])
            for need in [needs] if isinstance(needs, str) else needs:
                if "matrix" in jobs[need].get("strategy", {}):
                    problems.append(f"{file}/{name}: opens its pull request only after every leg of `{need}`")
    return problems


def test_each_image_opens_its_pull_request_after_its_own_build_only():
    docs = workflows()
    assert held_back(docs) == []
    caller = next(j for j in docs["release.yml"]["jobs"].values() if j.get("uses", "").endswith("/release-image.yml"))
    assert "matrix" in caller["strategy"]
    called = docs["release-image.yml"]["jobs"]
    assert called["pin-dev"]["needs"] == "build" and not any("strategy" in job for job in called.values())


def test_a_pull_request_job_behind_the_whole_build_matrix_is_caught():
    """release.yml's form before the reusable workflow: pin-dev waited for every build."""
    old = load("""
on: push
jobs:
  build:
    strategy: {fail-fast: false, matrix: {service: [vote, worker, result]}}
    steps: [{uses: "docker/build-push-action@53b7df96c91f9c12dcc8a07bcb9ccacbed38856a"}]
  pin-dev:
    needs: [changes, build]
    strategy: {matrix: {service: [vote, worker, result]}}
    steps: [{uses: "peter-evans/create-pull-request@5f6978faf089d4d20b00c7766989d076bb2fc7f1"}]
  changes:
    steps: []
""")
    assert held_back({"release.yml": old}) == [
        "release.yml/pin-dev: without `fail-fast: false` one failed leg cancels the others",
        "release.yml/pin-dev: opens its pull request only after every leg of `build`",
    ]


def picked(changed: list[str], tmp_path: Path, step: dict | None = None) -> list[str]:
    """The images release.yml rebuilds after a push that changed these files (a real git history)."""
    repo = tmp_path / "repo"
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "README").write_text("0")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "before"], check=True)
    before = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    for name in changed:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("1")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "after"], check=True)
    step = step or next(s for s in workflows()["release.yml"]["jobs"]["changes"]["steps"] if s.get("id") == "pick")
    out = run_step(step, {"github.event.before": before, "github.event_name": "push"}, tmp_path, cwd=repo)
    return json.loads(out["services"])


def needs_jq() -> None:
    """The pick step lists single services with jq, as GitHub's runners have it."""
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed (apt-get install jq); the step's jq pipeline cannot run")


def test_a_change_to_the_shared_dockerfile_rebuilds_every_image(tmp_path):
    assert picked(["apps/Dockerfile"], tmp_path) == list(SERVICES)
    needs_jq()
    assert picked(["apps/worker/src/worker/batch.py"], tmp_path / "2") == ["worker"]


def test_a_pick_that_misses_the_shared_dockerfile_is_caught(tmp_path):
    """The pick step's form when each service had its own Dockerfile under apps/<service>/."""
    needs_jq()
    step = next(s for s in workflows()["release.yml"]["jobs"]["changes"]["steps"] if s.get("id") == "pick")
    old = {**step, "run": step["run"].replace("|apps/Dockerfile)", ")")}
    assert old["run"] != step["run"]
    assert picked(["apps/Dockerfile"], tmp_path, old) == []
