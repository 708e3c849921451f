"""Secrets scan of the repository: detect-secrets against .secrets.baseline.

The only credentials git may hold are dev or test defaults, marked on their line with
detect-secrets' allowlist pragma and the words dev-only or test-only; anything else detect-secrets
finds must already be in the baseline, reviewed as a false positive (`is_secret: false`).
"""

from __future__ import annotations

import json
from pathlib import Path

from devstack.drills.security import secrets_scan
from secrets_checks import REPO, SCAN_EXCLUDE, baseline_secrets, pragma_lines, scan_secrets, secret_problems

FAKE_KEY = "AKIA" + "QX7MZ4PLRT2WNB6Y"  # built at run time, so this file holds no key-shaped string


def test_the_repository_holds_only_marked_dev_defaults():
    row = secrets_scan()
    assert row.ok, "\n".join(row.problems)


def test_the_baseline_lists_only_reviewed_false_positives():
    baseline = baseline_secrets()
    entries = [e for es in baseline.values() for e in es]
    assert entries, "an empty baseline would make the next check vacuous"
    assert all(e["is_secret"] is False for e in entries)
    # The baseline excludes what the check skips, so `detect-secrets scan --baseline` agrees with it.
    filters = json.loads((REPO / ".secrets.baseline").read_text())["filters_used"]
    assert {"path": "detect_secrets.filters.regex.should_exclude_file", "pattern": [SCAN_EXCLUDE]} in filters


def _repo(tmp_path: Path, files: dict[str, str]) -> Path:
    """A folder of files; not a git checkout, so the scan walks it (as on a machine without .git)."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_a_new_credential_is_caught(tmp_path):
    repo = _repo(tmp_path, {"settings.py": f'AWS_ACCESS_KEY_ID = "{FAKE_KEY}"\n', "ok.txt": "nothing here\n"})
    found = scan_secrets(repo)
    assert set(found) == {"settings.py"}
    problems = secret_problems(found, {}, [])
    assert problems and "settings.py" in problems[0]


def test_an_unreviewed_baseline_entry_is_caught(tmp_path):
    repo = _repo(tmp_path, {"settings.py": f'AWS_ACCESS_KEY_ID = "{FAKE_KEY}"\n'})
    found = scan_secrets(repo)
    baseline = {"settings.py": [{"hashed_secret": h, "line_number": 1} for h in found["settings.py"]]}
    assert any("not reviewed" in p for p in secret_problems(found, baseline, []))
    baseline["settings.py"][0]["is_secret"] = False
    assert secret_problems(found, baseline, []) == []


def test_an_allowlisted_line_must_say_dev_only(tmp_path):
    marker = "pragma: " + "allowlist secret"
    repo = _repo(tmp_path, {
        "dev.yaml": f"password: dev-only-default  # {marker}\n",
        "prod.yaml": f"password: hunter2-prod  # {marker}\n",
    })
    lines = pragma_lines(repo)
    assert len(lines) == 2
    problems = secret_problems({}, {}, lines)
    assert len(problems) == 1 and problems[0].startswith("prod.yaml:1")
