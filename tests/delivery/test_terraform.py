"""Terraform: formatted, checkov-clean, exact pins, and a root Application that points at argocd/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import hcl2
import pytest
import yaml
from argocd_render import root_application
from hcl2.api import SerializationOptions

from devstack.repo import ROOT
TF = ROOT / "terraform"
EXACT = re.compile(r"^\d+\.\d+\.\d+$")
QUIET_TF = {"TF_CLI_CONFIG_FILE": "/dev/null", "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
QUIET_CHECKOV = {"CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "TRUE"}


def clean(node):
    """python-hcl2's output without its bookkeeping keys (__is_block__, __comments__)."""
    if isinstance(node, dict):
        return {k: clean(v) for k, v in node.items() if not k.startswith("__")}
    if isinstance(node, list):
        return [clean(v) for v in node]
    return node


def parse(path: Path) -> dict:
    with path.open() as handle:
        return clean(hcl2.load(handle, serialization_options=SerializationOptions(strip_string_quotes=True)))


@pytest.fixture(scope="module")
def module() -> dict[str, dict]:
    return {path.name: parse(path) for path in sorted(TF.glob("*.tf"))}


def blocks(module: dict[str, dict], kind: str) -> dict[str, dict]:
    """Every block of one kind (resource, variable, output...) by its label, across files."""
    out: dict[str, dict] = {}
    for doc in module.values():
        for block in doc.get(kind, []):
            out.update(block)
    return out


def resources(module: dict[str, dict], rtype: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for doc in module.values():
        for block in doc.get("resource", []):
            out.update(block.get(rtype, {}))
    return out


def test_the_expected_files_exist():
    for name in ("versions.tf", "variables.tf", "outputs.tf", "main.tf", "providers.tf", "README.md"):
        assert (TF / name).is_file(), name


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed on this machine, so `terraform fmt -check` cannot run here (ci.yml runs it)")
def test_terraform_fmt_is_clean():
    proc = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(TF)],
        capture_output=True, text=True, env={**os.environ, **QUIET_TF},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def run_checkov(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["uv", "run", "--frozen", "--project", str(ROOT / "tools" / "checkov"),
         "checkov", "-d", str(directory), "--framework", "terraform", "--skip-download", "--compact", "--quiet"],
        capture_output=True, text=True, env={**os.environ, **QUIET_CHECKOV, "UV_PYTHON_DOWNLOADS": "never"},
    )


def test_checkov_passes_on_terraform():
    proc = run_checkov(TF)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_checkov_would_catch_a_bad_resource(tmp_path):
    """Guards the check above against a checkov that silently scans nothing."""
    (tmp_path / "bad.tf").write_text(textwrap.dedent("""
        resource "kubernetes_pod" "bad" {
          metadata {
            name = "bad"
          }
          spec {
            host_network = true
            container {
              name  = "bad"
              image = "busybox:latest"
              security_context {
                privileged = true
              }
            }
          }
        }
    """))
    proc = run_checkov(tmp_path)
    assert proc.returncode == 1 and "CKV_K8S" in proc.stdout, proc.stdout + proc.stderr


def test_providers_are_pinned_exactly(module):
    providers = {}
    for block in module["versions.tf"]["terraform"]:
        for req in block.get("required_providers", []):
            providers.update(req)
    assert {"helm", "kubernetes"} <= set(providers)
    for name, spec in providers.items():
        assert EXACT.match(spec["version"]), f"{name} is pinned to {spec['version']!r}, not an exact version"


def test_every_variable_has_a_type_and_a_description(module):
    variables = blocks(module, "variable")
    assert variables
    for name, var in variables.items():
        assert var.get("type") and var.get("description"), f"variable {name} needs a type and a description"


def test_argocd_comes_from_its_chart_at_a_pinned_version(module):
    release = resources(module, "helm_release")["argocd"]
    assert release["repository"] == "https://argoproj.github.io/argo-helm"
    assert release["chart"] == "argo-cd"
    version = release["version"]
    if version.startswith("${var."):
        version = blocks(module, "variable")[version[len("${var."):-1]]["default"]
    assert EXACT.match(version), f"argo-cd chart version {version!r} is not pinned"


