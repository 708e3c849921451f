"""Every locked package an image installs comes as a wheel for linux/amd64 and linux/arm64 on the image's Python.

The release workflow builds each image for both platforms with `uv sync --frozen --no-dev
--package <service>` on a slim base without a compiler: a package with no fitting wheel would
be built from its sdist there and fail, on one platform only. This reads the same closure from
uv.lock (the wheel file names carry their tags) and checks it offline.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import parse_wheel_filename

from devstack.dockerfile import external_bases
from devstack.repo import DOCKERFILE, ROOT, SERVICES

ARCHES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
# glibc of each python image variant this repository may use. The bare `slim` tag follows
# Debian stable: trixie (glibc 2.41) since August 2025. It only ever moves to a newer glibc, so a
# wheel that fits 2.41 keeps fitting. Alpine (musl) is absent on purpose: the lock holds manylinux wheels.
GLIBC_OF_VARIANT = {"slim": (2, 41), "slim-trixie": (2, 41), "slim-bookworm": (2, 36)}
# The tag floats over patch releases as the digest is bumped; markers such as
# `python_full_version < '3.11.3'` differ between them, so every patch level is checked.
PATCH_LEVELS = range(30)
LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
BUILT_HERE = ("editable", "virtual", "directory")


def base_image(dockerfile: str, service: str = "vote") -> tuple[str, tuple[int, int]]:
    """(Python minor version, glibc version) of the final image's `python:` base image."""
    image = external_bases(dockerfile, {"SERVICE": service})[-1]
    match = re.fullmatch(r"python:(\d+\.\d+)(?:\.\d+)?-([\w-]+)(?:@sha256:[0-9a-f]{64})?", image)
    assert match, f"{image} is not a python:<version>-<variant> image"
    python, variant = match.groups()
    assert variant in GLIBC_OF_VARIANT, f"{image}: no known glibc for the `{variant}` variant"
    return python, GLIBC_OF_VARIANT[variant]


def environment(version: str, arch: str) -> dict[str, str]:
    """PEP 508 marker values inside a CPython `version` image on Linux `arch`."""
    return {
        "implementation_name": "cpython", "implementation_version": version, "os_name": "posix",
        "platform_machine": arch, "platform_python_implementation": "CPython", "platform_release": "",
        "platform_system": "Linux", "platform_version": "", "python_full_version": version,
        "python_version": version.rsplit(".", 1)[0], "sys_platform": "linux", "extra": "",
    }


def closure(lock: dict, root: str, env: dict[str, str]) -> list[dict]:
    """The lock's packages that `uv sync --no-dev --package root` installs in `env` (root included)."""
    by_name: dict[str, list[dict]] = {}
    for package in lock["package"]:
        by_name.setdefault(package["name"], []).append(package)

    def pick(dep: dict) -> dict:
        candidates = by_name[dep["name"]]
        if "version" in dep:
            candidates = [p for p in candidates if p["version"] == dep["version"]]
        assert len(candidates) == 1, f"{dep['name']}: {len(candidates)} locked versions fit {dep}"
        return candidates[0]

    (start,) = by_name[root]
    found: dict[tuple[str, str], dict] = {}
    todo: list[tuple[dict, str | None]] = [(start, None)]
    seen: set[tuple[str, str, str | None]] = set()
    while todo:
        package, extra = todo.pop()
        key = (package["name"], package["version"], extra)
        if key in seen:
            continue
        seen.add(key)
        found[key[:2]] = package
        deps = package.get("dependencies", []) if extra is None else package["optional-dependencies"][extra]
        for dep in deps:
            if "marker" in dep and not Marker(dep["marker"]).evaluate(env):
                continue
            target = pick(dep)
            todo.append((target, None))
            todo.extend((target, e) for e in dep.get("extra", []))
    return list(found.values())


def supported_tags(python: str, glibc: tuple[int, int], arch: str) -> set[Tag]:
    """The wheel tags CPython `python` accepts on a manylinux `arch` with this glibc (no musllinux)."""
    major, minor = glibc
    platforms = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, -1, -1)]
    platforms += [f"{name}_{arch}" for m, name in LEGACY_MANYLINUX.items() if m <= minor and (m == 17 or arch == "x86_64")]
    version = tuple(int(part) for part in python.split("."))
    return set(cpython_tags(version, platforms=platforms)) | set(compatible_tags(version, platforms=platforms))


def wheel_file_names(package: dict) -> list[str]:
    return [(w.get("url") or w.get("path") or w["filename"]).rsplit("/", 1)[-1] for w in package.get("wheels", [])]


def missing_wheels(lock: dict, service: str, python: str, glibc: tuple[int, int]) -> list[str]:
    """`platform: name==version` for each package the image would have to build from source."""
    problems = set()
    for platform, arch in ARCHES.items():
        tags = supported_tags(python, glibc, arch)
        for patch in PATCH_LEVELS:
            for package in closure(lock, service, environment(f"{python}.{patch}", arch)):
                if any(kind in package["source"] for kind in BUILT_HERE):
                    continue  # a workspace member, built from this checkout
                if not any(parse_wheel_filename(name)[3] & tags for name in wheel_file_names(package)):
                    problems.add(f"{platform}: {package['name']}=={package['version']}")
    return sorted(problems)


