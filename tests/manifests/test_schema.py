"""Every rendered object against the schema of a pinned Kubernetes version, in strict mode."""

from __future__ import annotations

import kubernetes_validate
import pytest
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

from manifest_render import rendered_objects

# The oldest Kubernetes minor we support; the schemas ship inside kubernetes-validate (uv.lock pins it).
KUBERNETES_VERSION = "1.33.0"
# Kinds with no upstream schema: each has its own checks in test_custom_resources.py.
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("external-secrets.io/v1", "ExternalSecret"),
}


def schema_problems(objects: list[dict]) -> list[str]:
    problems = []
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
            continue
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except ValidationError as err:
            path = ".".join(str(p) for p in err.path)
            problems.append(f"{name}: {path}: {err.message}")
        except SchemaNotFoundError as err:
            problems.append(f"{name}: {err.message} (add a schema or a custom-resource check)")
    return problems


@pytest.mark.parametrize("target", ["base", "overlays/dev", "overlays/prod"])
def test_every_object_matches_the_kubernetes_schema(target):
    objects = rendered_objects(target)
    assert objects, f"{target} rendered nothing"
    assert schema_problems(objects) == []


def test_custom_kinds_are_the_ones_we_check(objects, overlay):
    found = {(o["apiVersion"], o["kind"]) for o in objects if (o["apiVersion"], o["kind"]) in CUSTOM_KINDS}
    assert found == (CUSTOM_KINDS if overlay == "prod" else set())


def test_strict_schema_rejects_an_unknown_field(prod_objects):
    deployment = next(o for o in prod_objects if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    assert any("livenesProbe" in p for p in schema_problems([deployment]))


def test_unknown_kind_is_an_error_not_a_warning():
    stray = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "x"}}
    assert schema_problems([stray])
