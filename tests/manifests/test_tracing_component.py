"""base/components/tracing: switched on, vote, worker and result send OTLP to the collector, and only they may.

Rendered through a wrapper kustomization that adds the component to an overlay, as a cluster that
switches tracing on would; the NetworkPolicies go through the same analyzer as the allow-list.
"""

from __future__ import annotations

import os

import pytest
import yaml
from manifest_render import NAMESPACES, render
from test_networkpolicy import connectivity

from devstack.repo import ROOT

COMPONENT = ROOT / "base" / "components" / "tracing"
TRACED = ("vote", "worker", "result")
COLLECTOR = "monitoring/otel-collector"
# The pod the opt-in platform tracing (argocd/platform/optional/tracing.yaml) runs: the
# opentelemetry-collector chart labels it with its name and the release's.
COLLECTOR_POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "otel-collector", "namespace": "monitoring", "labels": {
        "app.kubernetes.io/name": "opentelemetry-collector", "app.kubernetes.io/instance": "otel-collector"}},
    "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"name": "otlp-http", "containerPort": 4318}]}]},
}


def with_tracing(overlay: str, workdir) -> list[dict]:
    """The overlay rendered with the tracing component added, in the overlay's namespace as its own would be."""
    workdir.mkdir()
    (workdir / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": NAMESPACES[overlay],
        "resources": [os.path.relpath(ROOT / "overlays" / overlay, workdir)],
        "components": [os.path.relpath(COMPONENT, workdir)],
    }))
    return [doc for doc in yaml.safe_load_all(render(workdir)) if doc]


def endpoint_problems(objects: list[dict]) -> list[str]:
    """Each traced Deployment's container names the collector's OTLP/HTTP endpoint exactly once."""
    problems = []
    for name in TRACED:
        deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name)
        env = deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])
        values = [e.get("value") for e in env if e["name"] == "OTEL_EXPORTER_OTLP_ENDPOINT"]
        if values != ["http://otel-collector.monitoring:4318"]:
            problems.append(f"{name}: OTEL_EXPORTER_OTLP_ENDPOINT is {values}")
    return problems


def otlp_flows(objects: list[dict], namespace: str, tmp_path) -> set[str]:
    """The pods of our namespace that the NetworkPolicies let reach the collector on 4318."""
    manifests = yaml.safe_dump_all([*objects, COLLECTOR_POD])
    return {src for src, dst, conn in connectivity(manifests, namespace, tmp_path)
            if dst == COLLECTOR and ("4318" in conn or conn == "all")}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_with_tracing_on_the_three_services_and_only_they_reach_the_collector(overlay, tmp_path):
    objects = with_tracing(overlay, tmp_path / "wrapper")
    assert endpoint_problems(objects) == []
    assert otlp_flows(objects, NAMESPACES[overlay], tmp_path) == set(TRACED)


def test_without_the_component_nothing_is_sent_and_nothing_may_be(tmp_path):
    """The overlays as committed: tracing off, and the default deny keeps every pod from the collector."""
    objects = [doc for doc in yaml.safe_load_all(render(ROOT / "overlays" / "prod")) if doc]
    assert endpoint_problems(objects) == [f"{name}: OTEL_EXPORTER_OTLP_ENDPOINT is []" for name in TRACED]
    assert otlp_flows(objects, NAMESPACES["prod"], tmp_path) == set()


def test_a_collector_selector_that_misses_the_chart_labels_is_caught(tmp_path):
    objects = with_tracing("prod", tmp_path / "wrapper")
    policy = next(o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "otlp-to-collector")
    policy["spec"]["egress"][0]["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] = "otel-collector"
    assert otlp_flows(objects, NAMESPACES["prod"], tmp_path) == set()
