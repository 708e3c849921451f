"""The checkout's root, for the tests and tools that read its files (devstack is installed editable from it)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
SERVICES = ("vote", "worker", "result")
# The one Dockerfile of the three images: `--build-arg SERVICE=<service>` picks one.
DOCKERFILE = ROOT / "apps" / "Dockerfile"

if not (ROOT / "uv.lock").is_file():
    raise ImportError(f"{ROOT} is not the checkout: devstack must be installed editable (uv sync)")
