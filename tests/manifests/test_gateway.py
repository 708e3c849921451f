"""Prod's Gateway, HTTPRoutes and Envoy Gateway policies: TLS by cert-manager, plain HTTP only
redirects, websockets that live, upstream connections the proxy drops before our servers do.

Gateway and HTTPRoute are also checked against the Gateway API schemas (test_crd_schemas.py);
Envoy Gateway's policies, which no schema package models, by envoy_gateway_schema.py here.
"""

from __future__ import annotations

import ast
import copy
import re
import shutil
import subprocess

import pytest
from hypercorn.config import Config

import envoy_gateway_schema as eg
import manifest_checks as mc
import yaml
from argocd_model import shim_certificates
from manifest_render import REPO, rendered_objects, venv_tool

ISSUER = "cert-manager.io/cluster-issuer"
# Viewers of a quiet poll get no message for a long time; the page reconnects when its socket closes.
WEBSOCKET_IDLE_AT_LEAST = 3600


@pytest.fixture
def prod() -> list[dict]:
    """A private copy of the rendered prod overlay, safe to change."""
    return rendered_objects("overlays/prod")


def of_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


# --- what keeps each server's idle connections ---------------------------------------------------

def _assigned(path, target: str) -> float | None:
    """The number a Python file assigns to `target` (a name, or an attribute such as config.x)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for t in node.targets:
                if ast.unparse(t) == target:
                    return float(node.value.value)
    return None


def gunicorn_keepalive() -> float:
    """vote's gunicorn keepalive, from its config file."""
    return _assigned(REPO / "apps" / "vote" / "src" / "vote" / "gunicorn_conf.py", "keepalive")


def hypercorn_keepalive() -> float:
    """result's hypercorn keep-alive timeout: what __main__ sets, else hypercorn's default."""
    set_ = _assigned(REPO / "apps" / "result" / "src" / "result" / "__main__.py", "config.keep_alive_timeout")
    return set_ if set_ is not None else float(Config().keep_alive_timeout)


UPSTREAM_KEEPALIVE = {"vote": gunicorn_keepalive, "result": hypercorn_keepalive}


def test_keepalives_are_read_from_the_servers():
    assert gunicorn_keepalive() == 75
    assert hypercorn_keepalive() == 5


# --- the checks ----------------------------------------------------------------------------------

def _targets(policy: dict, kind: str, names: set[str]) -> bool:
    return any(r.get("kind") == kind and r.get("name") in names for r in policy["spec"].get("targetRefs") or [])


def policies_for(objects, route: dict, kind: str) -> list[dict]:
    """The policies of a kind that apply to a route: those on the route first, then those on its Gateways."""
    gateways = {p["name"] for p in route["spec"].get("parentRefs") or []}
    own = [p for p in of_kind(objects, kind) if _targets(p, "HTTPRoute", {route["metadata"]["name"]})]
    return own + [p for p in of_kind(objects, kind) if _targets(p, "Gateway", gateways)]


def _timeout(policy: dict, side: str, field: str) -> str | None:
    return ((policy["spec"].get("timeout") or {}).get(side) or {}).get(field)


def gateway_problems(objects: list[dict]) -> list[str]:
    """TLS from cert-manager on every HTTPS listener; the HTTP listener only redirects; policies target what exists."""
    problems = []
    for gw in of_kind(objects, "Gateway"):
        if not (gw["metadata"].get("annotations") or {}).get(ISSUER):
            problems.append(f"{mc.ref(gw)}: no {ISSUER} annotation: cert-manager makes no certificate")
        for listener in gw["spec"]["listeners"]:
            name = listener["name"]
            if listener["protocol"] == "HTTPS":
                refs = (listener.get("tls") or {}).get("certificateRefs") or []
                if not listener.get("hostname") or not refs:
                    problems.append(f"{mc.ref(gw)}: HTTPS listener {name} needs a hostname and a certificateRef")
            elif listener["protocol"] == "HTTP":
                for route in of_kind(objects, "HTTPRoute"):
                    on_it = [p for p in route["spec"]["parentRefs"] if p["name"] == gw["metadata"]["name"]
                             and p.get("sectionName") in (None, name)]
                    served = [r for r in route["spec"]["rules"] if r.get("backendRefs")]
                    if on_it and served:
                        problems.append(f"{mc.ref(route)} serves plain HTTP on listener {name}; it may only redirect")
            else:
                problems.append(f"{mc.ref(gw)}: listener {name} speaks {listener['protocol']}")
    for policy in (o for o in objects if eg.covers(o)):
        for target in policy["spec"].get("targetRefs") or []:
            if mc.find(objects, target["kind"], target["name"]) is None:
                problems.append(f"{mc.ref(policy)} targets {target['kind']}/{target['name']}, which is not rendered")
    return problems


