"""Renovate: which image references it would look up, read the way its docker-based managers read them.

The base Deployments say `image: vote` (the overlays replace it), which is no image on any
registry; the ghcr.io app images are pinned by the release workflow. Renovate must skip both,
and still update every third-party image.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import re
from pathlib import Path

import pytest
import yaml
from devstack.dockerfile import instructions

from devstack.repo import ROOT
CONFIG = json.loads((ROOT / ".github" / "renovate.json").read_text())
APP = re.compile(r"^(?:ghcr\.io/.+/)?(vote|worker|result)$")
# config:recommended ignores these folders (its :ignoreModulesAndTests preset).
IGNORED = ("node_modules", "vendor", "examples", "test", "tests", "__tests__", "__fixtures__")
IMAGE_LINE = re.compile(r"^\s*-?\s*image:\s*['\"]?([^\s'\"]+)['\"]?\s*$", re.MULTILINE)


def image_name(reference: str) -> str:
    """`redis:7.4-alpine@sha256:...` -> `redis`."""
    name = reference.split("@")[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def pattern_matches(pattern: str, value: str) -> bool:
    """Renovate's matchPackageNames semantics: `/regex/`, a glob, or the exact name."""
    if len(pattern) > 1 and pattern.startswith("/") and pattern.rstrip("i").endswith("/"):
        body, flags = pattern[1:].rsplit("/", 1)
        return re.search(body, value, re.IGNORECASE if "i" in flags else 0) is not None
    return fnmatch.fnmatchcase(value, pattern)


def repository_files() -> list[Path]:
    """The files Renovate scans: hidden and ignored folders (and the virtualenvs in them) left out."""
    files = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED and not d.startswith("."))
        files += [Path(folder) / name for name in sorted(names)]
    return files


def extracted(config: dict) -> list[tuple[str, str]]:
    """(manager, image name) for every docker dependency the enabled managers find."""
    found = []
    managers = set(config["enabledManagers"])
    for path in repository_files():
        relative = path.relative_to(ROOT).as_posix()
        text = path.read_text(errors="replace") if path.suffix in (".yaml", ".yml", "") else ""
        patterns = config.get("kubernetes", {}).get("managerFilePatterns", [])
        if "kubernetes" in managers and any(pattern_matches(p, relative) for p in patterns):
            if re.search(r"^\s*apiVersion\s*:", text, re.MULTILINE) and re.search(r"^\s*kind\s*:", text, re.MULTILINE):
                found += [("kubernetes", image_name(ref)) for ref in IMAGE_LINE.findall(text)]
        if "kustomize" in managers and path.name in ("kustomization.yaml", "kustomization.yml"):
            for entry in (yaml.safe_load(text) or {}).get("images") or []:
                found.append(("kustomize", image_name(entry.get("newName") or entry["name"])))
        if "dockerfile" in managers and path.name == "Dockerfile":
            found += [("dockerfile", image_name(ref)) for ref in dockerfile_images(text)]
    return found


def dockerfile_images(text: str) -> list[str]:
    """FROM images as Renovate's dockerfile manager reads them: ARG defaults expanded, earlier stages and
    images still holding a variable (a build argument without a default) skipped."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    images = []
    for word, rest in instructions(text):
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name.strip()] = value.strip().strip("\"'")
        elif word == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), parts[0])
            if len(parts) >= 3 and parts[1].lower() == "as":
                stages.add(parts[2])
            if image not in stages and "$" not in image:
                images.append(image)
    return images


def enabled(config: dict, manager: str, name: str, datasource: str = "docker") -> bool:
    """Whether Renovate would look the dependency up: ignoreDeps, then packageRules in order, last match wins."""
    if name in config.get("ignoreDeps", []):
        return False
    result = True
    for rule in config.get("packageRules", []):
        if "matchManagers" in rule and manager not in rule["matchManagers"]:
            continue
        if "matchDatasources" in rule and datasource not in rule["matchDatasources"]:
            continue
        names = rule.get("matchPackageNames", []) + rule.get("matchDepNames", [])
        if names:
            positive = [p for p in names if not p.startswith("!")]
            if positive and not any(pattern_matches(p, name) for p in positive):
                continue
            if any(pattern_matches(p[1:], name) for p in names if p.startswith("!")):
                continue
        if "enabled" in rule:
            result = rule["enabled"]
    return result


def lookups(config: dict) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(app images Renovate would look up, third-party images it would skip)."""
    deps = extracted(config)
    apps = [d for d in deps if APP.match(d[1]) and enabled(config, *d)]
    skipped = [d for d in deps if not APP.match(d[1]) and not enabled(config, *d)]
    return apps, skipped


def test_renovate_skips_the_app_images_and_keeps_the_others():
    deps = extracted(CONFIG)
    assert ("kubernetes", "vote") in deps
    assert any(m == "kustomize" and n.startswith("ghcr.io/") and APP.match(n) for m, n in deps)
    assert {"python", "redis", "postgres"} <= {name for _, name in deps}
    assert lookups(CONFIG) == ([], [])


