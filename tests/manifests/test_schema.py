"""Every rendered object against the schema of a pinned Kubernetes version, in strict mode."""

from __future__ import annotations

import kubernetes_validate
import pytest
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

from manifest_render import is_custom, rendered_objects

# The oldest Kubernetes minor we support; the schemas ship inside kubernetes-validate (uv.lock pins it).
KUBERNETES_VERSION = "1.33.0"


def schema_problems(objects: list[dict]) -> list[str]:
    problems = []
    for obj in objects:
        if is_custom(obj):
            continue  # test_crd_schemas.py, against the CRD's own schema
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


def test_strict_schema_rejects_an_unknown_field(prod_objects):
    deployment = next(o for o in prod_objects if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    assert any("livenesProbe" in p for p in schema_problems([deployment]))


def test_unknown_kind_is_an_error_not_a_warning():
    stray = {"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {"name": "x"}}
    assert schema_problems([stray])