def test_root_application_points_at_argocd_folder(module):
    root = resources(module, "helm_release")["root"]
    assert "helm_release.argocd" in str(root["depends_on"])
    locals_ = blocks(module, "locals")
    assert locals_["root_application"]["path"] == "argocd"
    assert (ROOT / locals_["root_application"]["path"] / "kustomization.yaml").is_file()
    assert "argocd/source.yaml" in locals_["source"], "the root Application must read the repository from argocd/source.yaml"
    template = (TF / "charts" / "root-app" / "templates" / "application.yaml").read_text()
    assert "kind: Application" in template and ".Values.path" in template and ".Values.repoURL" in template


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_root_application_adds_the_environment_and_the_repository(env):
    app = root_application(environment=env, repo_url="http://git.example/voting-app.git", target_revision="e2e")
    kustomize = app["spec"]["source"]["kustomize"]
    assert kustomize["components"] == [f"clusters/{env}"]
    assert (ROOT / "argocd" / f"clusters/{env}" / "kustomization.yaml").is_file()
    (patch,) = kustomize["patches"]
    assert patch["target"] == {"kind": "ConfigMap", "name": "voting-app-source"}
    assert yaml.safe_load(patch["patch"]) == [
        {"op": "replace", "path": "/data/repoURL", "value": "http://git.example/voting-app.git"},
        {"op": "replace", "path": "/data/targetRevision", "value": "e2e"}]
    assert (app["spec"]["source"]["repoURL"], app["spec"]["source"]["targetRevision"]) == (
        "http://git.example/voting-app.git", "e2e")


def test_repository_defaults_to_source_yaml():
    source = yaml.safe_load((ROOT / "argocd" / "source.yaml").read_text())["data"]
    app = root_application()
    assert app["spec"]["source"]["kustomize"]["components"] == ["clusters/dev"]
    assert (app["spec"]["source"]["repoURL"], app["spec"]["source"]["targetRevision"]) == (
        source["repoURL"], source["targetRevision"])


