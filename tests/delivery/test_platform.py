"""The platform layer (argocd/platform): pinned charts, a tight project of its own, and the config the prod overlay relies on.

The charts cannot be rendered here (no chart repository is reachable), so their Applications are
checked instead: an exact chart version, a destination the project admits, CreateNamespace, and
ServerSideApply where the chart's CRDs are too large for a client-side apply. Each check is fed a
broken form.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import pytest
import yaml
from argocd_render import cluster_objects
from manifest_render import REPO, rendered_objects

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_argocd import CHILD_KINDS, group_kind  # noqa: E402
from test_schema import schema_problems  # noqa: E402

PLATFORM = REPO / "argocd" / "platform"
EXACT = re.compile(r"^v?\d+\.\d+\.\d+$")
# Charts whose CRDs pass the 256 KiB last-applied annotation of a client-side apply.
LARGE_CRDS = {"kube-prometheus-stack", "gateway-helm", "keda", "external-secrets"}
# What each chart deploys with our values, read from its templates at the pinned version (CRDs, the
# Helm-hook Jobs, and the subcharts of kube-prometheus-stack included). Re-read when a bump adds a kind.
CHART_KINDS = {
    "metrics-server": {("", "Service"), ("", "ServiceAccount"), ("apps", "Deployment"), ("apiregistration.k8s.io", "APIService"),
                       ("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
                       ("rbac.authorization.k8s.io", "RoleBinding")},
    "keda": {("", "Service"), ("", "ServiceAccount"), ("apps", "Deployment"), ("apiregistration.k8s.io", "APIService"),
             ("apiextensions.k8s.io", "CustomResourceDefinition"), ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
             ("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
             ("rbac.authorization.k8s.io", "Role"), ("rbac.authorization.k8s.io", "RoleBinding")},
    "external-secrets": {("", "Secret"), ("", "Service"), ("", "ServiceAccount"), ("apps", "Deployment"),
                         ("apiextensions.k8s.io", "CustomResourceDefinition"),
                         ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
                         ("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
                         ("rbac.authorization.k8s.io", "Role"), ("rbac.authorization.k8s.io", "RoleBinding")},
    "cert-manager": {("", "ConfigMap"), ("", "Service"), ("", "ServiceAccount"), ("apps", "Deployment"), ("batch", "Job"),
                     ("apiextensions.k8s.io", "CustomResourceDefinition"),
                     ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
                     ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
                     ("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
                     ("rbac.authorization.k8s.io", "Role"), ("rbac.authorization.k8s.io", "RoleBinding")},
    "gateway-helm": {("", "ConfigMap"), ("", "Service"), ("", "ServiceAccount"), ("apps", "Deployment"), ("batch", "Job"),
                     ("apiextensions.k8s.io", "CustomResourceDefinition"),
                     ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
                     ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
                     ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
                     ("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
                     ("rbac.authorization.k8s.io", "Role"), ("rbac.authorization.k8s.io", "RoleBinding")},
    "kube-prometheus-stack": {("", "ConfigMap"), ("", "Secret"), ("", "Service"), ("", "ServiceAccount"), ("apps", "Deployment"),
                              ("apps", "DaemonSet"), ("batch", "Job"), ("apiextensions.k8s.io", "CustomResourceDefinition"),
                              ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
                              ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
                              ("monitoring.coreos.com", "Alertmanager"), ("monitoring.coreos.com", "Prometheus"),
                              ("monitoring.coreos.com", "PrometheusRule"), ("monitoring.coreos.com", "ServiceMonitor"),
                              ("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
                              ("rbac.authorization.k8s.io", "Role"), ("rbac.authorization.k8s.io", "RoleBinding")},
    "opentelemetry-collector": {("", "ConfigMap"), ("", "Service"), ("", "ServiceAccount"), ("apps", "Deployment")},
    "jaeger": {("", "ConfigMap"), ("", "Service"), ("", "ServiceAccount"), ("apps", "Deployment")},
}
# Children the Argo CD UI must show under the platform's objects: test_argocd's table, where our CA and
# self-signed issuers sign without ACME and Prometheus and Alertmanager keep no claims, plus the operators'.
PLATFORM_CHILDREN = {
    **CHILD_KINDS,
    ("cert-manager.io", "CertificateRequest"): set(),
    ("apps", "StatefulSet"): {("apps", "ControllerRevision"), ("", "Pod")},
    ("apps", "DaemonSet"): {("apps", "ControllerRevision"), ("", "Pod")},
    ("monitoring.coreos.com", "Prometheus"): {("apps", "StatefulSet")},
    ("monitoring.coreos.com", "Alertmanager"): {("apps", "StatefulSet")},
}
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "APIService",
                  "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy",
                  "ValidatingAdmissionPolicyBinding", "GatewayClass", "ClusterIssuer", "ClusterSecretStore"}


def tracing() -> list[dict]:
    return [doc for doc in yaml.safe_load_all((PLATFORM / "optional" / "tracing.yaml").read_text()) if doc]


@pytest.fixture(scope="module")
def prod() -> list[dict]:
    return cluster_objects("prod")


@pytest.fixture(scope="module")
def projects(prod) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in prod if o["kind"] == "AppProject"}


@pytest.fixture(scope="module")
def charts(prod) -> list[dict]:
    """Every chart Application of the platform, the opt-in tracing included."""
    return [o for o in prod + tracing() if o["kind"] == "Application" and "chart" in o["spec"]["source"]]


@pytest.fixture(scope="module")
def config() -> list[dict]:
    return rendered_objects("argocd/platform/config")


def chart_problems(app: dict, project: dict) -> list[str]:
    """What would keep one chart Application from installing as we mean it to."""
    name, spec = app["metadata"]["name"], app["spec"]
    source, options = spec["source"], spec["syncPolicy"].get("syncOptions", [])
    problems = []
    if not EXACT.match(str(source.get("targetRevision", ""))):
        problems.append(f"{name}: chart {source['chart']} at {source.get('targetRevision')!r}, not an exact version")
    if not re.match(r"^(https://|[a-z0-9.-]+\.[a-z]+/)", source["repoURL"]):
        problems.append(f"{name}: {source['repoURL']} is neither an https chart repository nor an OCI registry")
    if source["repoURL"] not in project["spec"]["sourceRepos"]:
        problems.append(f"{name}: project {project['metadata']['name']} does not admit {source['repoURL']}")
    namespace = spec["destination"].get("namespace")
    if namespace not in {d["namespace"] for d in project["spec"]["destinations"]}:
        problems.append(f"{name}: namespace {namespace} is not a destination of project {project['metadata']['name']}")
    if "CreateNamespace=true" not in options:
        problems.append(f"{name}: no CreateNamespace=true")
    if source["chart"] in LARGE_CRDS and "ServerSideApply=true" not in options:
        problems.append(f"{name}: {source['chart']}'s CRDs need ServerSideApply=true")
    if "RespectIgnoreDifferences=true" not in options:
        problems.append(f"{name}: no RespectIgnoreDifferences=true: a sync would empty the CA bundles its controller injects")
    if spec["project"] != "platform" or (source.get("helm") or {}).get("releaseName") != name:
        problems.append(f"{name}: not in project platform, or its release is not named after it")
    return problems


def test_every_chart_is_pinned_and_admitted(charts, projects):
    assert {a["spec"]["source"]["chart"] for a in charts} == set(CHART_KINDS)
    assert [p for app in charts for p in chart_problems(app, projects["platform"])] == []


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("spec.source.targetRevision", "88.x", "not an exact version"),
    ("spec.source.targetRevision", "~88.5.0", "not an exact version"),
    ("spec.destination.namespace", "observability", "namespace observability is not a destination"),
    ("spec.syncPolicy.syncOptions", ["CreateNamespace=true"], "CRDs need ServerSideApply=true"),
    ("spec.syncPolicy.syncOptions", ["ServerSideApply=true"], "no CreateNamespace=true"),
    ("spec.source.repoURL", "oci://ghcr.io/prometheus-community/charts", "does not admit oci://"),
    ("spec.syncPolicy.syncOptions", ["CreateNamespace=true", "ServerSideApply=true"], "no RespectIgnoreDifferences"),
])
def test_chart_check_catches(field, value, expected, charts, projects):
    app = copy.deepcopy(next(a for a in charts if a["metadata"]["name"] == "kube-prometheus-stack"))
    *parents, last = field.split(".")
    node = app
    for part in parents:
        node = node[part]
    node[last] = value
    assert any(expected in p for p in chart_problems(app, projects["platform"])), chart_problems(app, projects["platform"])


def platform_kind_problems(project: dict, charts: list[dict], config: list[dict]) -> list[str]:
    """The platform project admits exactly what its charts and platform-config deploy, and their children."""
    deployed = {k for app in charts for k in CHART_KINDS[app["spec"]["source"]["chart"]]} | {group_kind(o) for o in config}
    deployed |= {("", "Namespace")}  # CreateNamespace
    needed, todo = set(), list(deployed)
    while todo:
        kind = todo.pop()
        if kind not in needed:
            needed.add(kind)
            todo.extend(PLATFORM_CHILDREN.get(kind, ()))
    cluster = {(e["group"], e["kind"]) for e in project["spec"]["clusterResourceWhitelist"]}
    namespaced = {(e["group"], e["kind"]) for e in project["spec"]["namespaceResourceWhitelist"]}
    want_cluster = {k for k in needed if k[1] in CLUSTER_SCOPED}
    want_namespaced = needed - want_cluster
    problems = [f"add to the cluster-scoped whitelist: {sorted(want_cluster - cluster)}"] if want_cluster - cluster else []
    problems += [f"remove from the cluster-scoped whitelist: {sorted(cluster - want_cluster)}"] if cluster - want_cluster else []
    problems += [f"add to the project: {sorted(want_namespaced - namespaced)}"] if want_namespaced - namespaced else []
    problems += [f"remove from the project: {sorted(namespaced - want_namespaced)}"] if namespaced - want_namespaced else []
    return problems


def test_platform_project_admits_exactly_its_kinds(projects, charts, config):
    assert platform_kind_problems(projects["platform"], charts, config) == []


def test_platform_kind_check_catches_a_missing_and_an_extra_kind(projects, charts, config):
    project = copy.deepcopy(projects["platform"])
    project["spec"]["clusterResourceWhitelist"] = [e for e in project["spec"]["clusterResourceWhitelist"]
                                                   if e["kind"] != "CustomResourceDefinition"]
    project["spec"]["namespaceResourceWhitelist"].append({"group": "networking.k8s.io", "kind": "Ingress"})
    problems = platform_kind_problems(project, charts, config)
    assert any("CustomResourceDefinition" in p and p.startswith("add") for p in problems), problems
    assert any("Ingress" in p and p.startswith("remove") for p in problems), problems


def namespace_problems(projects: dict[str, dict], charts: list[dict], config: list[dict]) -> list[str]:
    """Each project's destinations are exactly its own namespaces; no namespace is in both."""
    mine = {name: {d["namespace"] for d in p["spec"]["destinations"]} for name, p in projects.items()}
    used = {a["spec"]["destination"]["namespace"] for a in charts} | {
        o["metadata"]["namespace"] for o in config if "namespace" in o["metadata"]} | {"kube-system"}
    problems = [f"both projects admit {sorted(mine['platform'] & mine['voting-app'])}"] if mine["platform"] & mine["voting-app"] else []
    if mine["platform"] != used:
        problems.append(f"platform admits {sorted(mine['platform'])}, its Applications deploy to {sorted(used)}")
    return problems


