"""Fixtures over the rendered overlays; the helpers live in manifest_render and manifest_checks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Let the test modules import the helper modules beside this file under --import-mode=importlib.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from manifest_render import NAMESPACES, OVERLAYS, rendered_objects  # noqa: E402


@pytest.fixture(params=OVERLAYS)
def overlay(request) -> str:
    return request.param


@pytest.fixture
def objects(overlay) -> list[dict]:
    """A private copy of the rendered overlay, safe to change in a test."""
    return rendered_objects(f"overlays/{overlay}")


@pytest.fixture
def namespace(overlay) -> str:
    return NAMESPACES[overlay]


@pytest.fixture
def prod_objects() -> list[dict]:
    return rendered_objects("overlays/prod")


@pytest.fixture
def dev_objects() -> list[dict]:
    return rendered_objects("overlays/dev")
