"""The Argo CD sync model over both overlays and the app-of-apps; each breakage must be caught."""

from __future__ import annotations

import re

import pytest

from argocd_model import ARGOCD, ARGOCD_CHART, HOOK, WAVE, pod_needs, pod_spec, simulate
from manifest_render import REPO, rendered_objects

TARGETS = ("overlays/dev", "overlays/prod")
ADDRESS_KINDS = ("Ingress/", "Service/", "Gateway/")


@pytest.mark.parametrize("target", TARGETS)
def test_sync_walks_every_wave(target):
    result = simulate(rendered_objects(target))
    assert result.finished and result.problems == [], result.report()


@pytest.mark.parametrize("target", TARGETS)
def test_only_a_missing_load_balancer_keeps_the_app_unhealthy(target):
    bare_metal = simulate(rendered_objects(target))
    assert all(w.startswith(ADDRESS_KINDS) and "address" in w for w in bare_metal.warnings), bare_metal.report()
    cloud = simulate(rendered_objects(target), load_balancer=True)
    assert (cloud.app_health, cloud.warnings) == ("Healthy", []), cloud.report()


def _named(objs, kind, name):
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def _set_wave(obj, wave):
    obj["metadata"].setdefault("annotations", {})[WAVE] = str(wave)


def _todays_prod(objs):
    """The backup claim in wave 0 and only the CronJobs in wave 2 mounting it."""
    claim = ("PersistentVolumeClaim", "db-backup")
    objs[:] = [o for o in objs if not (o["kind"] == "Job" and claim in pod_needs(pod_spec(o) or {})[1])]
    _set_wave(_named(objs, "PersistentVolumeClaim", "db-backup"), 0)
    for cron in (o for o in objs if o["kind"] == "CronJob"):
        _set_wave(cron, 2)


def _gateway_first(objs):
    for obj in (o for o in objs if o["apiVersion"].startswith("gateway.")):
        _set_wave(obj, 0)


def _secret_store_later(objs):
    _set_wave(_named(objs, "ExternalSecret", "db"), 1)


def _hpa_before_target(objs):
    _set_wave(_named(objs, "HorizontalPodAutoscaler", "vote"), 0)


def _service_account_last(objs):
    _set_wave(_named(objs, "ServiceAccount", "vote"), 2)


def _unknown_trigger_authentication(objs):
    _named(objs, "ScaledObject", "worker")["spec"]["triggers"][0]["authenticationRef"] = {"name": "missing"}


BREAKAGES = [
    (_todays_prod, "problems",
     "wave 0: PersistentVolumeClaim/db-backup stays Progressing (Pending: WaitForFirstConsumer and no pod mounts it"
     " before wave 2: CronJob/db-backup creates pods only on schedule"),
    (_gateway_first, "problems", "wave 0: Gateway/voting-app stays Progressing (Programmed=False, no load-balancer address"),
    (_secret_store_later, "problems",
     "wave 0: StatefulSet/db stays Progressing (its pods cannot start: Secret/db does not exist"
     " (ExternalSecret/db is in wave 1)"),
    (_hpa_before_target, "problems",
     "wave 0: HorizontalPodAutoscaler/vote is Degraded (FailedGetScale: Deployment/vote does not exist"
     " (it is in wave 1)); the sync fails, wave 1 and later are never applied"),
    (_service_account_last, "problems",
     "wave 1: Deployment/vote is Degraded (no pod is created: ServiceAccount/vote does not exist (it is in wave 2)"),
    (_unknown_trigger_authentication, "warnings",
     "ScaledObject/worker (wave 2) stays Degraded (Ready=False: TriggerAuthentication/missing does not exist"
     " (not rendered))"),
]


@pytest.mark.parametrize(("breakage", "kind", "expected"), BREAKAGES, ids=[b[0].__name__.strip("_") for b in BREAKAGES])
def test_model_catches_breakage(breakage, kind, expected, prod_objects):
    breakage(prod_objects)
    result = simulate(prod_objects)
    assert any(expected in p for p in getattr(result, kind)), result.report()


