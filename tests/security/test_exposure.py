"""The rendered prod overlay: only vote and result face the outside, and no pod runs as root.

tests/manifests checks the NetworkPolicy matrix with network-config-analyzer and the restricted
security context; these checks add what reaches the namespace from outside (Service types,
HTTPRoute backends, Gateway listeners that admit other namespaces' routes, policy rules that admit other
namespaces) and an explicit non-zero UID on
every container. Each check is also shown failing on a broken copy.
"""

from __future__ import annotations

import copy
import functools

import pytest

from exposure_checks import exposure_problems
from manifest_render import rendered_objects as render


@functools.cache
def _prod() -> tuple:
    return tuple(render("overlays/prod"))


@pytest.fixture
def prod() -> list[dict]:
    return copy.deepcopy(list(_prod()))


def find(objects, kind, name):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def pod_spec(objects, name):
    return next(o for o in objects if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"]["name"] == name)[
        "spec"]["template"]["spec"]


def test_prod_exposes_only_vote_and_result_and_runs_nothing_as_root(prod):
    assert exposure_problems(prod) == []


def test_every_rendered_workload_is_checked(prod):
    kinds = {o["kind"] for o in prod}
    assert {"Service", "Gateway", "HTTPRoute", "NetworkPolicy", "Deployment", "StatefulSet", "CronJob"} <= kinds
    assert {o["metadata"]["name"] for o in prod if o["kind"] == "Service"} >= {"vote", "result", "redis", "db"}


def _node_port(objs):
    find(objs, "Service", "db")["spec"]["type"] = "NodePort"


def _load_balancer(objs):
    find(objs, "Service", "redis")["spec"]["type"] = "LoadBalancer"


def _external_ip(objs):
    find(objs, "Service", "db")["spec"]["externalIPs"] = ["203.0.113.7"]


def _route_to_redis(objs):
    find(objs, "HTTPRoute", "result")["spec"]["rules"].append(
        {"matches": [{"path": {"type": "PathPrefix", "value": "/redis"}}], "backendRefs": [{"name": "redis", "port": 6379}]})


def _gateway_admits_every_namespace(objs):
    find(objs, "Gateway", "voting-app")["spec"]["listeners"][1]["allowedRoutes"] = {"namespaces": {"from": "All"}}


def _vote_open_to_the_gateway_namespace(objs):
    del find(objs, "NetworkPolicy", "vote-from-gateway")["spec"]["ingress"][0]["from"][0]["podSelector"]
    find(objs, "NetworkPolicy", "vote-from-gateway")["spec"]["ingress"][0]["ports"] = []


def _db_open_to_namespaces(objs):
    find(objs, "NetworkPolicy", "db")["spec"]["ingress"].append(
        {"from": [{"namespaceSelector": {}}], "ports": [{"protocol": "TCP", "port": 5432}]})


def _redis_open_to_anyone(objs):
    find(objs, "NetworkPolicy", "redis-from-keda")["spec"]["ingress"][0]["from"] = [
        {"ipBlock": {"cidr": "0.0.0.0/0"}}]


def _vote_all_ports_from_anywhere(objs):
    find(objs, "NetworkPolicy", "vote")["spec"]["ingress"].append({})


def _no_default_deny(objs):
    objs.remove(find(objs, "NetworkPolicy", "default-deny-all"))


def _root_user(objs):
    pod_spec(objs, "worker")["containers"][0]["securityContext"]["runAsUser"] = 0


def _no_uid(objs):
    spec = pod_spec(objs, "vote")
    spec.get("securityContext", {}).pop("runAsUser", None)
    spec["containers"][0].get("securityContext", {}).pop("runAsUser", None)


def _root_allowed(objs):
    spec = pod_spec(objs, "db")
    spec.get("securityContext", {}).pop("runAsNonRoot", None)
    for c in spec["containers"]:
        c.get("securityContext", {}).pop("runAsNonRoot", None)


BREAKAGES = {
    "NodePort Service": (_node_port, "Service/db"),
    "LoadBalancer Service": (_load_balancer, "Service/redis"),
    "external IP": (_external_ip, "Service/db"),
    "HTTPRoute to redis": (_route_to_redis, "HTTPRoute/result routes to redis"),
    "Gateway admits other namespaces' routes": (_gateway_admits_every_namespace, "admits routes from All namespaces"),
    "vote, every port, from the gateway's namespace": (_vote_open_to_the_gateway_namespace, "vote port any"),
    "db open to other namespaces": (_db_open_to_namespaces, "db port 5432"),
    "redis open beyond KEDA": (_redis_open_to_anyone, "redis"),
    "vote, every port, from anywhere": (_vote_all_ports_from_anywhere, "vote port any"),
    "no default deny": (_no_default_deny, "default-deny"),
    "worker as UID 0": (_root_user, "runAsUser is 0"),
    "vote without a UID": (_no_uid, "runAsUser is None"),
    "db may run as root": (_root_allowed, "runAsNonRoot"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_each_check_catches_its_breakage(prod, breakage):
    change, expected = BREAKAGES[breakage]
    change(prod)
    problems = exposure_problems(prod)
    assert any(expected in p for p in problems), problems
