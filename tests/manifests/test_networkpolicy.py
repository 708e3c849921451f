"""Who may reach whom: the rendered NetworkPolicies through a real analyzer, against the allow-list.

network-config-analyzer (nca) computes the allowed connections from the rendered objects and
a few peer pods outside our namespace (data/netpol-peers.yaml), offline.
"""

from __future__ import annotations

import functools
import re
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from manifest_render import NAMESPACES, render, rendered_objects, venv_tool

PEERS = (Path(__file__).parent / "data" / "netpol-peers.yaml").read_text()
ANYWHERE = "0.0.0.0/0"
PROXY = "envoy-gateway-system/envoy-voting-app"
PROMETHEUS = "monitoring/prometheus"
OUTSIDE = [
    ANYWHERE, "elsewhere/stranger", PROXY, "envoy-gateway-system/envoy-other", "envoy-gateway-system/envoy-gateway",
    "keda/keda-operator", "kube-system/coredns", PROMETHEUS, "monitoring/grafana",
]
DNS = "TCP,UDP 53"
LINE_RE = re.compile(r"^(?P<src>\S+) => (?P<dst>\S+) : (?P<conn>.+)$")


def stray_pod(namespace: str) -> str:
    """A pod no policy names, in our namespace: only the defaults (deny, DNS) apply to it."""
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "stray", "namespace": namespace, "labels": {"app.kubernetes.io/name": "stray"}},
        "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"name": "http", "containerPort": 8080}]}]},
    }
    return yaml.safe_dump(pod)


def solver_pod(namespace: str) -> str:
    """The pod cert-manager starts in our namespace to answer an ACME HTTP-01 challenge."""
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "acme-solver", "namespace": namespace,
                     "labels": {"acme.cert-manager.io/http01-solver": "true"}},
        "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"name": "http", "containerPort": 8089}]}]},
    }
    return yaml.safe_dump(pod)


def endpoint(text: str, namespace: str) -> str:
    if text == "0.0.0.0-255.255.255.255":
        return ANYWHERE
    name = re.sub(r"\[\w+\]$", "", text)
    return name.removeprefix(f"{namespace}/")


def connection(text: str) -> str:
    if text == "All connections":
        return "all"
    match = re.fullmatch(r"\{protocols:(?P<protocols>[^,]+(?:, [A-Z]+)*),dst_ports:(?P<ports>[^}]+)\}", text)
    assert match, f"unexpected nca connection text {text!r}"
    protocols = ",".join(sorted(p.strip() for p in match["protocols"].split(",")))
    return f"{protocols} {match['ports']}"


