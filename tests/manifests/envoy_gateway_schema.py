"""A focused structural check of the Envoy Gateway policies we write (gateway.envoyproxy.io/v1alpha1).

No package in tools/crd-schemas models Envoy Gateway's own kinds, so this is the strongest
offline check we have: the part of their CRD schemas our manifests use, restated in our words
from Envoy Gateway's API types (`api/v1alpha1/clienttrafficpolicy_types.go`,
`backendtrafficpolicy_types.go`, `timeout_types.go`, `policy_helpers.go`). Every field listed
exists, with the same meaning, in every release from v1.5 on (the first with a client stream
idle timeout). A field outside this subset is reported, not let through: add it here after
reading the upstream type, or the check would pass a misspelt field that the API server prunes.
The CEL rules we depend on are restated too: targetRef or targetRefs, group
`gateway.networking.k8s.io`, the kinds each policy may target.
"""

from __future__ import annotations

import re

GROUP = "gateway.envoyproxy.io"
API_VERSION = f"{GROUP}/v1alpha1"
# Gateway API's Duration (sigs.k8s.io/gateway-api apis/v1 Duration): 1 to 4 number-unit pairs.
DURATION_RE = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
TARGET_KINDS = {
    "ClientTrafficPolicy": {"Gateway"},
    "BackendTrafficPolicy": {"Gateway", "HTTPRoute", "GRPCRoute", "UDPRoute", "TCPRoute", "TLSRoute"},
}

DURATION = "duration"
STRING = "string"
TARGET_REF = {"group": STRING, "kind": STRING, "name": STRING, "sectionName": STRING}
SPECS = {
    "ClientTrafficPolicy": {
        "targetRef": TARGET_REF,
        "targetRefs": [TARGET_REF],
        "timeout": {
            "tcp": {"idleTimeout": DURATION},
            "http": {"requestReceivedTimeout": DURATION, "idleTimeout": DURATION, "streamIdleTimeout": DURATION},
        },
    },
    "BackendTrafficPolicy": {
        "targetRef": TARGET_REF,
        "targetRefs": [TARGET_REF],
        "timeout": {
            "tcp": {"connectTimeout": DURATION},
            "http": {"connectionIdleTimeout": DURATION, "maxConnectionDuration": DURATION, "requestTimeout": DURATION},
        },
    },
}


def covers(obj: dict) -> bool:
    """True for an object of Envoy Gateway's API group: this module checks it, not tools/crd-schemas."""
    return obj.get("apiVersion", "").startswith(f"{GROUP}/")


def _walk(value, schema, path: str) -> list[str]:
    if schema == DURATION:
        ok = isinstance(value, str) and DURATION_RE.match(value)
        return [] if ok else [f"{path}: {value!r} is not a Gateway API duration such as 60s or 1h"]
    if schema == STRING:
        return [] if isinstance(value, str) and value else [f"{path}: must be a non-empty string"]
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{path}: must be a list"]
        return [p for i, item in enumerate(value) for p in _walk(item, schema[0], f"{path}/{i}")]
    if not isinstance(value, dict):
        return [f"{path}: must be an object"]
    problems = [f"{path}/{k}: field not declared in this check's subset of the schema" for k in value if k not in schema]
    return problems + [p for k, v in value.items() if k in schema for p in _walk(v, schema[k], f"{path}/{k}")]


def policy_problems(obj: dict) -> list[str]:
    """Every structural problem of one Envoy Gateway policy, as text."""
    kind = obj.get("kind")
    if obj.get("apiVersion") != API_VERSION or kind not in SPECS:
        return [f"no schema for {obj.get('apiVersion')} {kind}"]
    problems = [f"/{k}: field not declared" for k in obj if k not in ("apiVersion", "kind", "metadata", "spec")]
    if not (obj.get("metadata") or {}).get("name"):
        problems.append("/metadata: must have required property name")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return problems + ["/: must have required property spec"]
    problems += _walk(spec, SPECS[kind], "/spec")
    refs = ([spec["targetRef"]] if "targetRef" in spec else []) + list(spec.get("targetRefs") or [])
    if ("targetRef" in spec) == ("targetRefs" in spec) or not refs:
        problems.append("/spec: either targetRef or targetRefs must be used")
    for ref in (r for r in refs if isinstance(r, dict)):
        for field in ("group", "kind", "name"):
            if field not in ref:
                problems.append(f"/spec: a target reference must have required property {field}")
        if ref.get("group") != "gateway.networking.k8s.io":
            problems.append(f"/spec: this policy can only target the group gateway.networking.k8s.io, not {ref.get('group')}")
        if ref.get("kind") not in TARGET_KINDS[kind]:
            problems.append(f"/spec: a {kind} can only target {'/'.join(sorted(TARGET_KINDS[kind]))}, not {ref.get('kind')}")
        if kind == "BackendTrafficPolicy" and "sectionName" in ref:
            problems.append("/spec: BackendTrafficPolicy does not support sectionName before Envoy Gateway v1.6")
    return problems


def seconds(duration: str) -> float:
    """A Gateway API duration in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(int(n) * units[u] for n, u in re.findall(r"([0-9]+)(ms|h|m|s)", duration))