def plan_variables(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`terraform plan` of variables.tf alone (it needs no provider, so init works offline)."""
    (tmp_path / "variables.tf").write_text((TF / "variables.tf").read_text())
    env = {**os.environ, **QUIET_TF}
    init = subprocess.run(["terraform", "init", "-backend=false", "-input=false", "-no-color"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=120)
    assert init.returncode == 0, init.stdout + init.stderr
    return subprocess.run(["terraform", "plan", "-input=false", "-no-color", "-lock=false", *args], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed on this machine (ci.yml runs terraform validate)")
@pytest.mark.parametrize(("value", "accepted"), [("dev", True), ("prod", True), ("staging", False), ("Prod", False)])
def test_environment_is_dev_or_prod(value, accepted, tmp_path):
    done = plan_variables(tmp_path, "-var", f"environment={value}")
    assert (done.returncode == 0) == accepted, done.stdout + done.stderr
    if not accepted:
        assert "environment must be dev or prod" in done.stderr


def test_argocd_judges_application_health():
    """The documented Lua check that lets the root's sync waves wait for the platform (tests/manifests/argocd_tree.py)."""
    values = yaml.safe_load((TF / "values" / "argocd.yaml").read_text())
    lua = values["configs"]["cm"]["resource.customizations.health.argoproj.io_Application"]
    assert "obj.status.health.status" in lua and '"Progressing"' in lua and "return" in lua


def storage_class_problems(module: dict[str, dict], claims: list[dict]) -> list[str]:
    """Terraform makes exactly the StorageClasses our claims name; a claim naming none binds on the default."""
    made = {r["metadata"][0]["name"] for r in resources(module, "kubernetes_storage_class_v1").values()}
    named = {c["spec"].get("storageClassName") for c in claims} - {None}
    problems = [f"Terraform creates StorageClass {name}, which no claim names" for name in sorted(made - named)]
    problems += [f"a claim names StorageClass {name}, which nothing creates" for name in sorted(named - made)]
    return problems


def claims(overlays: dict[str, list[dict]]) -> list[dict]:
    """Every PersistentVolumeClaim and StatefulSet claim template the overlays render."""
    objects = [o for objs in overlays.values() for o in objs]
    return [o for o in objects if o["kind"] == "PersistentVolumeClaim"] + [
        t for o in objects if o["kind"] == "StatefulSet" for t in o["spec"].get("volumeClaimTemplates", [])]


def test_storage_classes_and_claims_agree(module, overlays):
    assert storage_class_problems(module, claims(overlays)) == []


def test_storage_class_check_catches_a_class_nothing_uses(module, overlays):
    """The form Terraform first had: a local-storage class that no claim named."""
    unused = {"resource": [{"kubernetes_storage_class_v1": {"local_storage": {"metadata": [{"name": "local-storage"}]}}}]}
    assert storage_class_problems({**module, "storage.tf": unused}, claims(overlays)) == [
        "Terraform creates StorageClass local-storage, which no claim names"]


def ui_port_problems(outputs: dict, kind_config: dict) -> list[str]:
    """Why the Argo CD UI that the outputs describe cannot be reached beside the kind cluster's ports."""
    forward = re.search(r"port-forward svc/argocd-server (\d+):443", outputs["argocd_port_forward"]["value"])
    if not forward:
        return ["argocd_port_forward does not forward a local port to argocd-server's 443"]
    local = int(forward.group(1))
    problems = []
    if outputs["argocd_ui_address"]["value"] != f"https://localhost:{local}":
        problems.append(f"argocd_ui_address is not the forwarded port {local}")
    taken = {m["hostPort"] for node in kind_config["nodes"] for m in node.get("extraPortMappings", [])}
    if local in taken:
        problems.append(f"the UI's port {local} is one kind already maps to the cluster")
    return problems


def test_outputs_tell_how_to_reach_the_ui_and_the_password(module):
    outputs = blocks(module, "output")
    kind_config = yaml.safe_load((ROOT / "scripts" / "kind-cluster.yaml").read_text())
    assert ui_port_problems(outputs, kind_config) == []
    assert "argocd-initial-admin-secret" in outputs["argocd_admin_password_command"]["value"]


def test_a_ui_port_that_kind_already_maps_is_caught(module):
    """The form the outputs had when kind started mapping 8080 to dev's vote."""
    outputs = blocks(module, "output")
    kind_config = yaml.safe_load((ROOT / "scripts" / "kind-cluster.yaml").read_text())
    clash = {
        "argocd_port_forward": {"value": "kubectl -n argocd port-forward svc/argocd-server 8080:443"},
        "argocd_ui_address": {"value": "https://localhost:8080"},
    }
    assert ui_port_problems({**outputs, **clash}, kind_config) == [
        "the UI's port 8080 is one kind already maps to the cluster"]


def test_argocd_values_file_is_yaml():
    values = yaml.safe_load((TF / "values" / "argocd.yaml").read_text())
    assert isinstance(values, dict)


LUA = shutil.which("lua5.4") or shutil.which("lua")
APP_STATES = [("{}", "Progressing"), ("{status = {}}", "Progressing"),
              ('{status = {health = {status = "Healthy"}}}', "Healthy"),
              ('{status = {health = {status = "Degraded", message = "x"}}}', "Degraded")]


def lua_health(script: str, obj: str) -> str:
    """The status a health script gives an Application, run by a real Lua interpreter as Argo CD's gopher-lua would."""
    program = f"obj = {obj}\nlocal function check()\n{script}\nend\nprint(check().status)\n"
    return subprocess.run([LUA, "-"], input=program, capture_output=True, text=True, check=True, timeout=30).stdout.strip()


def lua_problems(script: str) -> list[str]:
    return [f"{obj} gives {got}, not {want}" for obj, want in APP_STATES if (got := lua_health(script, obj)) != want]


@pytest.mark.skipif(LUA is None, reason="no Lua interpreter here (apt-get install lua5.4 runs this check)")
def test_application_health_script_follows_the_child(tmp_path):
    values = yaml.safe_load((TF / "values" / "argocd.yaml").read_text())
    script = values["configs"]["cm"]["resource.customizations.health.argoproj.io_Application"]
    assert lua_problems(script) == []
    assert lua_problems('return { status = "Healthy" }') == ["{} gives Healthy, not Progressing",
                                                             "{status = {}} gives Healthy, not Progressing",
                                                             '{status = {health = {status = "Degraded", message = "x"}}} gives Healthy, not Degraded']
