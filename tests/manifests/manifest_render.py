"""Render base and overlays with the kubectl (and its kustomize) that uv.lock pins."""

from __future__ import annotations

import copy
import functools
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml
from devstack.repo import ROOT

REPO = ROOT  # the name the manifest tests use
OVERLAYS = ("dev", "prod")
NAMESPACES = {"dev": "voting-app-dev", "prod": "voting-app-prod"}
# API groups the Kubernetes API server serves itself; test_schema.py checks their objects,
# test_crd_schemas.py every other.
BUILTIN_GROUPS = {
    "", "apps", "batch", "autoscaling", "policy", "networking.k8s.io", "rbac.authorization.k8s.io",
    "storage.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "node.k8s.io",
    "admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io", "certificates.k8s.io",
    "events.k8s.io", "flowcontrol.apiserver.k8s.io", "resource.k8s.io",
}


def is_custom(obj: dict) -> bool:
    """True for an object whose kind a CRD defines, not the API server itself."""
    return obj["apiVersion"].rpartition("/")[0] not in BUILTIN_GROUPS


def venv_tool(name: str) -> str:
    """A tool installed into this virtualenv (never a same-named program elsewhere on PATH)."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        found = shutil.which(name, path=folder)
        if found:
            return found
    pytest.fail(f"{name} is not installed in this virtualenv: run `uv sync --frozen --all-groups`")


def kustomize(folder: Path) -> str:
    """`kubectl kustomize` of any folder with the pinned kubectl, as YAML text; a failure fails the test."""
    done = subprocess.run([venv_tool("kubectl"), "kustomize", str(folder)],
                          capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        pytest.fail(f"kubectl kustomize {folder} failed:\n{done.stderr}")
    return done.stdout


@functools.cache
def render(target: str) -> str:
    """`kubectl kustomize` of base or an overlay (a folder under the repository), as YAML text."""
    return kustomize(REPO / target)


@functools.cache
def _parsed(target: str) -> tuple[dict, ...]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return tuple(doc for doc in yaml.load_all(render(target), Loader=loader) if doc)


def rendered_objects(target: str) -> list[dict]:
    """The rendered objects of base or an overlay, as a fresh copy the caller may change."""
    return copy.deepcopy(list(_parsed(target)))
