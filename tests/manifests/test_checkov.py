"""checkov over the rendered overlays, offline, with the one skip list in .checkov.yaml."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from manifest_render import REPO, render

CONFIG = REPO / ".checkov.yaml"
CHECKOV = REPO / "tools" / "checkov" / ".venv" / "bin" / "checkov"
# Never call home: no mapping download, no version check, no telemetry.
OFFLINE_ENV = {"BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}


INSECURE_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: insecure
  namespace: elsewhere
spec:
  containers:
    - name: c
      image: nginx:latest
      securityContext:
        privileged: true
"""


def run_checkov(folder: Path) -> dict:
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed: run `uv sync --frozen --project tools/checkov` ({CHECKOV} missing)")
    done = subprocess.run(
        [str(CHECKOV), "--config-file", str(CONFIG), "--skip-download", "--framework", "kubernetes",
         "--output", "json", "-d", str(folder)],
        capture_output=True, text=True, check=False, timeout=120, env={**os.environ, **OFFLINE_ENV},
    )
    assert done.returncode in (0, 1), f"checkov crashed ({done.returncode}):\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout)
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    return report


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    """One checkov run over both overlays and one known-bad Pod (proof that the run can fail)."""
    folder = tmp_path_factory.mktemp("checkov")
    for overlay in ("dev", "prod"):
        (folder / f"{overlay}.yaml").write_text(render(f"overlays/{overlay}"))
    (folder / "insecure.yaml").write_text(INSECURE_POD)
    return run_checkov(folder)


def failures(report: dict, file_name: str) -> list[str]:
    return [
        f"{f['check_id']} {f['resource']}: {f['check_name']}"
        for f in report["results"].get("failed_checks", [])
        if Path(f["file_path"]).name == file_name
    ]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_rendered_overlay_passes_checkov(report, overlay):
    assert failures(report, f"{overlay}.yaml") == []
    assert report["summary"]["passed"] > 100


def test_checkov_fails_an_insecure_manifest(report):
    assert any(f.startswith("CKV_K8S_16 ") for f in failures(report, "insecure.yaml"))  # privileged container


def test_every_skip_has_a_reason():
    lines = CONFIG.read_text().splitlines()
    skips = [i for i, line in enumerate(lines) if re.match(r"^\s*-\s*CKV", line)]
    assert skips, "no skip-check entries found"
    for i in skips:
        assert lines[i - 1].lstrip().startswith("#"), f"{lines[i].strip()} has no reason comment above it"
