"""Every custom resource we render or apply, against the upstream schemas of its kind, strictly."""

from __future__ import annotations

import copy
import functools
import json
import operator
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import envoy_gateway_schema
from argocd_render import ENVIRONMENTS, cluster_objects, root_application
from manifest_render import REPO, is_custom, rendered_objects

TOOL = REPO / "tools" / "crd-schemas"
TARGETS = ("base", "overlays/dev", "overlays/prod", "argocd/platform/config")
TRACING = REPO / "argocd" / "platform" / "optional" / "tracing.yaml"
# Envoy Gateway's own kinds have no @kubernetes-models package; tests/delivery/test_platform.py checks EnvoyProxy.
NO_SCHEMA_PACKAGE = {"EnvoyProxy"}
def schema_problems(objects: list[dict], tool: Path = TOOL) -> list[list[str]]:
    """The problems of each object by its upstream schema, from one run of tools/crd-schemas."""
    node = shutil.which("node")
    if not node:
        pytest.fail("node is not installed: install Node.js 18+ (.ci/run does) and run `make install`")
    for name in json.loads((tool / "package.json").read_text())["dependencies"]:
        if not (tool / "node_modules" / name / "package.json").is_file():
            pytest.fail(f"{name} is not installed in tools/crd-schemas: run `make install`")
    done = subprocess.run(
        [node, str(tool / "validate.mjs")], input=json.dumps(objects),
        capture_output=True, text=True, check=False, timeout=120,
    )
    if done.returncode != 0:
        pytest.fail(f"tools/crd-schemas/validate.mjs failed:\n{done.stderr}")
    return json.loads(done.stdout)


def custom_resources() -> list[dict]:
    """Every custom resource of base, both overlays, each cluster's root Application and what it applies,
    platform-config and the opt-in tracing; kinds no schema package models are checked in tests/delivery,
    and Envoy Gateway's traffic policies by envoy_gateway_schema (test_gateway.py)."""
    objects = [obj for target in TARGETS for obj in rendered_objects(target)]
    for env in ENVIRONMENTS:
        objects += [root_application(environment=env), *cluster_objects(env)]
    objects += [doc for doc in yaml.safe_load_all(TRACING.read_text()) if doc]
    return [obj for obj in objects if is_custom(obj) and obj["kind"] not in NO_SCHEMA_PACKAGE
            and not envoy_gateway_schema.covers(obj)]


# Kinds the overlays will hold, written here so that their schemas are proven before they arrive.
EXAMPLES = [
    {
        "apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
        "metadata": {"name": "redis", "namespace": "voting-app-prod"},
        "spec": {"secretTargetRef": [{"parameter": "password", "name": "redis", "key": "REDIS_PASSWORD"}]},
    },
    {
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
        "metadata": {"name": "voting-app"},
        "spec": {"provider": {"vault": {
            "server": "https://vault.example.com:8200", "path": "secret", "version": "v2",
            "auth": {"kubernetes": {
                "mountPath": "kubernetes", "role": "voting-app",
                "serviceAccountRef": {"name": "external-secrets", "namespace": "external-secrets"},
            }},
        }}},
    },
    # The one-file swaps of the platform's store that overlays/README.md shows; the ExternalSecrets stay.
    *[{"apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore", "metadata": {"name": "voting-app"},
       "spec": {"provider": provider}} for provider in (
        {"vault": {"server": "https://vault.example.com:8200", "path": "secret", "version": "v2",
                   "auth": {"kubernetes": {"mountPath": "kubernetes", "role": "voting-app"}}}},
        {"aws": {"service": "SecretsManager", "region": "eu-west-1"}},
        {"gcpsm": {"projectID": "my-project"}},
        {"kubernetes": {"remoteNamespace": "voting-app-secrets",
                        "server": {"caProvider": {"type": "ConfigMap", "name": "kube-root-ca.crt", "key": "ca.crt",
                                                  "namespace": "voting-app-secrets"}},
                        "auth": {"serviceAccount": {"name": "voting-app-store", "namespace": "voting-app-secrets"}}}},
    )],
    {
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "voting-app", "namespace": "voting-app-prod"},
        "spec": {"provider": {"kubernetes": {
            "remoteNamespace": "voting-app-secrets",
            "server": {"caProvider": {"type": "ConfigMap", "name": "kube-root-ca.crt", "key": "ca.crt"}},
            "auth": {"serviceAccount": {"name": "voting-app-secrets"}},
        }}},
    },
    {
        "apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
        "metadata": {"name": "letsencrypt"},
        "spec": {"acme": {
            "server": "https://acme-v02.api.letsencrypt.org/directory",
            "email": "ops@example.com",
            "privateKeySecretRef": {"name": "letsencrypt-account"},
            "solvers": [{"http01": {"gatewayHTTPRoute": {"parentRefs": [
                {"name": "voting-app", "namespace": "voting-app-prod", "kind": "Gateway", "sectionName": "http"},
            ]}}}],
        }},
    },
    {
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "vote", "namespace": "voting-app-prod"},
        "spec": {
            "secretName": "vote-tls", "dnsNames": ["vote.example.com"],
            "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io"},
        },
    },
]


