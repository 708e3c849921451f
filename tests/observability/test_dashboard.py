"""The dashboard and the component's objects, offline: queries parse, objects match their schemas."""

from __future__ import annotations

import json

import pytest

import monitoring as mon
from manifest_render import rendered_objects
from test_crd_schemas import schema_problems
from test_schema import schema_problems as builtin_schema_problems


def parse_problems(queries: dict[str, str], folder) -> list[str]:
    """The queries promtool cannot parse, by "panel/refId"; promtool's output if it names none."""
    rules = mon.rule_file(mon.recording_rules(queries), folder)
    done = mon.promtool("check", "rules", str(rules))
    if done.returncode == 0:
        return []
    return mon.broken_queries(done.stdout + done.stderr, queries) or [done.stdout + done.stderr]


def test_every_panel_has_a_query(dashboard):
    assert all(p.get("targets") and all(t.get("expr") for t in p["targets"]) for p in mon.panels(dashboard))


def test_every_panel_query_parses(dashboard, tmp_path):
    queries = mon.panel_queries(dashboard)
    assert len(queries) >= len(mon.panels(dashboard))
    assert parse_problems(queries, tmp_path) == []


def test_a_panel_with_broken_promql_is_caught(dashboard, tmp_path):
    mon.panels(dashboard)[2]["targets"][1]["expr"] = "histogram_quantile(0.99, sum by (le) (rate(x[5m]))"
    title = mon.panels(dashboard)[2]["title"]
    assert parse_problems(mon.panel_queries(dashboard), tmp_path) == [f"{title}/B"]


def test_an_unknown_dashboard_variable_is_caught(dashboard):
    mon.panels(dashboard)[0]["targets"][0]["expr"] = 'sum(vote_votes_cast_total{namespace="$namspace"})'
    with pytest.raises(KeyError, match=r"\$namspace"):
        mon.panel_queries(dashboard)


def test_the_dashboard_configmap_carries_the_sidecar_label_and_a_stable_name(component):
    config = next(o for o in component if o["kind"] == "ConfigMap")
    # The sidecar removes a dashboard file when a ConfigMap holding it is deleted, so a hash suffix
    # (a new name for each change, the old one pruned after) would delete the new dashboard.
    assert config["metadata"]["name"] == "voting-app-dashboard"
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config["data"]["voting-app.json"]) == mon.dashboard()


def test_the_component_objects_match_their_schemas(component):
    custom = [o for o in component if o["kind"] != "ConfigMap"]
    assert {o["kind"] for o in custom} == {"PodMonitor", "PrometheusRule"}
    assert [p for found in schema_problems(custom) for p in found] == []
    assert builtin_schema_problems([o for o in component if o["kind"] == "ConfigMap"]) == []


SCHEMA_BREAKAGES = [
    ("PodMonitor", lambda o: o["spec"]["podMetricsEndpoints"][0].update(portt="http"), "/portt: field not declared"),
    ("PodMonitor", lambda o: o["spec"]["podMetricsEndpoints"][0].update(interval="30 seconds"), "/interval: must match"),
    ("PrometheusRule", lambda o: o["spec"]["groups"][0]["rules"][0].pop("expr"), "must have required property expr"),
    ("PrometheusRule", lambda o: o["spec"]["groups"][0]["rules"][0].update(four="5m"), "/four: field not declared"),
]


def test_schema_check_catches_broken_monitoring_objects(component):
    cases = []
    for kind, breaking, _ in SCHEMA_BREAKAGES:
        obj = mon.copy_of(next(o for o in component if o["kind"] == kind))
        breaking(obj)
        cases.append(obj)
    for (kind, _, expected), found in zip(SCHEMA_BREAKAGES, schema_problems(cases)):
        assert any(expected in p for p in found), (kind, expected, found)


def pod_monitor_problems(component: list[dict], base: list[dict]) -> list[str]:
    """PodMonitors that select no Deployment's pods, or name a port those pods do not have."""
    problems = []
    for monitor in (o for o in component if o["kind"] == "PodMonitor"):
        wanted = monitor["spec"]["selector"]["matchLabels"]
        pods = [d["spec"]["template"] for d in base if d["kind"] == "Deployment"
                and wanted.items() <= d["spec"]["template"]["metadata"].get("labels", {}).items()]
        if not pods:
            problems.append(f"PodMonitor/{monitor['metadata']['name']}: selects no Deployment's pods")
        ports = {p.get("name") for pod in pods for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            if pods and endpoint["port"] not in ports:
                problems.append(f"PodMonitor/{monitor['metadata']['name']}: no port named {endpoint['port']}")
    return problems


def test_pod_monitors_select_our_pods_by_their_port_names(component):
    assert pod_monitor_problems(component, rendered_objects("base")) == []
    assert {o["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
            for o in component if o["kind"] == "PodMonitor"} == {"vote", "worker", "result"}


@pytest.mark.parametrize(("name", "field", "value", "expected"), [
    ("worker", "port", "http", "PodMonitor/worker: no port named http"),
    ("vote", "selector", {"matchLabels": {"app.kubernetes.io/name": "voter"}}, "PodMonitor/vote: selects no"),
])
def test_pod_monitor_check_catches(component, name, field, value, expected):
    objects = mon.copy_of(component)
    monitor = next(o for o in objects if o["kind"] == "PodMonitor" and o["metadata"]["name"] == name)
    if field == "port":
        monitor["spec"]["podMetricsEndpoints"][0]["port"] = value
    else:
        monitor["spec"]["selector"] = value
    assert any(expected in p for p in pod_monitor_problems(objects, rendered_objects("base")))
