"""Secrets checks: detect-secrets over the repository's files against .secrets.baseline."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from manifest_render import REPO, venv_tool


SCAN_EXCLUDE = r"(^|/)(\.venv|\.git|\.data|\.drills|\.bench|\.hypothesis|node_modules)/|(^|/)uv\.lock$|^\.secrets\.baseline$"


# Never walked when git cannot list the files (a copy without .git): ignored or generated folders.
NOT_SOURCE = {".git", ".venv", ".tools", ".data", ".drills", ".bench", ".hypothesis", ".pytest_cache", "__pycache__",
              ".terraform", "node_modules"}


def tracked_files(repo: Path = REPO) -> list[str]:
    """Files git tracks or would track (untracked but not ignored), minus the excluded ones."""
    done = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=repo, capture_output=True, text=True,
        check=False,
    ) if shutil.which("git") else None
    if done is not None and done.returncode == 0:
        names = done.stdout.splitlines()
    else:
        names = []
        for folder, dirs, files in os.walk(repo):
            dirs[:] = sorted(d for d in dirs if d not in NOT_SOURCE)
            names += [str((Path(folder) / f).relative_to(repo)) for f in sorted(files)]
    return [f for f in names if f and not re.search(SCAN_EXCLUDE, f) and (repo / f).is_file()]


def scan_secrets(repo: Path = REPO, files: list[str] | None = None) -> dict[str, set[str]]:
    """detect-secrets over the repository's files: {path: {hashed secret, ...}}."""
    files = tracked_files(repo) if files is None else files
    found: dict[str, set[str]] = {}
    for start in range(0, len(files), 200):
        scan = subprocess.run([venv_tool("detect-secrets"), "scan", *files[start:start + 200]],
                              cwd=repo, capture_output=True, text=True, check=True)
        for path, secrets in json.loads(scan.stdout)["results"].items():
            found.setdefault(path, set()).update(s["hashed_secret"] for s in secrets)
    return found


def baseline_secrets(repo: Path = REPO) -> dict[str, list[dict]]:
    return json.loads((repo / ".secrets.baseline").read_text())["results"]


# An inline `pragma: allowlist secret` is how a dev default is marked; the line must say so.
PRAGMA = "pragma: allowlist secret"
DEV_MARKER = re.compile(r"dev-only|test-only", re.I)


def secret_problems(found: dict[str, set[str]], baseline: dict[str, list[dict]], pragma_lines: list[tuple[str, str]],
                    ) -> list[str]:
    """New findings, baseline entries nobody reviewed, and allow-listed lines not marked dev-only."""
    problems = []
    for path, hashes in sorted(found.items()):
        known = {s["hashed_secret"] for s in baseline.get(path, [])}
        if hashes - known:
            problems.append(f"{path}: {len(hashes - known)} possible secret(s) not in .secrets.baseline")
    for path, entries in sorted(baseline.items()):
        for entry in entries:
            if entry.get("is_secret") is not False:
                problems.append(f"{path}:{entry.get('line_number')}: baseline entry not reviewed as a false positive "
                                f"(is_secret: false)")
    for where, line in pragma_lines:
        if not DEV_MARKER.search(line):
            problems.append(f"{where}: allow-listed as a secret but not marked dev-only or test-only")
    return problems


def pragma_lines(repo: Path = REPO, files: list[str] | None = None) -> list[tuple[str, str]]:
    found = []
    for path in tracked_files(repo) if files is None else files:
        if path == "tests/security/secrets_checks.py":
            continue  # names the pragma above, allows nothing
        try:
            text = (repo / path).read_text()
        except (UnicodeDecodeError, OSError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if PRAGMA in line:
                found.append((f"{path}:{n}", line))
    return found