def test_projects_keep_to_their_namespaces(projects, charts, config):
    assert namespace_problems(projects, charts, config) == []


def test_namespace_check_catches_a_shared_namespace(projects, charts, config):
    broken = copy.deepcopy(projects)
    broken["voting-app"]["spec"]["destinations"].append({"server": "https://kubernetes.default.svc", "namespace": "monitoring"})
    assert any("both projects admit ['monitoring']" in p for p in namespace_problems(broken, charts, config))


def dig(obj, path: str):
    for part in path.split("/"):
        obj = (obj or {}).get(part)
    return obj


# (chart, path under valuesObject, value): what the rest of the repository relies on.
VALUES = [
    ("metrics-server", "args", ["--kubelet-insecure-tls"]),
    ("cert-manager", "crds/enabled", True),
    ("cert-manager", "config/gatewayAPI/enabled", True),
    ("external-secrets", "installCRDs", True),
    ("keda", "crds/install", True),
    ("gateway-helm", "crds/enabled", True),
    ("kube-prometheus-stack", "prometheus/prometheusSpec/podMonitorSelectorNilUsesHelmValues", False),
    ("kube-prometheus-stack", "prometheus/prometheusSpec/ruleSelectorNilUsesHelmValues", False),
    ("kube-prometheus-stack", "prometheus/prometheusSpec/serviceMonitorSelectorNilUsesHelmValues", False),
    ("kube-prometheus-stack", "grafana/sidecar/dashboards/searchNamespace", "ALL"),
    ("kube-prometheus-stack", "grafana/sidecar/dashboards/label", "grafana_dashboard"),
    ("kube-prometheus-stack", "grafana/sidecar/dashboards/labelValue", "1"),
    ("opentelemetry-collector", "fullnameOverride", "otel-collector"),
]


