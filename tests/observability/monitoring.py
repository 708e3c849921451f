"""The monitoring component as tests see it: rendered objects, rule groups, dashboard queries, promtool."""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from manifest_render import REPO, kustomize

COMPONENT = REPO / "base" / "components" / "monitoring"
DASHBOARD = COMPONENT / "dashboards" / "voting-app.json"
RUNBOOKS = REPO / "docs" / "runbooks.md"
UNIT_TESTS = Path(__file__).resolve().parent / "rules_test.yaml"
# What Grafana puts in place of each dashboard variable, so that promtool can parse the query.
VARIABLES = {"namespace": "voting-app-prod", "__rate_interval": "2m", "datasource": "prometheus"}


def copy_of(obj):
    """A deep copy, for a test to break."""
    return copy.deepcopy(obj)


def render_component(folder: Path) -> list[dict]:
    """`kubectl kustomize` of a throwaway overlay that switches the component on, as an overlay does."""
    (folder / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "voting-app-prod",
        "components": [os.path.relpath(COMPONENT, folder)],
    }))
    return [doc for doc in yaml.safe_load_all(kustomize(folder)) if doc]


@functools.cache
def _rendered_component() -> tuple[dict, ...]:
    with tempfile.TemporaryDirectory(prefix="monitoring-component-") as folder:
        return tuple(render_component(Path(folder)))


def render_component_cached() -> list[dict]:
    """The component's objects, rendered once per test session, as a fresh copy."""
    return copy.deepcopy(list(_rendered_component()))


def runbook_base() -> str:
    """docs/runbooks.md as GitHub shows it, from the repository and revision Argo CD follows."""
    source = yaml.safe_load((REPO / "argocd" / "source.yaml").read_text())["data"]
    repo = source["repoURL"].removesuffix(".git")
    return f"{repo}/blob/{source['targetRevision']}/docs/runbooks.md"


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown text."""
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, re.M):
        found.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return found


def alerts(rule: dict) -> list[dict]:
    return [r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r]


def annotation_problems(rule: dict, runbooks: str) -> list[str]:
    """What an alert lacks: severity, summary, a description with its numbers, a runbook section."""
    problems = []
    base, sections = runbook_base(), anchors(runbooks)
    for alert in alerts(rule):
        name, notes = alert["alert"], alert.get("annotations", {})
        if alert.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
            problems.append(f"{name}: no severity label")
        for key in ("summary", "description", "runbook_url"):
            if not notes.get(key):
                problems.append(f"{name}: no {key}")
        if notes.get("description") and not re.search(r"\$value|\bquery\b", notes["description"]):
            problems.append(f"{name}: the description shows no number ($value or a query)")
        url = notes.get("runbook_url", "")
        page, _, anchor = url.partition("#")
        if url and page != base:
            problems.append(f"{name}: runbook_url {url} is not {base}#<section>")
        elif url and anchor not in sections:
            problems.append(f"{name}: docs/runbooks.md has no section #{anchor}")
    return problems


def annotation_queries(alert: dict) -> list[str]:
    """The PromQL an alert's annotations run through the `query` template function."""
    texts = alert.get("annotations", {}).values()
    return [q.replace('\\"', '"') for text in texts for q in re.findall(r'printf "((?:[^"\\]|\\.)*)"[^|}]*\|\s*query', text)]


def rule_file(rule: dict, folder: Path) -> Path:
    """The PrometheusRule's groups as a Prometheus rule file, the form promtool reads."""
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    return path


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool is not installed: it comes with Debian's prometheus package (.ci/run installs it)")
    return subprocess.run([found, *args], capture_output=True, text=True, check=False, timeout=60, cwd=cwd)


def run_unit_tests(rules: Path, tests: dict) -> subprocess.CompletedProcess:
    """`promtool test rules` of the given unit tests against the given rule file."""
    path = rules.parent / "rules_test.yaml"
    path.write_text(yaml.safe_dump({"rule_files": [rules.name], **tests}, sort_keys=False))
    return promtool("test", "rules", path.name, cwd=rules.parent)


def unit_tests() -> dict:
    return yaml.safe_load(UNIT_TESTS.read_text())


def untested_alerts(rule: dict, tests: dict) -> list[str]:
    """Alerts that no unit test fires, or that no unit test keeps silent on a healthy series."""
    fired, kept_silent = set(), set()
    for case in tests["tests"]:
        inputs = [dict(re.findall(r'(\w+)="([^"]*)"', s["series"])) for s in case["input_series"]]
        for check in case["alert_rule_test"]:
            expected = [a["exp_labels"] for a in check.get("exp_alerts") or []]
            if expected:
                fired.add(check["alertname"])
            if any(not any(matches(series, labels) for labels in expected) for series in inputs):
                kept_silent.add(check["alertname"])
    problems = []
    for name in (a["alert"] for a in alerts(rule)):
        if name not in fired:
            problems.append(f"{name}: no unit test fires it")
        if name not in kept_silent:
            problems.append(f"{name}: no unit test keeps it silent on healthy series")
    return problems


def matches(series: dict[str, str], alert_labels: dict[str, str]) -> bool:
    """Whether an input series is one an expected alert speaks for (same values on shared labels)."""
    return all(series[k] == v for k, v in alert_labels.items() if k in series)


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(board: dict) -> list[dict]:
    """Every panel, those inside collapsed rows included."""
    return [p for top in board["panels"] for p in [top, *top.get("panels", [])] if p.get("type") != "row"]


def panel_queries(board: dict) -> dict[str, str]:
    """Each panel target's PromQL by "panel title/refId", as Grafana runs it."""
    return {f"{p['title']}/{t['refId']}": substitute(t["expr"]) for p in panels(board) for t in p["targets"]}


def variable_metrics(board: dict) -> dict[str, str]:
    """The metric each query variable lists its values from."""
    found = {}
    for var in board.get("templating", {}).get("list", []):
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            match = re.fullmatch(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*\w+\s*\)", query)
            found[f"variable {var['name']}"] = match.group(1) if match else query
    return found


def substitute(expr: str) -> str:
    """expr with Grafana's variables filled in; an unknown variable is an error."""
    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in VARIABLES:
            raise KeyError(f"unknown dashboard variable ${name} in {expr}")
        return VARIABLES[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)


def recording_rules(queries: dict[str, str]) -> dict:
    """One recording rule per query, so that `promtool check rules` parses each offline."""
    rules = [{"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(queries.values())]
    return {"spec": {"groups": [{"name": "dashboard", "rules": rules}]}}


def broken_queries(output: str, queries: dict[str, str]) -> list[str]:
    """The panel targets promtool's output names as unparsable."""
    keys = list(queries)
    return [keys[int(i)] for i in re.findall(r'"dashboard:query_(\d+)"', output)]