def connectivity(manifests: str, namespace: str, tmp_path: Path) -> set[tuple[str, str, str]]:
    """(source, destination, connection) for every allowed connection that touches our namespace."""
    source = tmp_path / "rendered.yaml"
    source.write_text(f"{manifests}\n---\n{PEERS}\n---\n{stray_pod(namespace)}\n---\n{solver_pod(namespace)}")
    out = tmp_path / "connectivity.txt"
    done = subprocess.run(
        [venv_tool("nca"), "--connectivity", "-r", str(source), "-o", "txt_no_fw_rules", "--file_out", str(out)],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert done.returncode == 0 and out.exists(), f"nca failed:\n{done.stdout}\n{done.stderr}"
    allowed = set()
    for line in out.read_text().splitlines():
        match = LINE_RE.match(line.strip())
        if not match or f"{namespace}/" not in line:
            continue
        allowed.add((endpoint(match["src"], namespace), endpoint(match["dst"], namespace), connection(match["conn"])))
    return allowed


def expected(overlay: str) -> set[tuple[str, str, str]]:
    """The allow-list in base/README.md, plus the prod additions overlays/README.md explains."""
    ours = ["vote", "result", "worker", "redis", "db", "stray", "acme-solver"]
    allowed = {
        ("vote", "redis", "TCP 6379"),
        ("worker", "redis", "TCP 6379"),
        ("worker", "db", "TCP 5432"),
        ("result", "db", "TCP 5432"),
        (PROMETHEUS, "vote", "TCP 8080"),
        (PROMETHEUS, "result", "TCP 8080"),
        (PROMETHEUS, "worker", "TCP 9102"),
    }
    if overlay == "dev":
        allowed |= {(src, dst, "TCP 8080") for src in OUTSIDE for dst in ("vote", "result")}
    else:
        ours += ["db-backup", "db-restore", "db-backup-volume"]
        allowed |= {
            (PROXY, "vote", "TCP 8080"),
            (PROXY, "result", "TCP 8080"),
            ("keda/keda-operator", "redis", "TCP 6379"),
            ("db-backup", "db", "TCP 5432"),
            ("db-restore", "db", "TCP 5432"),
            # cert-manager's HTTP-01 solver: Let's Encrypt reaches it through the Gateway's HTTP listener.
            (PROXY, "acme-solver", "TCP 8089"),
        }
    allowed |= {(pod, "kube-system/coredns", DNS) for pod in ours}
    return allowed


@functools.cache
def overlay_connectivity(overlay: str) -> frozenset[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        return frozenset(connectivity(render(f"overlays/{overlay}"), NAMESPACES[overlay], Path(tmp)))


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_connectivity_is_exactly_the_allow_list(overlay):
    allowed = overlay_connectivity(overlay)
    want = expected(overlay)
    assert sorted(allowed - want) == [], "allowed but not on the allow-list"
    assert sorted(want - allowed) == [], "on the allow-list but not allowed"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_named_denials(overlay):
    allowed = overlay_connectivity(overlay)
    pairs = {(src, dst) for src, dst, _ in allowed}
    for denied in [("vote", "db"), ("result", "redis"), ("vote", "worker"), ("result", "worker"),
                   ("redis", "db"), ("db", "redis"), ("stray", "db"), ("stray", "redis"), ("elsewhere/stranger", "db")]:
        assert denied not in pairs
    assert {src for src, dst in pairs if dst == "worker"} == {PROMETHEUS}
    if overlay == "prod":
        for dst in ("vote", "result", "acme-solver"):
            assert {src for src, d in pairs if d == dst and "/" in src} == {PROXY} | ({PROMETHEUS} if dst != "acme-solver"
                                                                                     else set())


def test_analyzer_sees_a_loosened_policy(tmp_path):
    objects = rendered_objects("overlays/prod")
    db_policy = next(o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "db")
    vote_policy = next(o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "vote")
    db_policy["spec"]["ingress"][0]["from"].append({"podSelector": {}})
    vote_policy["spec"]["egress"].append({"to": [{"podSelector": {}}]})
    allowed = connectivity(yaml.safe_dump_all(objects), NAMESPACES["prod"], tmp_path)
    assert ("vote", "db", "TCP 5432") in allowed
    assert allowed != expected("prod")


# Each flow from outside the namespace, and the one policy that lets it in.
LET_IN_BY = [
    ("acme-http01-solver", (PROXY, "acme-solver", "TCP 8089")),
    ("vote-from-gateway", (PROXY, "vote", "TCP 8080")),
    ("result-from-gateway", (PROXY, "result", "TCP 8080")),
    ("worker", (PROMETHEUS, "worker", "TCP 9102")),
    ("vote", (PROMETHEUS, "vote", "TCP 8080")),
]


@pytest.mark.parametrize(("policy", "flow"), LET_IN_BY, ids=[p for p, _ in LET_IN_BY])
def test_without_its_policy_the_flow_is_denied(policy, flow, tmp_path):
    assert flow in overlay_connectivity("prod")
    objects = [o for o in rendered_objects("overlays/prod")
               if not (o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == policy)]
    allowed = connectivity(yaml.safe_dump_all(objects), NAMESPACES["prod"], tmp_path)
    assert flow not in allowed


def test_a_policy_open_to_the_whole_gateway_namespace_lets_other_proxies_in(tmp_path):
    """The proxy's labels, not just its namespace: another team's Gateway shares envoy-gateway-system."""
    objects = rendered_objects("overlays/prod")
    policy = next(o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "vote-from-gateway")
    del policy["spec"]["ingress"][0]["from"][0]["podSelector"]
    allowed = connectivity(yaml.safe_dump_all(objects), NAMESPACES["prod"], tmp_path)
    assert ("envoy-gateway-system/envoy-other", "vote", "TCP 8080") in allowed
    assert allowed - expected("prod")
