"""What `make test` and `make e2e` hand to pytest: the kind tests run in the e2e job only."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from devstack.repo import ROOT
E2E = "tests/e2e/"

# pyproject.toml's pytest settings before tests/e2e left `make test`.
COLLECTS_E2E_TOO = """\
[tool.pytest.ini_options]
testpaths = ["apps/vote/tests", "apps/worker/tests", "apps/result/tests", "libs/contract/tests", "tests"]
addopts = "-ra --strict-markers --import-mode=importlib"
markers = [
    "browser: drives a real Chromium",
    "kind: needs a Docker engine and a kind cluster",
]
"""


def dry_run(target: str, *variables: str, makefile: Path = ROOT / "Makefile") -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-n", "-f", str(makefile), target, *variables],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )


def pytest_args(target: str, *variables: str, makefile: Path = ROOT / "Makefile") -> list[str]:
    """The arguments the target's recipe passes to pytest, read from `make -n`."""
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "-f", str(makefile), target, *variables],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    commands = [shlex.split(line) for line in dry.splitlines() if "pytest" in line.split()]
    assert len(commands) == 1, f"`make {target}` should run pytest once:\n{dry}"
    words = commands[0]
    return words[words.index("pytest") + 1:]


# A plugin that lets pytest choose its test modules as usual but records them instead of importing
# them: the choice (testpaths, norecursedirs, --ignore, explicit paths) is all this file checks.
PROBE = """
import os
import pytest


class Unread(pytest.Module):
    def collect(self):
        with open(os.environ["PROBE_OUT"], "a") as out:
            out.write(f"{self.path}\\n")
        return []


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path, parent):
    return Unread.from_parent(parent, path=module_path)
"""


def collected(args: list[str], tmp_path: Path, config: Path = ROOT / "pyproject.toml") -> list[str]:
    """The test modules pytest collects with these arguments and settings, run from the repository root."""
    (tmp_path / "probe_plugin.py").write_text(PROBE)
    out = tmp_path / "modules"
    out.write_text("")
    env = {**os.environ, "PROBE_OUT": str(out), "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "probe_plugin",
         "-c", str(config), "--rootdir", str(ROOT), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300,
    )
    assert proc.returncode in (0, 5), proc.stdout[-3000:] + proc.stderr[-3000:]  # 5: no test items, as intended
    return sorted(Path(line).relative_to(ROOT).as_posix() for line in out.read_text().splitlines())


def test_make_test_leaves_the_kind_tests_to_make_e2e(tmp_path):
    ids = collected(pytest_args("test"), tmp_path)
    assert any(i.startswith("tests/delivery/") for i in ids) and any(i.startswith("apps/") for i in ids)
    assert [i for i in ids if i.startswith(E2E)] == []


def test_make_e2e_collects_the_kind_tests_and_only_them(tmp_path):
    ids = collected(pytest_args("e2e"), tmp_path)
    assert ids and all(i.startswith(E2E) for i in ids), ids


def test_the_settings_that_ran_the_kind_tests_in_make_test_are_caught(tmp_path):
    old = tmp_path / "pyproject.toml"
    old.write_text(COLLECTS_E2E_TOO)
    assert any(i.startswith(E2E) for i in collected(pytest_args("test"), tmp_path, config=old))



def selected_tests(args: list[str]) -> set[str]:
    """The e2e test modules pytest selects with these arguments (a real collection: conftest and markers apply)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {line.split("::")[0] for line in proc.stdout.splitlines() if "::" in line}


def test_make_e2e_env_selects_that_environments_tests():
    dev = selected_tests(pytest_args("e2e"))
    prod = selected_tests(pytest_args("e2e", "ENV=prod"))
    assert {"tests/e2e/test_dev_overlay.py", "tests/e2e/test_argocd_sync.py"} <= dev and "tests/e2e/test_prod.py" not in dev
    assert {"tests/e2e/test_prod.py", "tests/e2e/test_argocd_sync.py"} <= prod and "tests/e2e/test_dev_overlay.py" not in prod


def test_an_e2e_recipe_that_ignores_env_is_caught(tmp_path):
    """The recipe before ENV existed: `make e2e ENV=prod` would quietly run the dev tests."""
    old = tmp_path / "Makefile"
    old.write_text((ROOT / "Makefile").read_text().replace("pytest tests/e2e -m $(ENV)", "pytest tests/e2e"))
    assert "tests/e2e/test_prod.py" not in selected_tests(pytest_args("e2e", "ENV=prod", makefile=old))


def test_make_cluster_passes_env_to_the_script_and_refuses_an_unknown_one():
    assert dry_run("cluster").stdout.splitlines()[-1] == "bash scripts/cluster.sh up dev"
    assert dry_run("cluster", "ENV=prod").stdout.splitlines()[-1] == "bash scripts/cluster.sh up prod"
    assert dry_run("cluster-push").stdout.splitlines()[-1] == "bash scripts/cluster.sh push"
    assert dry_run("cluster-down").stdout.splitlines()[-1] == "bash scripts/cluster.sh down"
    for target in ("cluster", "e2e"):
        wrong = dry_run(target, "ENV=staging")
        assert wrong.returncode != 0 and "ENV=staging: choose dev or prod" in wrong.stderr