def uv() -> str:
    found = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    assert Path(found).exists(), "uv is missing: run `make install`"
    return found


@pytest.fixture(scope="module")
def lock() -> dict:
    return tomllib.loads((ROOT / "uv.lock").read_text())


@pytest.mark.parametrize("service", SERVICES)
def test_every_package_the_image_installs_has_a_wheel_for_both_platforms(lock, service):
    python, glibc = base_image(DOCKERFILE.read_text(), service)
    assert missing_wheels(lock, service, python, glibc) == []


@pytest.mark.parametrize("service", SERVICES)
def test_the_closure_is_the_one_uv_exports(lock, service):
    """The walk above agrees with uv's own reading of the lock, so it checks what the image installs."""
    exported = subprocess.run(
        [uv(), "export", "--frozen", "--no-dev", "--package", service, "--no-hashes", "--no-header",
         "--no-annotate", "--no-emit-workspace"],
        cwd=ROOT, capture_output=True, text=True, check=True, env={"UV_OFFLINE": "1", "PATH": ""},
    ).stdout
    python, _ = base_image(DOCKERFILE.read_text(), service)
    for arch in ARCHES.values():
        for patch in PATCH_LEVELS:
            env = environment(f"{python}.{patch}", arch)
            expected = set()
            for line in exported.splitlines():
                requirement, _, marker = line.partition(";")
                if not marker.strip() or Marker(marker).evaluate(env):
                    name, _, version = requirement.strip().partition("==")
                    expected.add((name, version))
            walked = {(p["name"], p["version"]) for p in closure(lock, service, env) if "registry" in p["source"]}
            assert walked == expected, (arch, patch)


FAKE_LOCK = """
version = 1
requires-python = ">=3.11"

[[package]]
name = "vote"
version = "0.1.0"
source = { editable = "apps/vote" }
dependencies = [{ name = "needs", extra = ["fast"] }, { name = "winonly", marker = "sys_platform == 'win32'" }]

[[package]]
name = "needs"
version = "1.0"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://files.example/needs-1.0-py3-none-any.whl" }]

[package.optional-dependencies]
fast = [{ name = "fast" }]

[[package]]
name = "fast"
version = "2.0"
source = { registry = "https://pypi.org/simple" }
WHEELS

[[package]]
name = "winonly"
version = "1.0"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.example/winonly-1.0.tar.gz" }
"""


@pytest.mark.parametrize(("wheels", "missing"), [
    ('sdist = { url = "https://files.example/fast-2.0.tar.gz" }', ["linux/amd64", "linux/arm64"]),
    ('wheels = [{ url = "https://files.example/fast-2.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl" }]',
     ["linux/amd64", "linux/arm64"]),
    ('wheels = [{ url = "https://files.example/fast-2.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl" }]',
     ["linux/arm64"]),
    ('wheels = [{ url = "https://files.example/fast-2.0-cp311-cp311-manylinux_2_43_x86_64.whl" },'
     ' { url = "https://files.example/fast-2.0-cp311-cp311-manylinux_2_43_aarch64.whl" }]', ["linux/amd64", "linux/arm64"]),
    ('wheels = [{ url = "https://files.example/fast-2.0-cp311-cp311-musllinux_1_2_x86_64.whl" },'
     ' { url = "https://files.example/fast-2.0-cp311-cp311-musllinux_1_2_aarch64.whl" }]', ["linux/amd64", "linux/arm64"]),
    ('wheels = [{ url = "https://files.example/fast-2.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl" },'
     ' { url = "https://files.example/fast-2.0-cp311-cp311-manylinux_2_28_aarch64.whl" }]', []),
    ('wheels = [{ url = "https://files.example/fast-2.0-cp38-abi3-manylinux2014_x86_64.whl" },'
     ' { url = "https://files.example/fast-2.0-cp38-abi3-manylinux2014_aarch64.whl" }]', []),
    ('wheels = [{ url = "https://files.example/fast-2.0-py3-none-any.whl" }]', []),
], ids=["sdist-only", "cp312-x86_64-only", "x86_64-only", "glibc-too-new", "musl-only", "both", "abi3", "pure"])
def test_a_package_without_a_fitting_wheel_is_caught(wheels, missing):
    """An extra's dependency is followed, a Windows-only one is not; the tags decide the rest."""
    lock = tomllib.loads(FAKE_LOCK.replace("WHEELS", wheels))
    assert missing_wheels(lock, "vote", "3.11", GLIBC_OF_VARIANT["slim"]) == [f"{p}: fast==2.0" for p in missing]


def test_the_base_image_decides_python_and_libc():
    digest = "@sha256:" + "0" * 64
    assert base_image(f"FROM python:3.11-slim{digest} AS build\nFROM python:3.11-slim-bookworm{digest}\n") == ("3.11", (2, 36))
    assert base_image("FROM python:3.12.4-slim-trixie\n") == ("3.12", (2, 41))
    assert base_image("ARG PY=python:3.11-slim-bookworm\nFROM ${PY} AS runtime\nFROM runtime AS vote\n") == ("3.11", (2, 36))
    for unknown in ("python:3.11-alpine", "debian:12-slim"):
        with pytest.raises(AssertionError):
            base_image(f"FROM {unknown}\n")
