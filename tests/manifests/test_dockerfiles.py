"""The three service images: hadolint, pinned bases, lock-file installs, a fixed non-root UID."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib

import pytest
import yaml
from devstack.dockerfile import instructions

from manifest_render import REPO, venv_tool

SERVICES = ("vote", "worker", "result")
PYTHON_BASE = "python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7"
OCI_LABELS = ("org.opencontainers.image.source", "org.opencontainers.image.revision", "org.opencontainers.image.version")


@pytest.fixture(params=SERVICES)
def service(request) -> str:
    return request.param


@pytest.fixture
def dockerfile(service) -> list[tuple[str, str]]:
    return instructions((REPO / "apps" / service / "Dockerfile").read_text())


def test_hadolint(service):
    done = subprocess.run(
        [venv_tool("hadolint"), "--no-color", str(REPO / "apps" / service / "Dockerfile")],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_can_fail(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    done = subprocess.run([venv_tool("hadolint"), "--no-color", str(bad)], capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "DL3007" in done.stdout


def test_multi_stage_on_the_pinned_base(dockerfile):
    bases = [args.split()[0] for word, args in dockerfile if word == "FROM"]
    assert len(bases) >= 2, "not a multi-stage build"
    assert all(base == PYTHON_BASE for base in bases), bases


def interpreter_mismatches(dockerfile: list[tuple[str, str]], wanted: str) -> list[str]:
    """Every FROM and UV_PYTHON in the instructions whose Python minor version is not `wanted`."""
    found = []
    for word, args in dockerfile:
        if word == "FROM":
            image = args.split()[0]
            match = re.match(r"python:(\d+\.\d+)(?!\d)", image)
            if not match or match.group(1) != wanted:
                found.append(f"FROM {image}")
        elif word == "ENV":
            for version in re.findall(r"UV_PYTHON=\S*?python(\d+\.\d+)\b", args):
                if version != wanted:
                    found.append(f"UV_PYTHON names python{version}")
    return found


def test_images_run_the_python_the_tests_run(dockerfile):
    """One interpreter: .python-version, the one running this test, and every stage of every image."""
    wanted = (REPO / ".python-version").read_text().strip()
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == wanted, f"the tests run {sys.version}, not {wanted}"
    assert any(w == "ENV" and "UV_PYTHON=" in a for w, a in dockerfile), "uv is not told which interpreter to use"
    assert interpreter_mismatches(dockerfile, wanted) == []


def test_a_python_312_image_is_caught():
    """The images' form before they moved to 3.11: both stages and UV_PYTHON on 3.12."""
    old = instructions(
        "FROM python:3.12-slim@sha256:78387bc3881b8273120a12ebe6c1ab22b018ccc2c9adf565ae1ac9b536e184ea AS build\n"
        "ENV UV_COMPILE_BYTECODE=1 \\\n    UV_PYTHON=/usr/local/bin/python3.12 \\\n    UV_LINK_MODE=copy\n"
        "FROM python:3.12-slim@sha256:78387bc3881b8273120a12ebe6c1ab22b018ccc2c9adf565ae1ac9b536e184ea\n"
    )
    assert len(interpreter_mismatches(old, "3.11")) == 3
    assert interpreter_mismatches(instructions("FROM python:3.11-slim AS build\nFROM debian:12\n"), "3.11") == ["FROM debian:12"]


def test_installs_from_the_lock_file(dockerfile, service):
    runs = [args for word, args in dockerfile if word == "RUN" and "uv sync" in args]
    assert runs and all("--frozen" in r and "--no-dev" in r and f"--package {service}" in r for r in runs)
    assert re.search(r"uv==\d+\.\d+\.\d+", " ".join(a for w, a in dockerfile if w == "RUN")), "uv is not pinned"


def test_runs_as_the_uid_the_manifests_expect(dockerfile, service):
    final = dockerfile[max(i for i, (w, _) in enumerate(dockerfile) if w == "FROM"):]
    users = [args for word, args in final if word == "USER"]
    assert users, "the final stage sets no USER"
    uid = int(users[-1].split(":")[0])
    assert uid >= 10000
    deployment = yaml.safe_load((REPO / "base" / service / "deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid


def test_oci_labels(dockerfile):
    labels = " ".join(args for word, args in dockerfile if word == "LABEL")
    for label in OCI_LABELS:
        assert f"{label}=" in labels, f"no {label}"


def test_dockerignore_sends_only_what_the_image_needs(service):
    ignore = (REPO / "apps" / service / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in ignore, "start from an empty context and re-include"
    assert f"!apps/{service}/src" in ignore
    others = [s for s in SERVICES if s != service]
    assert not any(line == f"!apps/{other}/src" for other in others for line in ignore)


def test_copies_every_workspace_member_manifest(dockerfile, service):
    """`uv sync --frozen` needs the pyproject.toml of every workspace member, not only ours."""
    members = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    copied = {args.split()[0] for word, args in dockerfile if word == "COPY" and not args.startswith("--from")}
    ignore = (REPO / "apps" / service / "Dockerfile.dockerignore").read_text().splitlines()
    for member in members:
        assert f"{member}/pyproject.toml" in copied, f"{member}/pyproject.toml is not copied"
        assert f"!{member}/pyproject.toml" in ignore, f"{member}/pyproject.toml is excluded from the context"
        assert (REPO / member / "pyproject.toml").exists()


def test_command_and_port_match_the_service(dockerfile, service):
    cmd = json.loads(next(args for word, args in reversed(dockerfile) if word == "CMD"))
    if service in ("worker", "result"):
        scripts = tomllib.loads((REPO / "apps" / service / "pyproject.toml").read_text())["project"]["scripts"]
        assert cmd[0] in scripts
    else:
        config = next(a for a in cmd if a.startswith("python:")).removeprefix("python:")
        app_module = cmd[-1].split(":")[0]
        for module in (config, app_module):
            assert (REPO / "apps" / service / "src" / (module.replace(".", "/") + ".py")).exists(), module
    exposed = {int(args.split("/")[0]) for word, args in dockerfile if word == "EXPOSE"}
    deployment = yaml.safe_load((REPO / "base" / service / "deployment.yaml").read_text())
    ports = {p["containerPort"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
    assert exposed == ports