def keepalive_problems(objects: list[dict]) -> list[str]:
    """The proxy closes an idle upstream connection before our server does, so it never sends on a closing one.

    A POST sent on a connection the server is closing at that instant is lost, and a proxy never
    resends a POST; so the proxy's upstream idle timeout must be the shorter one.
    """
    problems = []
    for route in of_kind(objects, "HTTPRoute"):
        for backend in {b["name"] for r in route["spec"]["rules"] for b in r.get("backendRefs") or []}:
            if backend not in UPSTREAM_KEEPALIVE:
                problems.append(f"{mc.ref(route)}: backend {backend} has no known keep-alive; add it to this check")
                continue
            keepalive = UPSTREAM_KEEPALIVE[backend]()
            idle = next((t for p in policies_for(objects, route, "BackendTrafficPolicy")
                         if (t := _timeout(p, "http", "connectionIdleTimeout"))), None)
            if idle is None:
                problems.append(f"{mc.ref(route)}: no BackendTrafficPolicy sets connectionIdleTimeout (Envoy's default"
                                f" 1h outlives {backend}'s {keepalive:g} s keep-alive)")
            elif eg.seconds(idle) >= keepalive:
                problems.append(f"{mc.ref(route)}: upstream idle timeout {idle} is not below {backend}'s"
                                f" {keepalive:g} s keep-alive")
    return problems


def websocket_problems(objects: list[dict]) -> list[str]:
    """No request or idle timeout of the proxy ends a websocket to /ws before an hour of silence.

    The upstream connection idle timeout does not apply: an open websocket is an active stream.
    """
    problems = []
    for route in of_kind(objects, "HTTPRoute"):
        ws = [r for r in route["spec"]["rules"] if _carries_ws(r)]
        if not ws:
            continue
        for rule in ws:
            request = (rule.get("timeouts") or {}).get("request")
            if request is None or eg.seconds(request) != 0:
                problems.append(f"{mc.ref(route)}: the /ws rule keeps a request timeout ({request or 'Envoy: 15s'})")
        backend = policies_for(objects, route, "BackendTrafficPolicy")
        for field in ("maxConnectionDuration", "requestTimeout"):
            for p in backend:
                if _timeout(p, "http", field):
                    problems.append(f"{mc.ref(p)}: {field} {_timeout(p, 'http', field)} would cut websockets")
        idle = next((t for p in policies_for(objects, route, "ClientTrafficPolicy")
                     if (t := _timeout(p, "http", "streamIdleTimeout"))), None)
        if idle is None or eg.seconds(idle) < WEBSOCKET_IDLE_AT_LEAST:
            problems.append(f"{mc.ref(route)}: stream idle timeout {idle or 'Envoy: 5m'} closes a quiet websocket"
                            f" before {WEBSOCKET_IDLE_AT_LEAST} s")
    if not any(_carries_ws(rule) for route in of_kind(objects, "HTTPRoute") for rule in route["spec"]["rules"]):
        problems.append("no HTTPRoute rule carries /ws")
    return problems


def _carries_ws(rule: dict) -> bool:
    return any((m.get("path") or {}).get("value") == "/ws" for m in rule.get("matches") or [])


def all_problems(objects):
    return gateway_problems(objects) + keepalive_problems(objects) + websocket_problems(objects)


def test_prod_gateway_routes_and_policies(prod):
    assert {mc.ref(o) for o in of_kind(prod, "Gateway") + of_kind(prod, "HTTPRoute")} == {
        "Gateway/voting-app", "HTTPRoute/vote", "HTTPRoute/result", "HTTPRoute/https-redirect"}
    assert all_problems(prod) == []


def test_routes_reach_only_vote_and_result_over_https(prod):
    gateway = mc.find(prod, "Gateway", "voting-app")
    listeners = {x["name"]: x for x in gateway["spec"]["listeners"]}
    for name in ("vote", "result"):
        route = mc.find(prod, "HTTPRoute", name)
        assert [(p["name"], listeners[p["sectionName"]]["protocol"]) for p in route["spec"]["parentRefs"]] == [
            ("voting-app", "HTTPS")]
        assert {b["name"] for r in route["spec"]["rules"] for b in r["backendRefs"]} == {name}