def values_problems(charts: list[dict]) -> list[str]:
    by_chart = {a["spec"]["source"]["chart"]: a["spec"]["source"]["helm"]["valuesObject"] for a in charts}
    return [f"{chart}: {path} is {dig(by_chart[chart], path)!r}, not {want!r}"
            for chart, path, want in VALUES if dig(by_chart[chart], path) != want]


def test_chart_values_that_others_rely_on(charts):
    assert values_problems(charts) == []
    kps = next(a for a in charts if a["metadata"]["name"] == "kube-prometheus-stack")
    assert (kps["spec"]["source"]["helm"]["releaseName"], kps["spec"]["destination"]["namespace"]) == (
        "kube-prometheus-stack", "monitoring")
    collector = next(a for a in charts if a["metadata"]["name"] == "otel-collector")
    assert collector["spec"]["destination"]["namespace"] == "monitoring"  # http://otel-collector.monitoring:4318


def test_values_check_catches_a_dropped_value(charts):
    broken = copy.deepcopy(charts)
    app = next(a for a in broken if a["metadata"]["name"] == "metrics-server")
    app["spec"]["source"]["helm"]["valuesObject"]["args"] = []
    assert values_problems(broken) == ["metrics-server: args is [], not ['--kubelet-insecure-tls']"]


