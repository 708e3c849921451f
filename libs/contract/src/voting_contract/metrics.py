"""Prometheus exposition that stays right when a server runs several worker processes."""

from __future__ import annotations

import os

# prometheus_client decides at import whether values live in files shared across processes,
# so nothing here imports it before prepare_multiprocess_dir() has set the folder.


def exposition() -> tuple[bytes, str]:
    """The metrics page body and content type, summed over processes in multiprocess mode."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST


def prepare_multiprocess_dir(default: str) -> str:
    """Point prometheus_client at an empty folder before any worker process starts."""
    path = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", default)
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.unlink(os.path.join(path, name))
    return path