def test_every_envoy_gateway_policy_matches_the_schema_subset(prod):
    policies = [o for o in prod if eg.covers(o)]
    assert {o["kind"] for o in policies} == {"ClientTrafficPolicy", "BackendTrafficPolicy"}
    assert {mc.ref(o): eg.policy_problems(o) for o in policies} == {mc.ref(o): [] for o in policies}


def _policy(objs, kind, name):
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


SCHEMA_BREAKAGES = [
    ("misspelt field", lambda o: o["spec"]["timeout"]["http"].update(connectionIdleTimout="60s"),
     "/spec/timeout/http/connectionIdleTimout: field not declared"),
    ("duration without a unit", lambda o: o["spec"]["timeout"]["http"].update(connectionIdleTimeout="60"),
     "'60' is not a Gateway API duration"),
    ("no target", lambda o: o["spec"].pop("targetRefs"), "either targetRef or targetRefs must be used"),
    ("both target forms", lambda o: o["spec"].update(targetRef=o["spec"]["targetRefs"][0]),
     "either targetRef or targetRefs must be used"),
    ("foreign group", lambda o: o["spec"]["targetRefs"][0].update(group="networking.k8s.io"),
     "can only target the group gateway.networking.k8s.io"),
    ("target without a name", lambda o: o["spec"]["targetRefs"][0].pop("name"),
     "must have required property name"),
    ("unknown version", lambda o: o.update(apiVersion="gateway.envoyproxy.io/v1beta1"),
     "no schema for gateway.envoyproxy.io/v1beta1 BackendTrafficPolicy"),
    ("section of a route", lambda o: o["spec"]["targetRefs"][0].update(sectionName="ws"),
     "does not support sectionName"),
]


@pytest.mark.parametrize(("change", "expected"), [b[1:] for b in SCHEMA_BREAKAGES], ids=[b[0] for b in SCHEMA_BREAKAGES])
def test_schema_subset_catches(change, expected, prod):
    policy = copy.deepcopy(_policy(prod, "BackendTrafficPolicy", "vote"))
    change(policy)
    assert any(expected in p for p in eg.policy_problems(policy)), eg.policy_problems(policy)


def test_schema_subset_catches_a_client_policy_on_a_route(prod):
    policy = copy.deepcopy(_policy(prod, "ClientTrafficPolicy", "voting-app"))
    policy["spec"]["targetRefs"][0].update(kind="HTTPRoute", name="result")
    assert any("can only target Gateway, not HTTPRoute" in p for p in eg.policy_problems(policy))


def _no_issuer(objs):
    del mc.find(objs, "Gateway", "voting-app")["metadata"]["annotations"][ISSUER]


def _vote_over_plain_http(objs):
    mc.find(objs, "HTTPRoute", "vote")["spec"]["parentRefs"].append({"name": "voting-app", "sectionName": "http"})


def _redirect_serves(objs):
    mc.find(objs, "HTTPRoute", "https-redirect")["spec"]["rules"][0]["backendRefs"] = [{"name": "vote", "port": 80}]


def _policy_on_a_missing_route(objs):
    _policy(objs, "BackendTrafficPolicy", "result")["spec"]["targetRefs"][0]["name"] = "results"


def _vote_idle_above_gunicorn(objs):
    _policy(objs, "BackendTrafficPolicy", "vote")["spec"]["timeout"]["http"]["connectionIdleTimeout"] = "90s"


def _no_result_policy(objs):
    objs.remove(_policy(objs, "BackendTrafficPolicy", "result"))


def _gateway_wide_minute(objs):
    """One policy for the whole Gateway at vote's 60 s: too long for hypercorn's 5 s."""
    objs.remove(_policy(objs, "BackendTrafficPolicy", "result"))
    vote = _policy(objs, "BackendTrafficPolicy", "vote")
    vote["spec"]["targetRefs"] = [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "voting-app"}]


def _ws_with_request_timeout(objs):
    del mc.find(objs, "HTTPRoute", "result")["spec"]["rules"][0]["timeouts"]


def _short_stream_idle(objs):
    _policy(objs, "ClientTrafficPolicy", "voting-app")["spec"]["timeout"]["http"]["streamIdleTimeout"] = "5m"


def _max_connection_duration(objs):
    _policy(objs, "BackendTrafficPolicy", "result")["spec"]["timeout"]["http"]["maxConnectionDuration"] = "10m"


