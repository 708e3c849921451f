"""Shared fixtures for the offline delivery checks: rendered Kustomize output, workflows, Terraform."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from devstack.repo import ROOT
ENVIRONMENTS = ("dev", "prod")

# The one renderer (the pinned kubectl in .venv, never one from PATH), beside tests/manifests.
sys.path.insert(0, str(ROOT / "tests" / "manifests"))
from manifest_render import rendered_objects  # noqa: E402


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
    return rendered_objects("argocd")


@pytest.fixture(scope="session")
def overlays() -> dict[str, list[dict]]:
    return {env: rendered_objects(f"overlays/{env}") for env in ENVIRONMENTS}


@pytest.fixture(scope="session")
def gitops_images():
    return load_module(ROOT / "scripts" / "gitops_images.py")