def test_tracing_is_opt_in():
    listed = yaml.safe_load((PLATFORM / "kustomization.yaml").read_text())["resources"]
    assert not any(r.startswith("optional") for r in listed)
    assert {a["metadata"]["name"] for a in tracing()} == {"otel-collector", "jaeger"}


def order_problems(prod: list[dict]) -> list[str]:
    """platform-config syncs after every controller, skips the dry run of kinds not yet installed; prod comes last."""
    apps = {o["metadata"]["name"]: o for o in prod if o["kind"] == "Application"}

    def wave(app):
        return int(app["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0"))

    config = apps["platform-config"]
    controllers = [a for a in apps.values() if "chart" in a["spec"]["source"]]
    problems = [f"platform-config (wave {wave(config)}) is not after {a['metadata']['name']} (wave {wave(a)})"
                for a in controllers if wave(a) >= wave(config)]
    if "SkipDryRunOnMissingResource=true" not in config["spec"]["syncPolicy"].get("syncOptions", []):
        problems.append("platform-config lacks SkipDryRunOnMissingResource=true")
    if wave(apps["voting-app-prod"]) <= wave(config):
        problems.append("voting-app-prod does not come after platform-config")
    return problems


def test_platform_config_after_the_controllers_and_prod_last(prod):
    assert order_problems(prod) == []


