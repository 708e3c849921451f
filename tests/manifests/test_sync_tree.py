"""Each cluster's whole sync: the root Application's waves and every child Application; broken orders are caught."""

from __future__ import annotations

import pytest
import yaml

from argocd_model import WAVE, simulate
from argocd_render import ENVIRONMENTS, cluster_objects
from argocd_tree import PROVIDES, application_health_check, platform_cluster, replay
from manifest_render import REPO, rendered_objects


def _named(objs, kind, name):
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def _set_wave(obj, wave):
    obj["metadata"].setdefault("annotations", {})[WAVE] = str(wave)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_cluster_syncs_to_the_end(env):
    result = replay(cluster_objects(env))
    assert result.root.finished and result.problems == [], result.report()
    cloud = replay(cluster_objects(env), load_balancer=True)
    assert {n: c.health for n, c in cloud.children.items() if c.health != "Healthy"} == {}, cloud.report()


def test_dev_brings_no_platform():
    result = replay(cluster_objects("dev"))
    assert list(result.children) == ["voting-app-dev"], result.report()


def test_prod_waits_for_the_platform_then_platform_config():
    result = replay(cluster_objects("prod"))
    order = [ref.split("/", 1)[1] for wave in result.root.waves for ref in wave.applied if ref.startswith("Application/")]
    charts = [n for n, c in result.children.items() if c.sync is None]
    assert order[-2:] == ["platform-config", "voting-app-prod"], result.report()
    assert set(order[:-2]) == set(charts) and "cert-manager" in charts and "envoy-gateway" in charts
    assert order.index("envoy-gateway") < order.index("cert-manager") or any(
        "envoy-gateway" in w.applied and "cert-manager" not in w.applied for w in result.root.waves)


def test_the_terraform_argocd_judges_applications():
    assert application_health_check()


def test_health_check_reading_sees_a_values_file_without_it(tmp_path):
    values = tmp_path / "argocd.yaml"
    values.write_text("configs:\n  cm:\n    timeout.reconciliation: 60s\n")
    assert not application_health_check(values)


def _config_with_cert_manager(objs):
    _set_wave(_named(objs, "Application", "platform-config"), 1)


def _prod_with_the_controllers(objs):
    _set_wave(_named(objs, "Application", "voting-app-prod"), 0)


def _cert_manager_with_envoy_gateway(objs):
    _set_wave(_named(objs, "Application", "cert-manager"), 0)


def _monitoring_not_admitted(objs):
    project = _named(objs, "AppProject", "platform")
    project["spec"]["destinations"] = [d for d in project["spec"]["destinations"] if d["namespace"] != "monitoring"]


BREAKAGES = [
    (_config_with_cert_manager, {},
     "wave 1: Application/platform-config stays Missing (its sync did not finish: wave 0: ClusterIssuer/self-signed"
     " stays Missing (ClusterIssuer is not installed: its CRD comes with Application/cert-manager"),
    (_prod_with_the_controllers, {},
     "wave 0: Application/voting-app-prod stays Missing (its sync did not finish: wave -1: ExternalSecret/db stays"
     " Missing (ExternalSecret is not installed: its CRD comes with Application/external-secrets"),
    (_cert_manager_with_envoy_gateway, {},
     "wave 0: Application/cert-manager is Degraded (started before Gateway, HTTPRoute existed"
     " (Application/envoy-gateway was not Healthy yet)"),
    (_monitoring_not_admitted, {},
     "wave 0: Application/kube-prometheus-stack stays Unknown (InvalidSpecError: destination namespace monitoring"
     " is not permitted in project platform)"),
    (lambda objs: None, {"lua": False},
     "Application/voting-app-prod ends Missing: its sync did not finish: wave -1: ExternalSecret/db stays Missing"),
]


@pytest.mark.parametrize(("breakage", "options", "expected"), BREAKAGES,
                         ids=["config-with-cert-manager", "prod-with-the-controllers", "cert-manager-with-envoy-gateway",
                              "monitoring-not-admitted", "no-application-health-check"])
def test_tree_replay_catches(breakage, options, expected):
    objs = cluster_objects("prod")
    breakage(objs)
    result = replay(objs, **options)
    assert any(expected in p for p in result.problems), result.report()


def test_a_ca_issuer_before_its_certificate_is_caught():
    everything = set().union(*PROVIDES.values())
    objs = rendered_objects("argocd/platform/config")
    assert simulate(objs, cluster_type=platform_cluster(everything, set(), {})).problems == []
    _set_wave(_named(objs, "ClusterIssuer", "voting-app"), 0)
    result = simulate(objs, cluster_type=platform_cluster(everything, set(), {}))
    assert any("ClusterIssuer/voting-app is Degraded (Ready=False: Secret/voting-app-local-ca does not exist"
               " (Certificate/voting-app-local-ca is in wave 1)" in p for p in result.problems), result.report()


def test_prod_with_tracing_switched_on():
    """The opt-in tracing Applications, added as argocd/platform/README.md says, sync with the rest."""
    tracing = [doc for doc in yaml.safe_load_all((REPO / "argocd" / "platform" / "optional" / "tracing.yaml").read_text()) if doc]
    for app in tracing:
        app["metadata"]["namespace"] = "argocd"
    result = replay(cluster_objects("prod") + tracing)
    assert {"jaeger", "otel-collector"} <= set(result.children) and result.problems == [], result.report()
    assert all(result.children[n].health == "Healthy" for n in ("jaeger", "otel-collector")), result.report()
