"""Security drills: the rendered prod overlay's exposure, and a secrets scan of the repository."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import pytest

from devstack.repo import ROOT as REPO

# The checks live beside their tests in tests/security and render with the pinned kubectl through
# tests/manifests/manifest_render.py: one copy of each, run here on the real tree.
sys.path[:0] = [str(REPO / "tests" / "security"), str(REPO / "tests" / "manifests")]

from exposure_checks import exposure_problems, pod_templates, route_backends  # noqa: E402
from manifest_render import rendered_objects  # noqa: E402
from secrets_checks import baseline_secrets, pragma_lines, scan_secrets, secret_problems, tracked_files  # noqa: E402

from .lab import Lab  # noqa: E402
from .row import Row, judge  # noqa: E402


@contextlib.contextmanager
def outside_pytest() -> Iterator[None]:
    """The shared helpers end a failed render or a missing tool with pytest.fail; here that is a drill's error."""
    try:
        yield
    except pytest.fail.Exception as exc:
        raise RuntimeError(str(exc)) from None


def prod_exposure(lab: Lab | None = None) -> Row:
    """The rendered prod overlay: only vote and result face the outside, and no pod runs as root."""
    with outside_pytest():
        objects = rendered_objects("overlays/prod")
    problems = exposure_problems(objects)
    services = sorted(o["metadata"]["name"] for o in objects if o["kind"] == "Service")
    routes = sorted({b for o in objects if o["kind"] == "HTTPRoute" for b in route_backends(o)})
    containers = sum(len(t["spec"].get("containers", [])) + len(t["spec"].get("initContainers", []))
                     for _, t in pod_templates(objects))
    return judge(
        "prod exposure and users",
        f"rendered overlays/prod: {len(services)} Services, Gateway, {sum(o['kind'] == 'NetworkPolicy' for o in objects)}"
        f" NetworkPolicies, {containers} containers",
        f"Services all ClusterIP; HTTPRoute backends {routes}; from other namespaces only vote/result http from "
        f"the gateway's proxy and Prometheus, worker metrics, redis 6379 from keda; {len(problems)} problems (root, open ports)",
        problems, {"services": services, "route_backends": routes, "containers": containers},
    )


def secrets_scan(lab: Lab | None = None) -> Row:
    """detect-secrets over the repository against .secrets.baseline: only marked dev defaults."""
    files = tracked_files()
    with outside_pytest():
        found = scan_secrets(files=files)
    baseline = baseline_secrets()
    marked = pragma_lines(files=files)
    problems = secret_problems(found, baseline, marked)
    reviewed = sum(len(v) for v in baseline.values())
    return judge(
        "secrets scan",
        f"detect-secrets over {len(files)} files (git-tracked or new; not .venv or lock files)",
        f"{sum(map(len, found.values()))} findings, all in .secrets.baseline as reviewed false positives ({reviewed}); "
        f"{len(marked)} allow-listed lines, all marked dev-only/test-only: {'yes' if not problems else 'NO'}",
        problems, {"files": len(files), "findings": {p: len(h) for p, h in found.items()},
                   "allowlisted": [w for w, _ in marked]},
    )

