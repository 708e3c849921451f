"""The Argo CD manifests: one source of truth for the repository, a tight project, sane sync policies."""

from __future__ import annotations

import copy

import pytest
import yaml
from argocd_render import cluster_objects

from devstack.repo import ROOT
ENVIRONMENTS = ("dev", "prod")

IN_CLUSTER = "https://kubernetes.default.svc"


def group_kind(obj: dict) -> tuple[str, str]:
    api = obj["apiVersion"]
    return (api.split("/")[0] if "/" in api else "", obj["kind"])


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


@pytest.fixture(scope="module")
def source() -> dict:
    return yaml.safe_load((ROOT / "argocd" / "source.yaml").read_text())["data"]


@pytest.fixture(scope="module")
def clusters() -> dict[str, list[dict]]:
    """What each environment's root Application applies."""
    return {env: cluster_objects(env) for env in ENVIRONMENTS}


def voting_app(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in by_kind(objects, kind) if o["metadata"]["name"].startswith("voting-app")]


@pytest.fixture(scope="module")
def project(clusters) -> dict:
    (dev,), (prod,) = (voting_app(clusters[env], "AppProject") for env in ENVIRONMENTS)
    assert dev == prod
    return dev


@pytest.fixture(scope="module")
def applications(clusters) -> dict[str, dict]:
    return {env: app for env in ENVIRONMENTS for app in voting_app(clusters[env], "Application")}


def test_the_repository_url_is_written_in_one_place(source):
    url = source["repoURL"]
    holders = [
        str(path.relative_to(ROOT))
        for folder in ("argocd", "terraform", ".github", "scripts")
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and path.suffix != ".md" and url in path.read_text(errors="replace")
    ]
    assert holders == ["argocd/source.yaml"], f"repoURL is repeated in {holders}; read it from argocd/source.yaml"


def test_one_application_per_environment(applications, clusters):
    assert sorted(applications) == sorted(ENVIRONMENTS)
    for env in ENVIRONMENTS:
        assert [a["metadata"]["name"] for a in voting_app(clusters[env], "Application")] == [f"voting-app-{env}"]


def test_dev_brings_no_platform_and_prod_brings_it(clusters):
    def platform(objects: list[dict]) -> set[str]:
        return {o["metadata"]["name"] for o in objects
                if o["kind"] in ("Application", "AppProject") and not o["metadata"]["name"].startswith("voting-app")}
    assert platform(clusters["dev"]) == set()
    assert {"platform", "platform-config", "cert-manager", "envoy-gateway"} <= platform(clusters["prod"])


def repository_problems(objects: list[dict], url: str, revision: str) -> list[str]:
    """Every Application from this repository and every project follow url at revision."""
    problems = []
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "Application" and "chart" not in obj["spec"]["source"]:
            got = (obj["spec"]["source"].get("repoURL"), obj["spec"]["source"].get("targetRevision"))
            if got != (url, revision):
                problems.append(f"{name} follows {got}")
        if obj["kind"] == "AppProject" and obj["spec"]["sourceRepos"][0] != url:
            problems.append(f"{name} admits {obj['spec']['sourceRepos'][0]}")
    return problems


IN_CLUSTER_GIT = "http://git.git.svc.cluster.local/voting-app.git"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_terraform_repo_url_reaches_every_child(env):
    objects = cluster_objects(env, repo_url=IN_CLUSTER_GIT, target_revision="e2e")
    assert repository_problems(objects, IN_CLUSTER_GIT, "e2e") == []
    assert all(o["spec"]["source"]["repoURL"].startswith(("https://", "registry-1.docker.io/"))
               for o in objects if o["kind"] == "Application" and "chart" in o["spec"]["source"])