def test_order_check_catches_config_with_the_controllers(prod):
    broken = copy.deepcopy(prod)
    config = next(o for o in broken if o["metadata"]["name"] == "platform-config")
    config["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] = "1"
    config["spec"]["syncPolicy"]["syncOptions"] = []
    problems = order_problems(broken)
    assert "platform-config (wave 1) is not after cert-manager (wave 1)" in problems
    assert "platform-config lacks SkipDryRunOnMissingResource=true" in problems


# EnvoyProxy has no schema package (tools/crd-schemas): the fields we set, read from Envoy Gateway's
# api/v1alpha1 (KubernetesServiceSpec, KubernetesPatchSpec) at the pinned version.
ENVOY_SERVICE_FIELDS = {"annotations", "labels", "type", "loadBalancerClass", "allocateLoadBalancerNodePorts",
                        "loadBalancerSourceRanges", "loadBalancerIP", "externalTrafficPolicy", "patch", "name"}


def gateway_problems(config: list[dict]) -> list[str]:
    """GatewayClass envoy-gateway points at an EnvoyProxy whose Service is a NodePort with HTTPS on 30443."""
    (gc,) = [o for o in config if o["kind"] == "GatewayClass"]
    problems = []
    if (gc["metadata"]["name"], gc["spec"].get("controllerName")) != (
            "envoy-gateway", "gateway.envoyproxy.io/gatewayclass-controller"):
        problems.append("GatewayClass is not envoy-gateway with Envoy Gateway's controllerName")
    ref = gc["spec"].get("parametersRef") or {}
    proxies = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in config if o["kind"] == "EnvoyProxy"}
    proxy = proxies.get((ref.get("namespace"), ref.get("name")))
    if proxy is None or (ref.get("group"), ref.get("kind")) != ("gateway.envoyproxy.io", "EnvoyProxy"):
        return problems + [f"parametersRef {ref} names no EnvoyProxy of platform-config"]
    provider = proxy["spec"].get("provider") or {}
    service = (provider.get("kubernetes") or {}).get("envoyService") or {}
    problems += [f"EnvoyProxy envoyService: {k} is not a field" for k in sorted(set(service) - ENVOY_SERVICE_FIELDS)]
    if provider.get("type") != "Kubernetes" or service.get("type") != "NodePort":
        problems.append(f"the proxy Service is {service.get('type')}, not NodePort")
    patch = service.get("patch") or {}
    ports = dig(patch.get("value"), "spec/ports") or []
    if patch.get("type", "StrategicMerge") != "StrategicMerge" or {"port": 443, "nodePort": 30443} not in ports:
        problems.append(f"the proxy Service's port 443 is not patched to nodePort 30443: {patch}")
    return problems


def test_gateway_class_makes_a_nodeport_proxy(config):
    assert gateway_problems(config) == []


@pytest.mark.parametrize(("change", "expected"), [
    (lambda s: s.update(type="Nodeport"), "not NodePort"),
    (lambda s: s["patch"]["value"]["spec"]["ports"][0].update(nodePort=30080), "not patched to nodePort 30443"),
    (lambda s: s.update(servicePatch={}), "servicePatch is not a field"),
])
def test_gateway_check_catches(change, expected, config):
    broken = copy.deepcopy(config)
    proxy = next(o for o in broken if o["kind"] == "EnvoyProxy")
    change(proxy["spec"]["provider"]["kubernetes"]["envoyService"])
    assert any(expected in p for p in gateway_problems(broken)), gateway_problems(broken)


def chain_problems(config: list[dict]) -> list[str]:
    """Self-signed issuer -> CA Certificate in cert-manager -> ClusterIssuer voting-app; the store reads voting-app-secrets."""
    named = {(o["kind"], o["metadata"]["name"]): o for o in config}
    problems = []
    ca = named.get(("Certificate", "voting-app-local-ca"))
    issuer = named.get(("ClusterIssuer", "voting-app"))
    if not ca or ca["metadata"].get("namespace") != "cert-manager" or not ca["spec"].get("isCA"):
        return ["no CA Certificate voting-app-local-ca in cert-manager"]
    signer = ca["spec"]["issuerRef"]
    if "selfSigned" not in (named.get((signer.get("kind"), signer["name"])) or {}).get("spec", {}):
        problems.append(f"the CA is signed by {signer}, not a self-signed issuer of platform-config")
    if not issuer or (issuer["spec"].get("ca") or {}).get("secretName") != ca["spec"]["secretName"]:
        problems.append("ClusterIssuer/voting-app does not sign with the CA's secret")
    store = dig(named.get(("ClusterSecretStore", "voting-app")), "spec/provider/kubernetes") or {}
    account = dig(store, "auth/serviceAccount") or {}
    bound = any(o["kind"] == "RoleBinding" and {"kind": "ServiceAccount", **account} in o["subjects"] for o in config)
    if store.get("remoteNamespace") != "voting-app-secrets" or account.get("namespace") != "voting-app-secrets" or not bound:
        problems.append("ClusterSecretStore/voting-app does not read voting-app-secrets with a bound ServiceAccount")
    if dig(store, "server/caProvider/name") != "kube-root-ca.crt":
        problems.append("ClusterSecretStore/voting-app does not trust the API server through kube-root-ca.crt")
    return problems


