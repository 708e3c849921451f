"""yamllint over every YAML file in the repository, with the repository's .yamllint.yaml."""

from __future__ import annotations

import subprocess

from manifest_render import REPO, venv_tool


def yamllint(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [venv_tool("yamllint"), "-c", str(REPO / ".yamllint.yaml"), "-f", "parsable", *args],
        capture_output=True, text=True, check=False, timeout=120, cwd=REPO,
    )


def test_all_yaml_is_clean():
    done = yamllint(".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_yamllint_reports_a_broken_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("key: value\nkey: again\nlist:\n- a\n  - b\n")
    done = yamllint(str(bad))
    assert done.returncode == 1 and "duplicate" in done.stdout
