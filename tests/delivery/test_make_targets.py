"""What `make test` and `make e2e` hand to pytest: the kind tests run in the e2e job only."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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


def pytest_args(target: str, makefile: Path = ROOT / "Makefile") -> list[str]:
    """The arguments the target's recipe passes to pytest, read from `make -n`."""
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "-f", str(makefile), target],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    commands = [shlex.split(line) for line in dry.splitlines() if "pytest" in line.split()]
    assert len(commands) == 1, f"`make {target}` should run pytest once:\n{dry}"
    words = commands[0]
    return words[words.index("pytest") + 1:]


def collected(args: list[str], config: Path = ROOT / "pyproject.toml") -> list[str]:
    """The test ids pytest collects with these arguments and settings, run from the repository root."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-c", str(config), "--rootdir", str(ROOT), *args],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [line for line in proc.stdout.splitlines() if "::" in line]


def test_make_test_leaves_the_kind_tests_to_make_e2e():
    ids = collected(pytest_args("test"))
    assert any(i.startswith("tests/delivery/") for i in ids) and any(i.startswith("apps/") for i in ids)
    assert [i for i in ids if i.startswith(E2E)] == []


def test_make_e2e_collects_the_kind_tests_and_only_them():
    ids = collected(pytest_args("e2e"))
    assert ids and all(i.startswith(E2E) for i in ids), ids


def test_the_settings_that_ran_the_kind_tests_in_make_test_are_caught(tmp_path):
    old = tmp_path / "pyproject.toml"
    old.write_text(COLLECTS_E2E_TOO)
    assert any(i.startswith(E2E) for i in collected(pytest_args("test"), config=old))

