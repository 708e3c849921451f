"""What Argo CD renders for the root Application that Terraform installs, per environment.

Terraform's root Application syncs `argocd/` with `kustomize.components: [clusters/<env>]` and a
`kustomize.patches` entry that sets the `voting-app-source` ConfigMap to the repository and
revision Terraform was given. Argo CD applies both by editing the kustomization of a private
copy before `kustomize build` (argo-cd `util/kustomize/kustomize.go`: patches are appended to
`patches:`, components added as `kustomize edit add component` does); this module does the same
with the pinned kubectl, so the tests see the objects Argo CD would apply.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import hcl2
import pytest
import yaml
from hcl2.api import SerializationOptions

from manifest_render import REPO, rendered_objects, venv_tool

ROOT_APP = REPO / "terraform" / "charts" / "root-app"
ENVIRONMENTS = ("dev", "prod")


def source() -> dict:
    """argocd/source.yaml's data: the repository and revision every Application follows."""
    return yaml.safe_load((REPO / "argocd" / "source.yaml").read_text())["data"]


def fill_template(text: str, values: dict, namespace: str) -> str:
    """A Helm template filled in; only value look-ups, `required` and `quote` are understood."""
    def look_up(ref: str):
        if ref == ".Release.Namespace":
            return namespace
        if ref.startswith(".Values.") and ref[len(".Values."):] in values:
            return values[ref[len(".Values."):]]
        pytest.fail(f"root-app template: cannot fill {ref}")

    def action(match: re.Match) -> str:
        first, *pipes = [part.strip() for part in match.group(1).split("|")]
        words = shlex.split(first)
        if words[0] == "required" and len(words) == 3:
            value = look_up(words[2])
            if value in ("", None):
                pytest.fail(f"root-app template: {words[1]}")
        elif len(words) == 1:
            value = look_up(words[0])
        else:
            pytest.fail(f"root-app template: cannot fill {{{{ {match.group(1)} }}}}")
        for pipe in pipes:
            if pipe != "quote":
                pytest.fail(f"root-app template: unknown function {pipe!r}")
            value = json.dumps(str(value))
        return str(value)

    return re.sub(r"{{\s*(.*?)\s*}}", action, text)


def _hcl(path: Path) -> dict:
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=SerializationOptions(strip_string_quotes=True))


def terraform_value(expression: str, variables: dict, src: dict) -> str:
    """One value of main.tf's root_application local: a literal, var.X, local.source.Y or coalesce of those."""
    inner = re.fullmatch(r"\$\{(.*)\}", expression)
    if not inner:
        return expression
    terms = re.fullmatch(r"coalesce\((.*)\)", inner.group(1))
    for term in [t.strip() for t in (terms.group(1).split(",") if terms else [inner.group(1)])]:
        if term.startswith("var."):
            value = variables[term[len("var."):]]
        elif term.startswith("local.source."):
            value = src[term[len("local.source."):]]
        else:
            pytest.fail(f"terraform/main.tf: cannot evaluate {term} in {expression}")
        if value not in (None, ""):
            return value
    pytest.fail(f"terraform/main.tf: {expression} has no value")


def terraform_defaults() -> dict:
    """Every Terraform variable's default (None where it has none)."""
    blocks = _hcl(REPO / "terraform" / "variables.tf")["variable"]
    return {name: body.get("default") for block in blocks for name, body in block.items()}


def root_application(**variables) -> dict:
    """The Application Terraform installs through the root-app chart, given `-var` values (the rest default)."""
    given = {**terraform_defaults(), **variables}
    main = _hcl(REPO / "terraform" / "main.tf")
    local = next(block["root_application"] for block in main["locals"] if "root_application" in block)
    values = yaml.safe_load((ROOT_APP / "values.yaml").read_text())
    values.update({k: terraform_value(v, given, source()) for k, v in local.items()})
    text = (ROOT_APP / "templates" / "application.yaml").read_text()
    return yaml.safe_load(fill_template(text, values, given["argocd_namespace"]))


def build(app: dict, repo: Path = REPO) -> list[dict]:
    """The objects Argo CD renders for an Application with a kustomize path in this repository."""
    spec = app["spec"]["source"]
    options = spec.get("kustomize") or {}
    if not options.get("patches") and not options.get("components") and repo == REPO:
        return rendered_objects(spec["path"])
    with tempfile.TemporaryDirectory(prefix="argocd-render-") as folder:
        top = spec["path"].split("/")[0]
        shutil.copytree(repo / top, Path(folder) / top)
        path = Path(folder) / spec["path"]
        kustomization = yaml.safe_load((path / "kustomization.yaml").read_text())
        if options.get("patches"):
            kustomization["patches"] = (kustomization.get("patches") or []) + copy.deepcopy(options["patches"])
        for component in options.get("components") or []:
            if component not in (kustomization.get("components") or []):
                kustomization["components"] = (kustomization.get("components") or []) + [component]
        (path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
        done = subprocess.run([venv_tool("kubectl"), "kustomize", str(path)],
                              capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        pytest.fail(f"kustomize build of {spec['path']} as Argo CD runs it failed:\n{done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@functools.cache
def _cluster(environment: str, repo_url: str | None, target_revision: str | None) -> tuple[dict, ...]:
    app = root_application(environment=environment, repo_url=repo_url, target_revision=target_revision)
    return tuple(build(app))


def cluster_objects(environment: str, repo_url: str | None = None, target_revision: str | None = None) -> list[dict]:
    """What the root Application of one environment's cluster applies, as a fresh copy."""
    return copy.deepcopy(list(_cluster(environment, repo_url, target_revision)))