def test_issuer_chain_and_secret_store(config):
    assert chain_problems(config) == []


def test_chain_check_catches_a_store_whose_account_is_not_bound(config):
    broken = copy.deepcopy(config)
    store = next(o for o in broken if o["kind"] == "ClusterSecretStore")
    store["spec"]["provider"]["kubernetes"]["auth"]["serviceAccount"]["name"] = "default"
    issuer = next(o for o in broken if (o["kind"], o["metadata"]["name"]) == ("ClusterIssuer", "voting-app"))
    issuer["spec"]["ca"]["secretName"] = "voting-app-ca"
    assert chain_problems(broken) == [
        "ClusterIssuer/voting-app does not sign with the CA's secret",
        "ClusterSecretStore/voting-app does not read voting-app-secrets with a bound ServiceAccount"]


def test_platform_config_builtins_match_the_kubernetes_schema(config, prod):
    builtins = [o for o in config + prod if o["kind"] in ("Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap")]
    assert {o["kind"] for o in builtins} == {"Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap"}
    assert schema_problems(builtins) == []
    broken = copy.deepcopy(next(o for o in builtins if o["kind"] == "RoleBinding"))
    broken["subjects"][0]["serviceAccount"] = "secret-reader"
    assert schema_problems([broken]) != []


def test_the_namespace_that_holds_the_secrets_is_never_pruned(config):
    (namespace,) = [o for o in config if o["kind"] == "Namespace"]
    assert namespace["metadata"]["name"] == "voting-app-secrets"
    options = namespace["metadata"]["annotations"]["argocd.argoproj.io/sync-options"].split(",")
    assert {"Prune=false", "Delete=false"} <= set(options)


# Where the platform's controllers inject a CA bundle after install (cert-manager's cainjector, the
# kube-prometheus-stack and Envoy Gateway certgen jobs, KEDA's and External Secrets' cert controllers).
INJECTED = {
    "admissionregistration.k8s.io_MutatingWebhookConfiguration": ".webhooks[]?.clientConfig.caBundle",
    "admissionregistration.k8s.io_ValidatingWebhookConfiguration": ".webhooks[]?.clientConfig.caBundle",
    "apiregistration.k8s.io_APIService": "/spec/caBundle",
    "apiextensions.k8s.io_CustomResourceDefinition": ".spec.conversion.webhook.clientConfig.caBundle",
}


def ignored_problems(cm: dict) -> list[str]:
    """Argo CD ignores every injected CA bundle (else the platform stays OutOfSync and self-heal empties them)."""
    problems = []
    for kind, path in INJECTED.items():
        rule = yaml.safe_load(cm.get(f"resource.customizations.ignoreDifferences.{kind}") or "{}") or {}
        if path not in rule.get("jqPathExpressions", []) + rule.get("jsonPointers", []):
            problems.append(f"{kind}: {path} is not ignored")
    return problems


def argocd_cm() -> dict:
    return yaml.safe_load((REPO / "terraform" / "values" / "argocd.yaml").read_text())["configs"]["cm"]


def test_injected_ca_bundles_are_ignored():
    assert ignored_problems(argocd_cm()) == []


def test_ignored_check_catches_a_missing_rule():
    cm = dict(argocd_cm())
    del cm["resource.customizations.ignoreDifferences.apiregistration.k8s.io_APIService"]
    assert ignored_problems(cm) == ["apiregistration.k8s.io_APIService: /spec/caBundle is not ignored"]