def test_repository_check_catches_a_child_left_on_the_committed_url(source):
    objects = cluster_objects("prod")
    assert repository_problems(objects, source["repoURL"], source["targetRevision"]) == []
    problems = repository_problems(objects, IN_CLUSTER_GIT, "e2e")
    assert any("Application/voting-app-prod" in p for p in problems) and any("AppProject/platform" in p for p in problems)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_application_points_at_an_existing_overlay_in_the_project(env, applications, project, source):
    app = applications[env]
    spec = app["spec"]
    assert spec["project"] == project["metadata"]["name"] == "voting-app"
    assert spec["source"]["repoURL"] == source["repoURL"]
    assert spec["source"]["targetRevision"] == source["targetRevision"]
    overlay = ROOT / spec["source"]["path"]
    assert spec["source"]["path"] == f"overlays/{env}"
    assert (overlay / "kustomization.yaml").is_file(), f"{overlay} has no kustomization.yaml"
    assert spec["destination"] == {"server": IN_CLUSTER, "namespace": f"voting-app-{env}"}
    allowed = {(d["server"], d["namespace"]) for d in project["spec"]["destinations"]}
    assert (IN_CLUSTER, spec["destination"]["namespace"]) in allowed


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_sync_policy_is_automated_with_prune_self_heal_and_backoff(env, applications):
    app = applications[env]
    policy = app["spec"]["syncPolicy"]
    assert policy["automated"] == {"prune": True, "selfHeal": True}
    assert "CreateNamespace=true" in policy["syncOptions"]
    assert "RespectIgnoreDifferences=true" in policy["syncOptions"]
    assert policy["retry"]["limit"] >= 3
    assert {"duration", "factor", "maxDuration"} <= set(policy["retry"]["backoff"])
    assert "resources-finalizer.argocd.argoproj.io" in app["metadata"]["finalizers"]


def test_dev_and_prod_applications_differ_only_in_environment(applications):
    def neutral(app: dict, env: str) -> str:
        return yaml.safe_dump(copy.deepcopy(app)).replace(env, "ENV")

    assert neutral(applications["dev"], "dev") == neutral(applications["prod"], "prod")


def test_project_allows_only_this_repository(project, source):
    assert project["spec"]["sourceRepos"] == [source["repoURL"]]


def test_project_destinations_match_the_overlay_namespaces(project, overlays):
    namespaces = {o["metadata"]["namespace"] for objs in overlays.values() for o in objs if "namespace" in o["metadata"]}
    destinations = {d["namespace"] for d in project["spec"]["destinations"]}
    assert destinations == namespaces == {f"voting-app-{env}" for env in ENVIRONMENTS}
    assert {d["server"] for d in project["spec"]["destinations"]} == {IN_CLUSTER}


# What controllers create from each kind we deploy. Argo CD's resource tree shows only the kinds
# the project admits, so a child kind left out hides, say, every pod under its Deployment.
CHILD_KINDS = {
    ("apps", "Deployment"): {("apps", "ReplicaSet")},
    ("apps", "ReplicaSet"): {("", "Pod")},
    ("apps", "StatefulSet"): {("apps", "ControllerRevision"), ("", "Pod"), ("", "PersistentVolumeClaim")},
    ("batch", "CronJob"): {("batch", "Job")},
    ("batch", "Job"): {("", "Pod")},
    ("", "Service"): {("discovery.k8s.io", "EndpointSlice"), ("", "Endpoints")},
    ("keda.sh", "ScaledObject"): {("autoscaling", "HorizontalPodAutoscaler")},
    ("external-secrets.io", "ExternalSecret"): {("", "Secret")},
    # cert-manager's gateway-shim makes a Certificate for each TLS listener of an annotated Gateway,
    # then its ACME chain; an HTTP-01 challenge is answered through an HTTPRoute on the Gateway.
    ("gateway.networking.k8s.io", "Gateway"): {("cert-manager.io", "Certificate")},
    ("cert-manager.io", "Certificate"): {("cert-manager.io", "CertificateRequest"), ("", "Secret")},
    ("cert-manager.io", "CertificateRequest"): {("acme.cert-manager.io", "Order")},
    ("acme.cert-manager.io", "Order"): {("acme.cert-manager.io", "Challenge")},
    ("acme.cert-manager.io", "Challenge"): {("", "Pod"), ("", "Service"), ("gateway.networking.k8s.io", "HTTPRoute")},
}