@pytest.mark.parametrize("rule", [
    {"matchManagers": ["kustomize"], "matchPackageNames": ["/^ghcr\\.io\\/.+\\/(vote|worker|result)$/"], "enabled": False},
    {"matchDatasources": ["docker"], "matchPackageNames": ["*"], "enabled": False},
], ids=["the-kustomize-only-rule-before", "everything-off"])
def test_a_rule_that_misses_the_bare_names_or_hides_everything_is_caught(rule):
    config = copy.deepcopy(CONFIG)
    config["packageRules"][0] = rule
    apps, skipped = lookups(config)
    assert apps or skipped
    if rule["matchPackageNames"] != ["*"]:
        assert {("kubernetes", "vote"), ("kubernetes", "worker"), ("kubernetes", "result")} <= set(apps)


def test_dockerfile_images_are_read_through_their_arguments():
    """The base image is an ARG default; `FROM runtime` and `FROM ${SERVICE}` are stages, no image."""
    text = (ROOT / "apps" / "Dockerfile").read_text()
    assert {image_name(i) for i in dockerfile_images(text)} == {"python"}
    assert dockerfile_images("ARG B=redis:8\nFROM ${B} AS r\nFROM r AS s\nARG X\nFROM ${X}\nFROM $B\n") == ["redis:8", "redis:8"]


def test_patterns_read_as_renovate_reads_them():
    assert pattern_matches("/^ghcr\\.io\\/.+\\/(vote|worker|result)$/", "ghcr.io/a/b/vote")
    assert not pattern_matches("vote", "ghcr.io/a/vote") and pattern_matches("vote", "vote")
    assert pattern_matches("ghcr.io/**", "ghcr.io/a/vote") and not pattern_matches("/^VOTE$/", "vote")
    assert pattern_matches("/^VOTE$/i", "vote")


# Renovate's argocd manager, read the way it reads files: a file its managerFilePatterns match and that
# says `apiVersion: argoproj.io/`; each Application source with a chart is a dependency, looked up in the
# helm datasource at its repoURL, or as an OCI artifact (docker datasource) when repoURL has no scheme.
ARGOCD_FILE = re.compile(r"\s*apiVersion:\s*'?\"?argoproj.io/")


def argocd_deps(config: dict) -> set[tuple[str, str, str]]:
    """(datasource, dependency, current version) of every chart the argocd manager would propose bumps of."""
    if "argocd" not in config["enabledManagers"]:
        return set()
    patterns = config.get("argocd", {}).get("managerFilePatterns", [])
    deps = set()
    for path in repository_files():
        relative = path.relative_to(ROOT).as_posix()
        if path.suffix not in (".yaml", ".yml") or not any(pattern_matches(p, relative) for p in patterns):
            continue
        text = path.read_text()
        if not ARGOCD_FILE.search(text):
            continue
        for doc in (d for d in yaml.safe_load_all(text) if d and d.get("kind") == "Application"):
            source = doc["spec"].get("source") or {}
            if not source.get("chart"):
                continue
            if "://" in source["repoURL"]:
                dep = ("helm", source["chart"], str(source["targetRevision"]))
            else:
                dep = ("docker", f"{source['repoURL'].rstrip('/')}/{source['chart']}", str(source["targetRevision"]))
            if enabled(config, "argocd", dep[1], datasource=dep[0]):
                deps.add(dep)
    return deps


def chart_applications() -> set[tuple[str, str]]:
    """(chart, version) of every chart Application under argocd/, found without Renovate's rules."""
    found = set()
    for path in (ROOT / "argocd").rglob("*.yaml"):
        for doc in (d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "Application"):
            if (doc["spec"].get("source") or {}).get("chart"):
                found.add((doc["spec"]["source"]["chart"], str(doc["spec"]["source"]["targetRevision"])))
    return found


def test_renovate_proposes_every_platform_chart():
    deps = argocd_deps(CONFIG)
    assert {(name.rsplit("/", 1)[-1], version) for _, name, version in deps} == chart_applications()
    assert {n for d, n, _ in deps if d == "docker"} == {"registry-1.docker.io/envoyproxy/gateway-helm"}
    assert len(chart_applications()) >= 8


@pytest.mark.parametrize("change", [
    lambda c: c["enabledManagers"].remove("argocd"),
    lambda c: c["argocd"].update(managerFilePatterns=["/^argocd/platform/[^/]+\\.yaml$/"]),
    lambda c: c["packageRules"].append({"matchDatasources": ["helm"], "enabled": False}),
], ids=["manager-off", "pattern-misses-optional", "helm-off"])
def test_a_config_that_misses_a_chart_is_caught(change):
    config = copy.deepcopy(CONFIG)
    change(config)
    assert {(n.rsplit("/", 1)[-1], v) for _, n, v in argocd_deps(config)} != chart_applications()