def _no_ws_rule(objs):
    mc.find(objs, "HTTPRoute", "result")["spec"]["rules"].pop(0)


BREAKAGES = {
    "no issuer annotation": (_no_issuer, "no cert-manager.io/cluster-issuer annotation"),
    "vote over plain HTTP": (_vote_over_plain_http, "HTTPRoute/vote serves plain HTTP on listener http"),
    "the redirect serves": (_redirect_serves, "HTTPRoute/https-redirect serves plain HTTP"),
    "policy on a missing route": (_policy_on_a_missing_route, "targets HTTPRoute/results, which is not rendered"),
    "vote idle above gunicorn's": (_vote_idle_above_gunicorn, "upstream idle timeout 90s is not below vote's 75 s"),
    "no policy for result": (_no_result_policy, "HTTPRoute/result: no BackendTrafficPolicy sets connectionIdleTimeout"),
    "one minute for the whole Gateway": (_gateway_wide_minute, "upstream idle timeout 60s is not below result's 5 s"),
    "/ws keeps Envoy's request timeout": (_ws_with_request_timeout, "the /ws rule keeps a request timeout"),
    "5 minutes of stream idle": (_short_stream_idle, "stream idle timeout 5m closes a quiet websocket"),
    "a maximum connection duration": (_max_connection_duration, "maxConnectionDuration 10m would cut websockets"),
    "no /ws rule": (_no_ws_rule, "no HTTPRoute rule carries /ws"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_gateway_checks_catch(breakage, prod):
    change, expected = BREAKAGES[breakage]
    change(prod)
    problems = all_problems(prod)
    assert any(expected in p for p in problems), problems


# --- the hostnames: one patch for a real cluster ---------------------------------------------------

def readme_hostname_patch() -> str:
    """The patch overlays/README.md gives a real cluster, as written there."""
    text = (REPO / "overlays" / "README.md").read_text()
    found = re.search(r"`prod/patch-hostnames\.yaml`:\n\n```yaml\n(.*?)```", text, re.S)
    assert found, "overlays/README.md no longer shows prod/patch-hostnames.yaml"
    return found.group(1)


def render_with(patch: str, tmp_path) -> list[dict]:
    """overlays/prod rendered with a patch on Gateway/voting-app, as the README says to add it."""
    for folder in ("base", "overlays"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    prod = tmp_path / "overlays" / "prod"
    (prod / "patch-hostnames.yaml").write_text(patch)
    spec = yaml.safe_load((prod / "kustomization.yaml").read_text())
    spec["patches"].append({"path": "patch-hostnames.yaml", "target": {"kind": "Gateway", "name": "voting-app"}})
    (prod / "kustomization.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    done = subprocess.run([venv_tool("kubectl"), "kustomize", str(prod)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return [o for o in yaml.safe_load_all(done.stdout) if o]


def hostnames(objects) -> dict[str, set[str]]:
    """Every hostname the Gateway, its routes and its certificates name, by where it is named."""
    gateway = mc.find(objects, "Gateway", "voting-app")
    return {
        "listeners": {x["hostname"] for x in gateway["spec"]["listeners"] if x.get("hostname")},
        "routes": {h for r in of_kind(objects, "HTTPRoute") for h in r["spec"].get("hostnames") or []},
        "certificates": {h for c in shim_certificates(gateway) for h in c["spec"]["dnsNames"]},
    }


def test_prod_names_localhost_hosts_that_resolve_without_dns(prod):
    assert hostnames(prod) == dict.fromkeys(("listeners", "routes", "certificates"),
                                            {"vote.localhost", "result.localhost"})
    for route in (mc.find(prod, "HTTPRoute", n) for n in ("vote", "result")):
        listener = route["spec"]["parentRefs"][0]["sectionName"]
        assert route["spec"]["hostnames"] == [f"{listener}.localhost"]


def test_the_readme_patch_sets_every_hostname(tmp_path):
    objects = render_with(readme_hostname_patch(), tmp_path)
    assert hostnames(objects) == dict.fromkeys(("listeners", "routes", "certificates"),
                                               {"vote.example.com", "result.example.com"})
    assert all_problems(objects) == []


def test_the_readme_patch_refuses_reordered_listeners(tmp_path):
    patch = readme_hostname_patch().replace("value: vote\n", "value: result\n", 1)
    with pytest.raises(AssertionError, match="test failed"):
        render_with(patch, tmp_path)
