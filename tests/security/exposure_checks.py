"""Exposure checks over rendered manifests: only vote and result face the outside, nothing runs as root."""

from __future__ import annotations

from manifest_checks import pod_specs

# The name the drills import (devstack.drills.security); the one walk is manifest_checks.pod_specs.
pod_templates = pod_specs

# Who may be reached from outside the namespace, and on which named or numbered port.
PUBLIC = {("vote", "http"), ("result", "http")}
FROM_OUTSIDE = PUBLIC | {("worker", "metrics"), ("redis", 6379)}
NAME = "app.kubernetes.io/name"


def _selects(selector: dict, labels: dict) -> bool:
    # matchExpressions are ignored: a policy is taken to select at least what its matchLabels
    # select, which can only make this check report more openings, never fewer.
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def route_backends(route: dict) -> list[str]:
    """The Services an HTTPRoute sends requests to."""
    return [b["name"] for r in route["spec"].get("rules", []) for b in r.get("backendRefs") or []
            if b.get("kind", "Service") == "Service"]


def exposure_problems(objects: list[dict]) -> list[str]:
    """Only vote and result face the outside; nothing runs as root."""
    problems = []
    for svc in (o for o in objects if o["kind"] == "Service"):
        name, spec = svc["metadata"]["name"], svc["spec"]
        if spec.get("type", "ClusterIP") != "ClusterIP" or spec.get("externalIPs") or spec.get("externalName"):
            problems.append(f"Service/{name} is reachable from outside the cluster ({spec.get('type')})")
    for route in (o for o in objects if o["kind"] == "HTTPRoute"):
        for backend in route_backends(route):
            if backend not in {n for n, _ in PUBLIC}:
                problems.append(f"HTTPRoute/{route['metadata']['name']} routes to {backend}")
    for gateway in (o for o in objects if o["kind"] == "Gateway"):
        for listener in gateway["spec"].get("listeners", []):
            admitted = ((listener.get("allowedRoutes") or {}).get("namespaces") or {}).get("from", "Same")
            if admitted != "Same":
                problems.append(f"Gateway/{gateway['metadata']['name']} listener {listener['name']} admits routes "
                                f"from {admitted} namespaces")
    pods = {t.get("metadata", {}).get("labels", {}).get(NAME): t for _, t in pod_specs(objects)}
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"].get("podSelector") == {} and "Ingress" in p["spec"].get("policyTypes", [])
            and not p["spec"].get("ingress")]
    if not deny:
        problems.append("no default-deny ingress NetworkPolicy")
    for policy in policies:
        targets = [n for n, t in pods.items() if _selects(policy["spec"].get("podSelector") or {},
                                                         t.get("metadata", {}).get("labels", {}))]
        for rule in policy["spec"].get("ingress", []):
            peers = rule.get("from")
            outside = not peers or any("namespaceSelector" in p or "ipBlock" in p for p in peers)
            if not outside:
                continue
            ports = [p.get("port") for p in rule.get("ports", [])] or ["any"]
            for target in targets:
                for port in ports:
                    if (target, port) not in FROM_OUTSIDE:
                        problems.append(f"NetworkPolicy/{policy['metadata']['name']}: {target} port {port} "
                                        f"open to other namespaces")
                    if (target, port) == ("redis", 6379):
                        names = {p.get("namespaceSelector", {}).get("matchLabels", {}).get(
                            "kubernetes.io/metadata.name") for p in peers or [{}]}
                        if names != {"keda"} or any("podSelector" not in p and "namespaceSelector" not in p
                                                    for p in peers or [{}]):
                            problems.append(f"NetworkPolicy/{policy['metadata']['name']}: redis open beyond KEDA")
    for obj, template in pod_specs(objects):
        spec = template["spec"]
        pod_sc = spec.get("securityContext") or {}
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            sc = c.get("securityContext") or {}
            where = f"{obj['kind']}/{obj['metadata']['name']} container {c['name']}"
            if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
                problems.append(f"{where}: runAsNonRoot is not true")
            uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
            if not uid:
                problems.append(f"{where}: runAsUser is {uid!r}, not a non-zero UID")
            if sc.get("privileged") or sc.get("allowPrivilegeEscalation", True):
                problems.append(f"{where}: may be privileged or escalate")
    return problems

