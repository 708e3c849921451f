"""The meaning of our KEDA and External Secrets resources and of what Argo CD reads; shapes: test_crd_schemas.py."""

from __future__ import annotations

import re

import pytest

import manifest_checks as mc

# KEDA redis (lists) scaler: trigger metadata keys it understands (keda.sh/docs, "Redis Lists").
# The CRD types trigger metadata as a free-form map of strings, so only this list can catch a misspelt key.
KEDA_REDIS_KEYS = {
    "address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv", "usernameFromEnv",
    "passwordFromEnv", "listName", "listLength", "activationListLength", "databaseIndex", "enableTLS", "unsafeSsl",
}
DB_SECRET_KEYS = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}
# The Secrets our pods read, and their keys: in dev generated, in prod made by ExternalSecrets.
SECRET_KEYS = {"db": DB_SECRET_KEYS, "redis": {"REDIS_PASSWORD"}}
DURATION_RE = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


def scaled_object_problems(objects: list[dict], namespace: str) -> list[str]:
    problems = []
    scaled = [o for o in objects if o["kind"] == "ScaledObject"]
    if [o["metadata"]["name"] for o in scaled] != ["worker"]:
        return [f"expected one ScaledObject for the worker, found {[mc.ref(o) for o in scaled]}"]
    so = scaled[0]
    spec = so["spec"]
    if so["apiVersion"] != "keda.sh/v1alpha1":
        problems.append(f"apiVersion {so['apiVersion']}")
    target = spec["scaleTargetRef"]
    if (target.get("kind", "Deployment"), target["name"]) != ("Deployment", "worker"):
        problems.append(f"scales {target}, not Deployment/worker")
    if (spec.get("minReplicaCount"), spec.get("maxReplicaCount")) != (1, 5):
        problems.append(f"replicas {spec.get('minReplicaCount')}..{spec.get('maxReplicaCount')}, not 1..5")
    triggers = spec.get("triggers", [])
    if [t["type"] for t in triggers] != ["redis"]:
        return problems + [f"triggers {[t['type'] for t in triggers]}, not one redis trigger"]
    meta = triggers[0]["metadata"]
    if set(meta) - KEDA_REDIS_KEYS:
        problems.append(f"unknown redis trigger keys {sorted(set(meta) - KEDA_REDIS_KEYS)}")
    if meta.get("listName") != "votes":
        problems.append(f"listName {meta.get('listName')!r}, not 'votes'")
    if meta.get("listLength") != "100":
        problems.append(f"listLength {meta.get('listLength')!r}, not '100'")
    service = mc.find(objects, "Service", "redis")
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "redis") if service else None
    expected = f"redis.{namespace}.svc.cluster.local:{port}"
    if meta.get("address") != expected:
        problems.append(f"address {meta.get('address')!r}, not the redis Service {expected!r}")
    auth = (triggers[0].get("authenticationRef") or {}).get("name")
    trigger_auth = mc.find(objects, "TriggerAuthentication", auth) if auth else None
    if trigger_auth is None:
        problems.append(f"trigger authenticationRef {auth!r} names no rendered TriggerAuthentication: "
                        "KEDA would poll a Redis that requires a password without one")
    else:
        for target in trigger_auth["spec"].get("secretTargetRef", []):
            if target["key"] not in SECRET_KEYS.get(target["name"], set()):
                problems.append(f"{mc.ref(trigger_auth)} reads {target['name']}/{target['key']}, which no Secret has")
    if any(h["spec"]["scaleTargetRef"]["name"] == "worker" for h in objects if h["kind"] == "HorizontalPodAutoscaler"):
        problems.append("an HPA also scales the worker; KEDA owns its HPA")
    return problems


def external_secret_problems(objects: list[dict]) -> list[str]:
    problems = []
    found = [o for o in objects if o["kind"] == "ExternalSecret"]
    if sorted(o["metadata"]["name"] for o in found) != sorted(SECRET_KEYS):
        return [f"expected the ExternalSecrets {sorted(SECRET_KEYS)}, found {[mc.ref(o) for o in found]}"]
    for es in found:
        problems += _external_secret_problems(es)
    return problems


