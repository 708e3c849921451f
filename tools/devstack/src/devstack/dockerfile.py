"""Read a Dockerfile as Docker builds it: build arguments, stages, and the image one build makes.

The one reader of `apps/Dockerfile` for the tests that check our images (hadolint's companions,
the wheel check, Renovate's view) and for tests/kubelet, which installs and runs each service
as its image does.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

# The python:3.11-slim base image's own ENV, which the final stage's ENV builds on (${PATH}).
BASE_IMAGE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
# Instructions whose arguments Docker expands with the stage's ARG and ENV values; RUN's shell
# expands them too. CMD and ENTRYPOINT are left to the container's own shell, if any.
EXPANDED = {"ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR", "RUN"}


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n(?:\s*#[^\n]*\n)*\s*", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def substitute(value: str, env: Mapping[str, str]) -> str:
    """Docker's `${VAR}` and `$VAR`; an unset variable is empty."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), value)


def exec_form(args: str) -> list[str]:
    """A CMD or ENTRYPOINT argument: the JSON (exec) form, or the shell form as `/bin/sh -c`."""
    if args.startswith("["):
        return json.loads(args)
    return ["/bin/sh", "-c", args]


def _declared(args: str) -> list[tuple[str, str | None]]:
    """The (name, default or None) of each variable an ARG line declares."""
    found = []
    for item in shlex.split(args):
        name, eq, default = item.partition("=")
        found.append((name, default if eq else None))
    return found


def _set_env(env: dict[str, str], args: str, scope: Mapping[str, str]) -> None:
    """Apply one ENV line: `K=V ...`, or the legacy `ENV K value with spaces`."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        env[words[0]] = substitute(" ".join(words[1:]), scope)
        return
    for item in words:
        key, _, value = item.partition("=")
        env[key] = substitute(value, {**scope, **env})


@dataclass
class Stage:
    """One build stage: what FROM names, its instructions with variables expanded, its ENV."""

    name: str
    base: str
    parent: Stage | None
    steps: list[tuple[str, str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    own_env: dict[str, str] = field(default_factory=dict)  # what this stage's chain sets with ENV

    def chain(self) -> list[Stage]:
        """This stage and the earlier stages it is built on, the first one first."""
        return (self.parent.chain() if self.parent else []) + [self]


def stages(text: str, build_args: Mapping[str, str] | None = None,
           base_env: Mapping[str, str] | None = None) -> list[Stage]:
    """Every stage, as `docker build --build-arg ...` sees it; `base_env` is a registry image's own ENV."""
    build_args = dict(build_args or {})
    base_env = dict(BASE_IMAGE_ENV if base_env is None else base_env)
    global_args: dict[str, str] = {}
    found: list[Stage] = []
    by_name: dict[str, Stage] = {}
    args: dict[str, str] = {}
    for word, rest in instructions(text):
        if word == "ARG":
            for name, default in _declared(rest):
                if found:  # inside a stage: the build's value, else the line's default, else the global one
                    value = build_args.get(name, default if default is not None else global_args.get(name))
                    if value is not None:
                        args[name] = value
                elif name in build_args or default is not None:
                    global_args[name] = build_args.get(name, default)
            continue
        if word == "FROM":
            parts = substitute(rest, global_args).split()
            if not parts or not parts[0]:
                raise ValueError(f"FROM {rest}: the base name is blank (is a --build-arg missing?)")
            base = parts[0]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(found))
            parent = by_name.get(base)
            stage = Stage(name=name, base=base, parent=parent, env=dict(parent.env if parent else base_env),
                          own_env=dict(parent.own_env if parent else {}))
            found.append(stage)
            by_name[name] = stage
            args = {}
            continue
        if not found:
            raise ValueError(f"{word} before the first FROM")
        stage = found[-1]
        scope = {**args, **stage.env}
        if word == "ENV":
            before = dict(stage.env)
            _set_env(stage.env, rest, scope)
            stage.own_env.update({k: v for k, v in stage.env.items() if before.get(k) != v or k not in before})
        stage.steps.append((word, substitute(rest, scope) if word in EXPANDED else rest))
    return found


def external_bases(text: str, build_args: Mapping[str, str] | None = None) -> list[str]:
    """The registry images the stages start from (not the earlier stages they name)."""
    return [stage.base for stage in stages(text, build_args) if stage.parent is None]


@dataclass(frozen=True)
class Image:
    """What running the image one build makes depends on."""

    build_env: dict[str, str]
    install: list[str]
    copies: list[str]
    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    user: tuple[int, int]
    home: str
    workdir: str
    exposed: set[int]
    labels: dict[str, str]

    @property
    def venv(self) -> str:
        """Where the build stage puts the virtualenv the final stage copies."""
        return self.build_env["UV_PROJECT_ENVIRONMENT"]


def read_image(text: str, build_args: Mapping[str, str] | None = None) -> Image:
    """The image of the last stage: its `uv sync` build stage (the one it copies from), user, ENV and CMD."""
    all_stages = stages(text, build_args)
    by_name = {stage.name: stage for stage in all_stages}
    final = all_stages[-1].chain()
    steps = [step for stage in final for step in stage.steps]
    sources = {re.match(r"--from=(\S+)", args).group(1) for word, args in steps
               if word == "COPY" and args.startswith("--from=")}
    builds = [by_name[s] for s in sources if s in by_name]
    if len(builds) != 1:
        raise ValueError(f"the image copies from {len(builds)} build stages, not one: {sorted(sources)}")
    build = builds[0]
    installs = [shlex.split(args) for word, args in build.steps if word == "RUN" and args.startswith("uv sync")]
    if not installs:
        raise ValueError("the build stage runs no `uv sync`")
    copies = [part for word, args in build.steps if word == "COPY" and not args.startswith("--from")
              for part in args.split()[:-1]]
    entrypoint: list[str] = []
    cmd: list[str] = []
    user = home = ""
    workdir = "/"
    exposed: set[int] = set()
    labels: dict[str, str] = {}
    for word, args in steps:
        if word == "ENTRYPOINT":
            entrypoint, cmd = exec_form(args), []
        elif word == "CMD":
            cmd = exec_form(args)
        elif word == "USER":
            user = args
        elif word == "WORKDIR":
            workdir = args
        elif word == "EXPOSE":
            exposed |= {int(port.split("/")[0]) for port in args.split()}
        elif word == "LABEL":
            labels.update(item.partition("=")[::2] for item in shlex.split(args))
        elif word == "RUN" and "useradd" in args:
            found = re.search(r"--home-dir\s+(\S+)", args)
            home = found.group(1) if found else ""
    uid, _, gid = user.partition(":")
    if not (uid.isdigit() and gid.isdigit()):
        raise ValueError(f"USER must be a numeric uid:gid, got {user!r}")
    return Image(
        build_env=build.own_env, install=installs[-1], copies=copies, env=final[-1].env, entrypoint=entrypoint,
        cmd=cmd, user=(int(uid), int(gid)), home=home, workdir=workdir, exposed=exposed, labels=labels,
    )