DROP = object()
# kind to break, field (dotted, list items by index), its new value or DROP, and what the check must report.
BREAKAGES = [
    ("ScaledObject", "spec.minReplicas", 1, "/spec/minReplicas: field not declared"),
    ("ScaledObject", "spec.triggers.0.authenticationRefs", {"name": "x"}, "/authenticationRefs: field not declared"),
    ("ScaledObject", "spec.minReplicaCount", "one", "/spec/minReplicaCount: must be integer"),
    ("ScaledObject", "spec.triggers.0.type", DROP, "/spec/triggers/0: must have required property type"),
    ("ScaledObject", "spec.triggers.0.metadata.listLength", 100, "/metadata/listLength: must be string"),
    ("ScaledObject", "kind", "ScaledObjekt", "no schema for keda.sh/v1alpha1 ScaledObjekt"),
    ("ExternalSecret", "spec.data.0.remoteRef", DROP, "/spec/data/0: must have required property remoteRef"),
    ("ExternalSecret", "spec.secretStoreRef.kind", "Vault", "/spec/secretStoreRef/kind: must be equal to one of"),
    ("ExternalSecret", "spec.refreshIntervall", "1h", "/spec/refreshIntervall: field not declared"),
    ("Application", "spec.source.pathh", "overlays/dev", "/spec/source/pathh: field not declared"),
    ("Application", "spec.syncPolicy.automated.prune", "yes", "/spec/syncPolicy/automated/prune: must be boolean"),
    ("AppProject", "spec.namespaceResourceWhitelist.0.kind", DROP, "/0: must have required property kind"),
    ("AppProject", "spec.description", 1, "/spec/description: field not declared"),
    ("AppProject", "metadata.lables", {}, "/metadata/lables: field not declared"),
    ("TriggerAuthentication", "spec.secretTargetRef.0.key", DROP, "/0: must have required property key"),
    ("TriggerAuthentication", "spec.secretTargetRefs", [], "/spec/secretTargetRefs: field not declared"),
    ("ClusterSecretStore", "spec.provider.vault.server", DROP, "/vault: must have required property server"),
    ("SecretStore", "spec.provider.kubernets", {}, "/spec/provider/kubernets: field not declared"),
    ("Certificate", "spec.secretName", DROP, "/spec: must have required property secretName"),
    ("Certificate", "spec.dnsName", "vote.example.com", "/spec/dnsName: field not declared"),
    ("ClusterIssuer", "spec.acme.privateKeySecretRef", DROP, "/acme: must have required property privateKeySecretRef"),
    ("ClusterIssuer", "spec.acme.solvers.0.http01.gatewayHTTPRoute.parentRef", {}, "/parentRef: field not declared"),
    ("Gateway", "spec.listeners.1.tls.certificateRef", {"name": "vote-tls"}, "/certificateRef: field not declared"),
    ("Gateway", "spec.gatewayClassName", DROP, "/spec: must have required property gatewayClassName"),
    ("HTTPRoute", "spec.rules.0.timeouts", {"request": "forever"}, "/timeouts/request: must match pattern"),
    ("HTTPRoute", "spec.parentRef", {"name": "voting-app"}, "/spec/parentRef: field not declared"),
    ("GatewayClass", "spec.controllerName", DROP, "/spec: must have required property controllerName"),
    ("ClusterSecretStore", "spec.provider.vault", {"kubernetes": {"remoteNamespaces": "x"}}, "field not declared"),
]
BREAKAGE_IDS = [f"{kind}:{field}" for kind, field, _, _ in BREAKAGES]