def _external_secret_problems(es: dict) -> list[str]:
    problems = []
    name = es["metadata"]["name"]
    spec = es["spec"]
    if es["apiVersion"] != "external-secrets.io/v1":
        problems.append(f"apiVersion {es['apiVersion']}")
    store = spec.get("secretStoreRef", {})
    if store.get("kind") not in ("SecretStore", "ClusterSecretStore") or not store.get("name"):
        problems.append(f"secretStoreRef {store}")
    if not DURATION_RE.match(str(spec.get("refreshInterval", ""))):
        problems.append(f"refreshInterval {spec.get('refreshInterval')!r} is not a duration")
    if spec.get("target", {}).get("name") != name:
        problems.append(f"target Secret {spec.get('target', {}).get('name')!r}, not {name!r}")
    keys = [d.get("secretKey") for d in spec.get("data", [])]
    if sorted(keys) != sorted(SECRET_KEYS[name]):
        problems.append(f"{name}: secret keys {keys}, not {sorted(SECRET_KEYS[name])}")
    for d in spec.get("data", []):
        if not d.get("remoteRef", {}).get("key"):
            problems.append(f"{d.get('secretKey')}: no remoteRef.key")
    return problems


def secret_reference_problems(objects: list[dict]) -> list[str]:
    """Pods read only the Secrets db and redis, and only keys they have."""
    problems = []
    for obj, template in mc.pod_specs(objects):
        for c in mc.containers(template["spec"]):
            for source in c.get("envFrom", []):
                if "secretRef" in source and source["secretRef"]["name"] not in SECRET_KEYS:
                    problems.append(f"{mc.ref(obj)}: envFrom Secret {source['secretRef']['name']}")
            for env in c.get("env", []):
                key_ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if key_ref and key_ref["key"] not in SECRET_KEYS.get(key_ref["name"], set()):
                    problems.append(f"{mc.ref(obj)}: {env['name']} reads {key_ref['name']}/{key_ref['key']}")
    return problems


def test_keda_scaled_object(prod_objects):
    assert scaled_object_problems(prod_objects, "voting-app-prod") == []


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("listName", "queue", "listName"),
        ("listLenght", "100", "unknown redis trigger keys"),
        ("address", "redis:6379", "address"),
    ],
)
def test_keda_check_catches_mistakes(prod_objects, field, value, expected):
    so = mc.find(prod_objects, "ScaledObject", "worker")
    so["spec"]["triggers"][0]["metadata"][field] = value
    assert any(expected in p for p in scaled_object_problems(prod_objects, "voting-app-prod"))


def test_external_secret(prod_objects):
    assert external_secret_problems(prod_objects) == []


def test_keda_check_catches_a_trigger_without_authentication(prod_objects):
    so = mc.find(prod_objects, "ScaledObject", "worker")
    del so["spec"]["triggers"][0]["authenticationRef"]
    assert any("authenticationRef" in p for p in scaled_object_problems(prod_objects, "voting-app-prod"))


def test_external_secret_check_catches_a_missing_key(prod_objects):
    es = mc.find(prod_objects, "ExternalSecret", "db")
    es["spec"]["data"].pop()
    assert external_secret_problems(prod_objects)


def test_pods_read_only_the_db_secret(objects):
    assert secret_reference_problems(objects) == []


def test_secret_reference_check_catches_a_wrong_key(prod_objects):
    cron = mc.find(prod_objects, "CronJob", "db-backup")
    cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"][-1]["valueFrom"][
        "secretKeyRef"]["key"] = "password"
    assert secret_reference_problems(prod_objects)


def test_sync_waves_are_integers(objects):
    for obj in objects:
        wave = (obj["metadata"].get("annotations") or {}).get("argocd.argoproj.io/sync-wave")
        if wave is not None:
            assert re.fullmatch(r"-?\d+", wave), f"{mc.ref(obj)}: sync-wave {wave!r}"
