"""apps/Dockerfile, the one file of the three images: hadolint, one pinned base and one uv, lock-file
installs, a fixed non-root UID, each service's command and port, a context of only what it copies."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
import tomllib

import pytest
import yaml
from devstack.dockerfile import Image, external_bases, instructions, read_image
from devstack.repo import DOCKERFILE, SERVICES

from manifest_render import REPO, venv_tool

PYTHON_BASE = "python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7"
OCI_LABELS = ("org.opencontainers.image.source", "org.opencontainers.image.revision", "org.opencontainers.image.version")
IGNORE = DOCKERFILE.with_name("Dockerfile.dockerignore")


@pytest.fixture(params=SERVICES)
def service(request) -> str:
    return request.param


@pytest.fixture
def image(service) -> Image:
    return read_image(DOCKERFILE.read_text(), {"SERVICE": service})


def deployment(service: str) -> dict:
    return yaml.safe_load((REPO / "base" / service / "deployment.yaml").read_text())


def test_hadolint():
    done = subprocess.run([venv_tool("hadolint"), "--no-color", str(DOCKERFILE)],
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_can_fail(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    done = subprocess.run([venv_tool("hadolint"), "--no-color", str(bad)], capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "DL3007" in done.stdout


def tracked_dockerfiles() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "*Dockerfile"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()
    return [name for name in listed if (REPO / name).exists()]


def pin_lines(texts: dict[str, str]) -> dict[str, list[str]]:
    """Where each pin is written: `sha256:<digest>` of a base image, and `uv==`/`UV_VERSION=` versions."""
    found: dict[str, list[str]] = {"digest": [], "uv": []}
    for name, text in texts.items():
        for number, line in enumerate(text.splitlines(), 1):
            if re.search(r"python:[\w.-]+@sha256:[0-9a-f]{64}", line):
                found["digest"].append(f"{name}:{number}")
            if re.search(r"uv==\d|UV_VERSION=\d", line):
                found["uv"].append(f"{name}:{number}")
    return found


def test_a_base_image_or_uv_bump_is_one_edit():
    """apps/Dockerfile names the Python image and uv once each (ARGs), whatever the stages and services."""
    texts = {name: (REPO / name).read_text() for name in tracked_dockerfiles()}
    assert "apps/Dockerfile" in texts and not [n for n in texts if re.fullmatch(r"apps/\w+/Dockerfile", n)]
    pins = pin_lines({"apps/Dockerfile": texts["apps/Dockerfile"]})
    assert len(pins["digest"]) == 1 and len(pins["uv"]) == 1, pins
    # Other Dockerfiles (the e2e git server) may use the same image, never another digest of it.
    others = {re.search(r"python:[\w.-]+@sha256:[0-9a-f]{64}", t).group(0) for t in texts.values()
              if re.search(r"python:[\w.-]+@sha256:[0-9a-f]{64}", t)}
    assert others == {PYTHON_BASE}


def test_a_pin_written_in_each_stage_is_caught():
    """The images' form before this file: the digest in both stages, uv in each service's file."""
    old = (f"FROM {PYTHON_BASE} AS build\nRUN pip install uv==0.13.9\nFROM {PYTHON_BASE}\n")
    pins = pin_lines({"apps/vote/Dockerfile": old, "apps/worker/Dockerfile": old})
    assert len(pins["digest"]) == 4 and len(pins["uv"]) == 2


def test_the_makefile_installs_the_uv_the_images_install():
    """The tests and the kubelet imitation run `.tools/bin/uv`: it must be the images' uv."""
    wanted = re.search(r"^ARG UV_VERSION=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE).group(1)
    made = re.search(r"^UV_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE).group(1)
    assert made == wanted


def test_multi_stage_on_the_pinned_base(service):
    bases = external_bases(DOCKERFILE.read_text(), {"SERVICE": service})
    assert len(bases) >= 2, "not a multi-stage build"
    assert set(bases) == {PYTHON_BASE}


def test_a_missing_service_argument_fails_the_build():
    with pytest.raises(ValueError, match="blank"):
        read_image(DOCKERFILE.read_text())


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


def test_images_run_the_python_the_tests_run(image, service):
    """One interpreter: .python-version, the one running this test, and every stage of every image."""
    wanted = (REPO / ".python-version").read_text().strip()
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == wanted, f"the tests run {sys.version}, not {wanted}"
    assert "UV_PYTHON" in image.build_env, "uv is not told which interpreter to use"
    bases = external_bases(DOCKERFILE.read_text(), {"SERVICE": service})
    resolved = [("FROM", base) for base in bases] + [("ENV", f"UV_PYTHON={image.build_env['UV_PYTHON']}")]
    assert interpreter_mismatches(resolved, wanted) == []


def test_a_python_312_image_is_caught():
    """The images' form before they moved to 3.11: both stages and UV_PYTHON on 3.12."""
    old = instructions(
        "FROM python:3.12-slim@sha256:78387bc3881b8273120a12ebe6c1ab22b018ccc2c9adf565ae1ac9b536e184ea AS build\n"
        "ENV UV_COMPILE_BYTECODE=1 \\\n    UV_PYTHON=/usr/local/bin/python3.12 \\\n    UV_LINK_MODE=copy\n"
        "FROM python:3.12-slim@sha256:78387bc3881b8273120a12ebe6c1ab22b018ccc2c9adf565ae1ac9b536e184ea\n"
    )
    assert len(interpreter_mismatches(old, "3.11")) == 3
    assert interpreter_mismatches(instructions("FROM python:3.11-slim AS build\nFROM debian:12\n"), "3.11") == ["FROM debian:12"]


def test_installs_its_own_package_from_the_lock_file(image, service):
    assert image.install[:2] == ["uv", "sync"]
    assert {"--frozen", "--no-dev"} <= set(image.install) and image.install[-2:] == ["--package", service]
    assert f"apps/{service}/src" in image.copies
    assert not [c for c in image.copies if re.fullmatch(r"apps/\w+/src", c) and c != f"apps/{service}/src"]


def test_runs_as_the_uid_the_manifests_expect(image, service):
    assert image.user[0] >= 10000
    assert deployment(service)["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == image.user[0]


def test_oci_labels(image, service):
    for label in OCI_LABELS:
        assert label in image.labels, f"no {label}"
    assert image.labels["org.opencontainers.image.title"] == service
    assert image.labels["org.opencontainers.image.description"]


def ignored(patterns: list[str], path: str) -> bool:
    """Docker's rule for one path: a line matches the path or a folder above it; the last match wins."""
    parts = path.split("/")
    result = False
    for pattern in patterns:
        body = pattern.removeprefix("!")
        if body.startswith("**/"):
            pieces = ["/".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)]
            body = body.removeprefix("**/")
        else:
            pieces = ["/".join(parts[:j]) for j in range(1, len(parts) + 1)]
        if any(fnmatch.fnmatchcase(piece, body) for piece in pieces):
            result = not pattern.startswith("!")
    return result


def ignore_lines() -> list[str]:
    return [line for line in IGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")]


def context_problems(patterns: list[str], copies: set[str]) -> list[str]:
    """What the build copies but the context leaves out, and what the context sends but no build copies."""
    problems = [f"{path} is copied but ignored" for path in sorted(copies) if ignored(patterns, path)]
    sent = {line[1:] for line in patterns if line.startswith("!")}
    problems += [f"{path} is sent but never copied" for path in sorted(sent - copies)]
    if "*" not in patterns:
        problems.append("the context does not start empty (`*`)")
    return problems


def test_the_context_sends_only_what_the_builds_copy():
    copies = {c for s in SERVICES for c in read_image(DOCKERFILE.read_text(), {"SERVICE": s}).copies}
    assert context_problems(ignore_lines(), copies) == []
    assert ignored(ignore_lines(), "apps/vote/src/vote/__pycache__/app.cpython-311.pyc")


def test_a_context_that_misses_or_leaks_is_caught():
    copies = {"uv.lock", "apps/vote/src"}
    assert context_problems(["*", "!uv.lock"], copies) == ["apps/vote/src is copied but ignored"]
    assert context_problems(["!uv.lock", "!apps/vote/src", "!tests"], copies) == [
        "tests is sent but never copied", "the context does not start empty (`*`)"]


def test_copies_every_workspace_member_manifest(image):
    """`uv sync --frozen` needs the pyproject.toml of every workspace member, not only ours."""
    members = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    for member in members:
        assert f"{member}/pyproject.toml" in image.copies, f"{member}/pyproject.toml is not copied"
        assert (REPO / member / "pyproject.toml").exists()


def test_command_and_port_match_the_service(image, service):
    cmd = image.cmd
    if service in ("worker", "result"):
        scripts = tomllib.loads((REPO / "apps" / service / "pyproject.toml").read_text())["project"]["scripts"]
        assert cmd[0] in scripts
    else:
        config = next(a for a in cmd if a.startswith("python:")).removeprefix("python:")
        app_module = cmd[-1].split(":")[0]
        for module in (config, app_module):
            assert (REPO / "apps" / service / "src" / (module.replace(".", "/") + ".py")).exists(), module
    ports = {p["containerPort"] for c in deployment(service)["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
    assert image.exposed == ports
    # The port the process listens on is the image's own default, the one the Deployment names.
    listening = {int(v) for k, v in image.env.items() if k in ("PORT", "METRICS_PORT")}
    assert listening == ports
