"""Fixtures over the monitoring component; helpers live in monitoring.py and promql_names.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# This folder's helpers, and tests/manifests' renderer and schema checks, under --import-mode=importlib.
sys.path.insert(0, str(HERE.parent / "manifests"))
sys.path.insert(0, str(HERE))

import monitoring  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "services: starts vote, worker and result (make validate skips these)")


@pytest.fixture
def component() -> list[dict]:
    """A private copy of the objects the monitoring component adds to an overlay."""
    return monitoring.render_component_cached()


@pytest.fixture
def rule(component) -> dict:
    """The PrometheusRule, a private copy safe to change in a test."""
    return next(o for o in component if o["kind"] == "PrometheusRule")


@pytest.fixture
def dashboard() -> dict:
    return monitoring.dashboard()
