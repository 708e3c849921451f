"""Policy tests over the rendered overlays; each check is also shown failing on a broken copy."""

from __future__ import annotations

import pytest

import manifest_checks as mc

CHECKS = {
    "images pinned by digest": lambda objs, ns: mc.image_problems(objs),
    "limits, probes, restricted security context": lambda objs, ns: mc.pod_problems(objs),
    "every PVC bound to a workload": lambda objs, ns: mc.pvc_problems(objs),
    "labels and namespace": mc.label_problems,
    "selectors match pod labels": lambda objs, ns: mc.selector_problems(objs),
    "Service target ports exist on the pods": lambda objs, ns: mc.service_port_problems(objs),
    "HTTPRoute backends exist": lambda objs, ns: mc.route_problems(objs),
    "Argo CD sync waves": lambda objs, ns: mc.sync_wave_problems(objs),
    "Redis password and memory": lambda objs, ns: mc.redis_problems(objs),
    "StatefulSet service and claim templates": lambda objs, ns: mc.statefulset_problems(objs),
}


@pytest.mark.parametrize("check", CHECKS)
def test_rendered_overlay_passes(check, objects, namespace):
    assert CHECKS[check](objects, namespace) == []


def test_no_clear_text_secret_in_prod(prod_objects):
    assert mc.secret_problems(prod_objects, allow_dev_only=False) == []


def test_dev_secret_is_marked_dev_only(dev_objects):
    secrets = [o for o in dev_objects if o["kind"] == "Secret"]
    assert sorted(s["metadata"]["name"] for s in secrets) == ["db", "redis"]
    assert mc.secret_problems(dev_objects, allow_dev_only=True) == []


def _workload(objs, name):
    return next(o for o in objs if o["kind"] in mc.WORKLOAD_KINDS and o["metadata"]["name"] == name)


def _container(objs, name):
    return _workload(objs, name)["spec"]["template"]["spec"]["containers"][0]


def _drop_limits(objs):
    del _container(objs, "vote")["resources"]["limits"]


def _drop_readiness(objs):
    del _container(objs, "worker")["readinessProbe"]


def _liveness_checks_dependencies(objs):
    _container(objs, "result")["livenessProbe"]["httpGet"]["path"] = "/readyz"


def _allow_escalation(objs):
    _container(objs, "redis")["securityContext"]["allowPrivilegeEscalation"] = True


def _writable_root(objs):
    _container(objs, "db")["securityContext"]["readOnlyRootFilesystem"] = False


def _keep_capabilities(objs):
    del _container(objs, "vote")["securityContext"]["capabilities"]


def _no_seccomp(objs):
    del _workload(objs, "worker")["spec"]["template"]["spec"]["securityContext"]["seccompProfile"]


