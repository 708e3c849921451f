"""What a service's image runs, read from its Dockerfile: the install command, user, ENV and CMD."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

from devstack.dockerfile import instructions

# The python:3.11-slim base image's own ENV, which the final stage's ENV builds on (${PATH}).
BASE_IMAGE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}


def stages(text: str) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage, FROM first."""
    result: list[list[tuple[str, str]]] = []
    for word, args in instructions(text):
        if word == "FROM":
            result.append([])
        if result:
            result[-1].append((word, args))
    return result


def substitute(value: str, env: dict[str, str]) -> str:
    """Docker's `${VAR}` and `$VAR` in an ENV value; an unset variable is empty."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), value)


def env_of(stage: list[tuple[str, str]], base: dict[str, str]) -> dict[str, str]:
    """`base` updated by the stage's ENV instructions, in order."""
    env = dict(base)
    for word, args in stage:
        if word != "ENV":
            continue
        words = shlex.split(args)
        if words and "=" not in words[0]:  # the legacy `ENV KEY value with spaces` form
            env[words[0]] = substitute(" ".join(words[1:]), env)
            continue
        for item in words:
            key, _, value = item.partition("=")
            env[key] = substitute(value, env)
    return env


def exec_form(args: str) -> list[str]:
    """A CMD or ENTRYPOINT argument: the JSON (exec) form, or the shell form as `/bin/sh -c`."""
    if args.startswith("["):
        return json.loads(args)
    return ["/bin/sh", "-c", args]


@dataclass(frozen=True)
class Image:
    build_env: dict[str, str]
    install: list[str]
    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    user: tuple[int, int]
    home: str
    workdir: str

    @property
    def venv(self) -> str:
        """Where the build stage puts the virtualenv the final stage copies."""
        return self.build_env["UV_PROJECT_ENVIRONMENT"]


def read_image(text: str) -> Image:
    """The facts of a two-stage `uv sync` Dockerfile that running its image depends on."""
    *builds, final = stages(text)
    build = builds[-1]
    build_env = env_of(build, {})
    installs = [shlex.split(args) for word, args in build if word == "RUN" and args.startswith("uv sync")]
    entrypoint: list[str] = []
    cmd: list[str] = []
    user = ""
    home = ""
    workdir = "/"
    for word, args in final:
        if word == "ENTRYPOINT":
            entrypoint, cmd = exec_form(args), []
        elif word == "CMD":
            cmd = exec_form(args)
        elif word == "USER":
            user = args
        elif word == "WORKDIR":
            workdir = args
        elif word == "RUN" and "useradd" in args:
            found = re.search(r"--home-dir\s+(\S+)", args)
            home = found.group(1) if found else ""
    uid, _, gid = user.partition(":")
    if not (uid.isdigit() and gid.isdigit()):
        raise ValueError(f"USER must be a numeric uid:gid, got {user!r}")
    if not installs:
        raise ValueError("the build stage runs no `uv sync`")
    return Image(
        build_env=build_env, install=installs[-1], env=env_of(final[1:], BASE_IMAGE_ENV),
        entrypoint=entrypoint, cmd=cmd, user=(int(uid), int(gid)), home=home, workdir=workdir,
    )