def broken(obj: dict, field: str, value) -> dict:
    """A copy of obj with field set to value, or removed when value is DROP."""
    obj = copy.deepcopy(obj)
    *parents, last = [int(p) if p.isdigit() else p for p in field.split(".")]
    node = functools.reduce(operator.getitem, parents, obj)
    if value is DROP:
        del node[last]
    else:
        node[last] = value
    return obj


def labelled(objects: list[dict], problems: list[list[str]]) -> list[str]:
    """Each problem prefixed with its object's kind and name."""
    return [f"{o['kind']}/{o['metadata']['name']}: {p}" for o, found in zip(objects, problems) for p in found]


@pytest.fixture(scope="module")
def checked() -> dict:
    """One run of the schemas over our custom resources, the EXAMPLES and a broken copy for each of BREAKAGES."""
    ours = custom_resources()
    pool = EXAMPLES + ours
    cases = [broken(next(o for o in pool if o["kind"] == kind), field, value) for kind, field, value, _ in BREAKAGES]
    found = schema_problems(ours + EXAMPLES + cases)
    return {
        "ours": ours,
        "our problems": labelled(ours, found[:len(ours)]),
        "example problems": labelled(EXAMPLES, found[len(ours):len(ours) + len(EXAMPLES)]),
        "broken": dict(zip(BREAKAGE_IDS, found[len(ours) + len(EXAMPLES):])),
    }


def test_every_custom_resource_matches_its_schema(checked):
    assert checked["our problems"] == []


def test_the_check_sees_our_custom_kinds(checked):
    kinds = {o["kind"] for o in checked["ours"]}
    assert {"Application", "AppProject", "ScaledObject", "TriggerAuthentication", "ExternalSecret", "Gateway",
            "HTTPRoute"} <= kinds
    assert {"GatewayClass", "ClusterIssuer", "Certificate", "ClusterSecretStore"} <= kinds, "platform-config is missing"
    names = {(o["kind"], o["metadata"]["name"]) for o in checked["ours"]}
    assert ("Application", "voting-app-root") in names, "the root Application is missing"
    assert {("Application", n) for n in ("cert-manager", "kube-prometheus-stack", "otel-collector")} <= names


def test_examples_match_their_schemas(checked):
    assert checked["example problems"] == []


@pytest.mark.parametrize(("kind", "field", "value", "expected"), BREAKAGES, ids=BREAKAGE_IDS)
def test_schema_check_catches(kind, field, value, expected, checked):
    found = checked["broken"][f"{kind}:{field}"]
    assert any(expected in p for p in found), found


def test_missing_node_fails_and_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="make install"):
        schema_problems(EXAMPLES)


def test_missing_packages_fail_and_say_how_to_install(tmp_path):
    (tmp_path / "package.json").write_text((TOOL / "package.json").read_text())
    with pytest.raises(pytest.fail.Exception, match="run `make install`"):
        schema_problems(EXAMPLES, tool=tmp_path)