def _root_uid(objs):
    _workload(objs, "result")["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 0


def _low_uid_for_our_image(objs):
    _workload(objs, "vote")["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 1000


def _automount_token(objs):
    _workload(objs, "worker")["spec"]["template"]["spec"]["automountServiceAccountToken"] = True


def _service_links(objs):
    del _workload(objs, "vote")["spec"]["template"]["spec"]["enableServiceLinks"]


def _short_grace(objs):
    _workload(objs, "vote")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 10


def _unnamed_port(objs):
    del _container(objs, "worker")["ports"][0]["name"]


def _tag_instead_of_digest(objs):
    _container(objs, "redis")["image"] = "redis:7.4-alpine"


def _orphan_pvc(objs):
    objs.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": "lost", "namespace": "x"}, "spec": {}})


def _small_requests(objs):
    _container(objs, "db")["resources"]["requests"]["memory"] = "32Mi"


def _missing_label(objs):
    del _workload(objs, "db")["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"]


def _selector_mismatch(objs):
    _workload(objs, "vote")["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = "votes"


def _service_selects_nothing(objs):
    next(o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == "redis")["spec"]["selector"] = {
        "app.kubernetes.io/name": "valkey"}


def _wrong_target_port(objs):
    svc = next(o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == "db")
    svc["spec"]["ports"][0]["targetPort"] = "pg"


def _route_to_the_container_port(objs):
    route = next(o for o in objs if o["kind"] == "HTTPRoute" and o["metadata"]["name"] == "vote")
    route["spec"]["rules"][0]["backendRefs"][0]["port"] = 8080


def _apps_before_db(objs):
    _workload(objs, "worker")["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] = "-5"


def _wave_in_pod_template(objs):
    _workload(objs, "vote")["spec"]["template"]["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] = "1"


def _redis_args(objs, flag, value):
    args = _container(objs, "redis")["args"]
    if value is None:
        i = args.index(flag)
        del args[i:i + 2]
    else:
        args[args.index(flag) + 1] = value


def _redis_without_maxmemory(objs):
    _redis_args(objs, "--maxmemory", None)


def _redis_maxmemory_at_the_limit(objs):
    _redis_args(objs, "--maxmemory", "512mb")


def _redis_evicts(objs):
    _redis_args(objs, "--maxmemory-policy", "allkeys-lru")


def _redis_without_password(objs):
    _redis_args(objs, "--requirepass", None)


def _redis_probes_without_password(objs):
    _container(objs, "redis")["env"] = [e for e in _container(objs, "redis")["env"] if e["name"] != "REDISCLI_AUTH"]


def _labelled_claim_template(objs):
    _workload(objs, "db")["spec"]["volumeClaimTemplates"][0]["metadata"]["labels"] = {"app.kubernetes.io/part-of": "x"}


def _sts_names_the_clusterip_service(objs):
    _workload(objs, "db")["spec"]["serviceName"] = "db"


def _host_path(objs):
    spec = _workload(objs, "redis")["spec"]["template"]["spec"]
    spec["volumes"].append({"name": "host", "hostPath": {"path": "/var"}})


BREAKAGES = [
    (_drop_limits, "limits, probes, restricted security context", "no limits.cpu"),
    (_drop_readiness, "limits, probes, restricted security context", "no readinessProbe"),
    (_liveness_checks_dependencies, "limits, probes, restricted security context", "checks readiness"),
    (_allow_escalation, "limits, probes, restricted security context", "allowPrivilegeEscalation"),
    (_writable_root, "limits, probes, restricted security context", "readOnlyRootFilesystem"),
    (_keep_capabilities, "limits, probes, restricted security context", "drop ALL"),
    (_no_seccomp, "limits, probes, restricted security context", "seccompProfile"),
    (_root_uid, "limits, probes, restricted security context", "UID 0"),
    (_low_uid_for_our_image, "limits, probes, restricted security context", "fixed UID"),
    (_automount_token, "limits, probes, restricted security context", "automountServiceAccountToken"),
    (_service_links, "limits, probes, restricted security context", "enableServiceLinks"),
    (_short_grace, "limits, probes, restricted security context", "terminationGracePeriodSeconds"),
    (_unnamed_port, "limits, probes, restricted security context", "has no name"),
    (_small_requests, "limits, probes, restricted security context", "below the classic architecture"),
    (_host_path, "limits, probes, restricted security context", "not allowed by 'restricted'"),
    (_tag_instead_of_digest, "images pinned by digest", "not pinned by digest"),
    (_orphan_pvc, "every PVC bound to a workload", "PersistentVolumeClaim/lost"),
    (_missing_label, "labels and namespace", "app.kubernetes.io/instance"),
    (_selector_mismatch, "selectors match pod labels", "does not match its pod template"),
    (_service_selects_nothing, "selectors match pod labels", "matches no pod template"),
    (_wrong_target_port, "Service target ports exist on the pods", "targetPort 'pg'"),
    (_route_to_the_container_port, "HTTPRoute backends exist", "backend port 8080 is not a port of Service vote"),
    (_apps_before_db, "Argo CD sync waves", "is not before Deployment/worker"),
    (_redis_without_maxmemory, "Redis password and memory", "no --maxmemory"),
    (_redis_maxmemory_at_the_limit, "Redis password and memory", "above 50% of the 512Mi limit"),
    (_redis_evicts, "Redis password and memory", "noeviction"),
    (_redis_without_password, "Redis password and memory", "--requirepass"),
    (_redis_probes_without_password, "Redis password and memory", "REDISCLI_AUTH"),
    (_labelled_claim_template, "StatefulSet service and claim templates", "can never change"),
    (_sts_names_the_clusterip_service, "StatefulSet service and claim templates", "not a headless Service"),
    (_wave_in_pod_template, "Argo CD sync waves", "pod template carries argocd.argoproj.io/sync-wave"),
]


@pytest.mark.parametrize(("breakage", "check", "expected"), BREAKAGES, ids=[b[0].__name__.strip("_") for b in BREAKAGES])
def test_check_catches_breakage(breakage, check, expected, prod_objects):
    breakage(prod_objects)
    problems = CHECKS[check](prod_objects, "voting-app-prod")
    assert any(expected in p for p in problems), problems


def test_clear_text_secret_in_prod_is_caught(prod_objects, dev_objects):
    prod_objects.append(next(o for o in dev_objects if o["kind"] == "Secret"))
    assert mc.secret_problems(prod_objects, allow_dev_only=False)


def test_unmarked_dev_secret_is_caught(dev_objects):
    secret = next(o for o in dev_objects if o["kind"] == "Secret")
    del secret["metadata"]["annotations"]["voting-app/dev-only-credentials"]
    assert mc.secret_problems(dev_objects, allow_dev_only=True)


def test_prod_data_survives_a_prune_or_an_app_deletion(prod_objects):
    assert mc.data_protection_problems(prod_objects) == []


@pytest.mark.parametrize("kind", ["Namespace", "PersistentVolumeClaim"])
def test_data_protection_check_catches_an_unprotected(prod_objects, kind):
    obj = next(o for o in prod_objects if o["kind"] == kind)
    del obj["metadata"]["annotations"][mc.KEEP]
    assert any(kind in p and "Delete=false" in p for p in mc.data_protection_problems(prod_objects))


def test_data_protection_check_catches_claims_deleted_with_the_statefulset(prod_objects):
    _workload(prod_objects, "db")["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] = "Delete"
    assert any("retention" in p.lower() for p in mc.data_protection_problems(prod_objects))