def _no_issuer_on_the_gateway(objs):
    del _named(objs, "Gateway", "voting-app")["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]


def _namespaced_issuer(objs):
    notes = _named(objs, "Gateway", "voting-app")["metadata"]["annotations"]
    notes["cert-manager.io/issuer"] = notes.pop("cert-manager.io/cluster-issuer")


def _route_to_a_missing_listener(objs):
    _named(objs, "HTTPRoute", "vote")["spec"]["parentRefs"][0]["sectionName"] = "votes"


def _route_with_another_hostname(objs):
    _named(objs, "HTTPRoute", "result")["spec"]["hostnames"] = ["results.example.com"]


def _route_to_a_missing_service(objs):
    _named(objs, "HTTPRoute", "result")["spec"]["rules"][0]["backendRefs"][0]["name"] = "results"


# With a load-balancer address, so that the Gateway's own health goes past Programmed.
GATEWAY_BREAKAGES = [
    (_no_issuer_on_the_gateway, "Gateway/voting-app (wave 2) stays Degraded (Listener vote: ResolvedRefs=False:"
     " Secret/vote-tls does not exist (no Certificate makes it"),
    (_namespaced_issuer, "Gateway/voting-app (wave 2) stays Degraded (Listener vote: ResolvedRefs=False: Secret/vote-tls"
     " does not exist (Certificate/vote-tls is Progressing: Issuing: Issuer/voting-app does not exist (not rendered)"),
    (_route_to_a_missing_listener, "HTTPRoute/vote (wave 2) stays Degraded (Accepted=False: NoMatchingParent:"
     " Gateway/voting-app has no listener votes"),
    (_route_with_another_hostname, "HTTPRoute/result (wave 2) stays Degraded (Accepted=False:"
     " NoMatchingListenerHostname"),
    (_route_to_a_missing_service, "HTTPRoute/result (wave 2) stays Degraded (ResolvedRefs=False: Service/results does"
     " not exist (not rendered)"),
]


@pytest.mark.parametrize(("breakage", "expected"), GATEWAY_BREAKAGES,
                         ids=[b[0].__name__.strip("_") for b in GATEWAY_BREAKAGES])
def test_gateway_model_catches_breakage(breakage, expected, prod_objects):
    breakage(prod_objects)
    result = simulate(prod_objects, load_balancer=True)
    assert any(expected in w for w in result.warnings), result.report()


def test_the_gateway_shim_certificates_make_the_listeners_healthy(prod_objects):
    result = simulate(prod_objects, load_balancer=True)
    assert result.health["Gateway/voting-app"] == (
        "Healthy", "Programmed: an address is assigned and every listener's certificate exists"), result.report()
    assert {ref for ref, (status, _) in result.health.items() if ref.startswith("HTTPRoute/")} == {
        "HTTPRoute/vote", "HTTPRoute/result", "HTTPRoute/https-redirect"}
    assert all(result.health[r][0] == "Healthy" for r in ("HTTPRoute/vote", "HTTPRoute/result", "HTTPRoute/https-redirect"))


def _claim(name, wave=0):
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "annotations": {WAVE: str(wave)}}, "spec": {}}


def _job(name, *, hook=None, wave=0, **spec):
    notes = {WAVE: str(wave), **({HOOK: hook} if hook else {})}
    pod = {"containers": [{"name": "main", "envFrom": [{"secretRef": {"name": "absent"}}]}]}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "annotations": notes},
            "spec": {"template": {"spec": pod}, **spec}}


def test_last_wave_is_not_awaited():
    result = simulate([_claim("early", 0), _claim("late", 1)])
    assert not result.finished
    assert result.problems == ["wave 0: PersistentVolumeClaim/early stays Progressing (Pending: WaitForFirstConsumer"
                               " and nothing mounts it); wave 1 and later are never applied"]
    alone = simulate([_claim("late", 1)])
    assert alone.finished and alone.app_health == "Progressing" and len(alone.warnings) == 1


def test_a_hook_in_the_last_wave_makes_it_awaited():
    plain = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "annotations": {WAVE: "0"}}}
    hook = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "h", "annotations": {HOOK: "Sync", WAVE: "1"}}}
    assert simulate([plain, _claim("late", 1)]).finished
    result = simulate([plain, _claim("late", 1), hook])
    assert result.problems == ["wave 1: PersistentVolumeClaim/late stays Progressing (Pending: WaitForFirstConsumer"
                               " and nothing mounts it); the sync never finishes"]


def test_a_hook_that_fails_fails_the_sync_and_skip_is_never_applied():
    result = simulate([_job("check", hook="PreSync", wave=5, activeDeadlineSeconds=60),
                       _job("skipped", hook="Skip"), _claim("data", -3)])
    assert [w.label for w in result.waves] == ["PreSync wave 5"]
    assert result.problems == ["PreSync wave 5: Job/check is Degraded (its pods cannot start: Secret/absent does not"
                               " exist (not rendered); DeadlineExceeded after 60 s); the sync fails, wave -3 and later"
                               " are never applied"]
    assert "Job/skipped" not in result.health


def test_hpa_metric_failures_fail_a_middle_wave_from_argocd_3_5():
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"template": {"spec": {"containers": [{"name": "web"}]}}}}
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}}
    later = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "later", "annotations": {WAVE: "1"}}}
    assert simulate([deployment, hpa, later]).problems == []
    assert simulate([deployment, hpa, later], argocd=(3, 5)).problems == [
        "wave 0: HorizontalPodAutoscaler/web is Degraded (FailedGetResourceMetric: no metrics until its pods have run"
        " and been scraped); the sync fails, wave 1 and later are never applied"]


def test_model_follows_the_argocd_that_terraform_installs():
    variables = (REPO / "terraform" / "variables.tf").read_text()
    chart = re.search(r'variable "argocd_chart_version" \{.*?default\s*=\s*"([^"]+)"', variables, re.S).group(1)
    assert chart == ARGOCD_CHART, (
        f"terraform installs the argo-cd chart {chart}; argocd_model follows chart {ARGOCD_CHART} (Argo CD "
        f"{'.'.join(map(str, ARGOCD))}): re-read the upstream files its docstring names, then update ARGOCD_CHART and ARGOCD")