def shown_kinds(kinds: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The kinds given and every kind their controllers create, transitively."""
    shown, todo = set(), list(kinds)
    while todo:
        kind = todo.pop()
        if kind not in shown:
            shown.add(kind)
            todo.extend(CHILD_KINDS.get(kind, ()))
    return shown


def project_problems(project: dict, objects: list[dict]) -> list[str]:
    """The project admits every kind we render and every child kind the UI must show, and no more."""
    namespaced = {group_kind(o) for o in objects if "namespace" in o["metadata"]}
    cluster = {group_kind(o) for o in objects if "namespace" not in o["metadata"]}
    problems = [f"cluster-scoped kinds beyond Namespace in the overlays: {sorted(cluster - {('', 'Namespace')})}"
                ] if cluster - {("", "Namespace")} else []
    allowed_cluster = {(e["group"], e["kind"]) for e in project["spec"].get("clusterResourceWhitelist", [])}
    if allowed_cluster != {("", "Namespace")}:
        problems.append(f"cluster-scoped whitelist {sorted(allowed_cluster)}, not just Namespace")
    allowed = {(e["group"], e["kind"]) for e in project["spec"].get("namespaceResourceWhitelist", [])}
    needed = shown_kinds(namespaced)
    if needed - allowed:
        problems.append(f"add to the project: {sorted(needed - allowed)}")
    if allowed - needed:
        problems.append(f"remove from the project: {sorted(allowed - needed)}")
    return problems


def test_project_admits_our_kinds_and_their_children(project, overlays):
    assert project_problems(project, [o for objs in overlays.values() for o in objs]) == []


def test_project_check_catches_hidden_children(project, overlays):
    """The project as it was first written: only what we deploy, so the UI showed no pods."""
    objects = [o for objs in overlays.values() for o in objs]
    deployed = {group_kind(o) for o in objects if "namespace" in o["metadata"]}
    narrow = copy.deepcopy(project)
    narrow["spec"]["namespaceResourceWhitelist"] = [{"group": g, "kind": k} for g, k in sorted(deployed)]
    problems = project_problems(narrow, objects)
    assert any("('', 'Pod')" in p and "('apps', 'ReplicaSet')" in p for p in problems), problems


def test_project_check_catches_a_kind_we_render_but_do_not_admit(project, overlays):
    objects = [o for objs in overlays.values() for o in objs]
    objects.append({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "metadata": {"name": "x", "namespace": "n"}})
    assert any("ScaledJob" in p for p in project_problems(project, objects))


def scale_targets(objects: list[dict]) -> set[tuple[str, str, str]]:
    """(group, kind, name) of every workload an HPA or a KEDA ScaledObject sizes."""
    targets = set()
    for obj in objects:
        if obj["kind"] == "HorizontalPodAutoscaler":
            ref = obj["spec"]["scaleTargetRef"]
        elif obj["kind"] == "ScaledObject":
            ref = {"apiVersion": "apps/v1", "kind": "Deployment", **obj["spec"]["scaleTargetRef"]}
        else:
            continue
        targets.add((*group_kind(ref), ref["name"]))
    return targets


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_replicas_owned_by_an_autoscaler_are_ignored(env, applications, overlays):
    rules = applications[env]["spec"].get("ignoreDifferences", [])

    def covered(group: str, kind: str, name: str) -> bool:
        return any(
            r.get("group", "") == group
            and r["kind"] == kind
            and r.get("name", name) == name
            and "/spec/replicas" in r.get("jsonPointers", [])
            for r in rules
        )

    missing = [t for t in scale_targets(overlays[env]) if not covered(*t)]
    assert not missing, f"{env}: replicas of {missing} belong to an autoscaler but Argo CD would reset them"


def test_scale_target_reading_sees_hpa_and_keda():
    hpa = {"kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v2",
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vote"}}}
    keda = {"kind": "ScaledObject", "apiVersion": "keda.sh/v1alpha1", "spec": {"scaleTargetRef": {"name": "worker"}}}
    assert scale_targets([hpa, keda]) == {("apps", "Deployment", "vote"), ("apps", "Deployment", "worker")}
