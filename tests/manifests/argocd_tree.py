"""The sync of a whole cluster: the root Application's waves, each child Application judged as Argo CD would.

argocd_model walks one Application's sync. Here the root app-of-apps is walked with it, and each
child Application it applies gets the health that the Lua check in `terraform/values/argocd.yaml`
reads (`resource.customizations.health.argoproj.io_Application`: the child's own
`status.health.status`, Progressing until it has one; without that check an Application has no
health and the root's waves do not wait for it, as since Argo CD 1.8). A child's health is:

| child | its health here |
| --- | --- |
| a Helm chart of the platform (`spec.source.chart`) | Healthy once synced, which installs the CRDs of `PROVIDES`; Degraded when a kind it needs at start (`NEEDS`) comes from a child not yet Healthy when it starts |
| a path of this repository | its own sync walked with argocd_model on what the cluster has then: a custom kind whose CRD no Healthy child has installed is not applied (Missing: `SkipDryRunOnMissingResource` skips only the dry run); a cluster-scoped store or issuer comes only from platform-config |
| either, when its project does not exist yet or does not admit its source or destination | Unknown (Argo CD's InvalidSpecError) |

A child starts when the root applies it, with the kinds installed by the children that were Healthy
before that wave: children of one wave start together.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import argocd_render
from argocd_model import ARGOCD, HEALTH_ORDER, PLATFORM_KINDS, Cluster, SyncResult, key, simulate
from manifest_render import REPO, is_custom

LUA_KEY = "resource.customizations.health.argoproj.io_Application"
# What each platform chart installs: the kinds of its CRDs, served once its Application is Healthy.
PROVIDES = {
    "gateway-helm": {"GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "ReferenceGrant", "BackendTLSPolicy",
                     "EnvoyProxy", "ClientTrafficPolicy", "BackendTrafficPolicy", "SecurityPolicy",
                     "EnvoyExtensionPolicy", "EnvoyPatchPolicy", "Backend", "HTTPRouteFilter"},
    "cert-manager": {"Certificate", "CertificateRequest", "Issuer", "ClusterIssuer", "Order", "Challenge"},
    "external-secrets": {"ExternalSecret", "SecretStore", "ClusterSecretStore", "ClusterExternalSecret", "PushSecret"},
    "keda": {"ScaledObject", "ScaledJob", "TriggerAuthentication", "ClusterTriggerAuthentication"},
    "kube-prometheus-stack": {"ServiceMonitor", "PodMonitor", "PrometheusRule", "Prometheus", "Alertmanager",
                              "Probe", "ScrapeConfig", "AlertmanagerConfig", "ThanosRuler", "PrometheusAgent"},
    "metrics-server": set(),
    "opentelemetry-collector": set(),
    "jaeger": set(),
}
# Kinds a chart's controller needs when it starts: cert-manager's Gateway API support watches Gateways
# and HTTPRoutes from start-up and does not pick them up if their CRDs arrive later.
NEEDS = {"cert-manager": {"Gateway", "HTTPRoute"}}


def application_health_check(values: Path = REPO / "terraform" / "values" / "argocd.yaml") -> bool:
    """Whether the Argo CD that Terraform installs judges Applications (the Lua check is configured)."""
    config = ((yaml.safe_load(values.read_text()) or {}).get("configs") or {}).get("cm") or {}
    return "obj.status.health.status" in (config.get(LUA_KEY) or "")


@dataclass
class Child:
    """What one child Application did during the root's sync."""

    health: str
    why: str
    sync: SyncResult | None = None


def permitted(app: dict, project: dict | None) -> str | None:
    """Why the project refuses this Application, or None."""
    if project is None:
        return f"AppProject/{app['spec']['project']} does not exist yet"
    spec, source = project["spec"], app["spec"]["source"]
    if source.get("repoURL") not in spec.get("sourceRepos", []) and "*" not in spec.get("sourceRepos", []):
        return f"source {source.get('repoURL')} is not permitted in project {project['metadata']['name']}"
    namespace = app["spec"]["destination"].get("namespace")
    if namespace and namespace not in {d.get("namespace") for d in spec.get("destinations", [])}:
        return f"destination namespace {namespace} is not permitted in project {project['metadata']['name']}"
    return None


class PlatformCluster(Cluster):
    """One child Application's cluster: only the CRDs and platform objects installed so far exist."""

    def __init__(self, tasks, load_balancer, argocd, *, installed: set[str] = frozenset(),
                 platform_objects: set[tuple] = frozenset(), providers: dict[str, str] | None = None):
        super().__init__(tasks, load_balancer, argocd)
        self.installed, self.platform_objects, self.providers = set(installed), set(platform_objects), providers or {}

    def health(self, obj: dict):
        kind, spec = obj["kind"], obj.get("spec") or {}
        if is_custom(obj) and kind not in self.installed:
            came = self.providers.get(kind, "no Application of the platform")
            return "Missing", f"{kind} is not installed: its CRD comes with {came}, not Healthy when this sync ran"
        if kind == "ClusterIssuer" and (spec.get("ca") or {}).get("secretName"):
            gone = self.missing({("Secret", spec["ca"]["secretName"])})
            return ("Degraded", "Ready=False: " + "; ".join(gone)) if gone else ("Healthy", "Ready")
        if kind in ("ClusterSecretStore", "SecretStore"):
            account = (((spec.get("provider") or {}).get("kubernetes") or {}).get("auth") or {}).get("serviceAccount")
            gone = self.missing({("ServiceAccount", account["name"])}) if account else []
            return ("Degraded", "Ready=False: " + "; ".join(gone)) if gone else ("Healthy", "Ready")
        return super().health(obj)

    def _platform(self, ref_: dict, default_kind: str) -> list[str]:
        kind, name = ref_.get("kind") or default_kind, ref_.get("name")
        if kind in PLATFORM_KINDS and (kind, name) not in self.rendered and (kind, name) not in self.platform_objects:
            return [f"{kind}/{name} does not exist (platform-config makes it)"]
        return super()._platform(ref_, default_kind)


def platform_cluster(installed: set[str], platform_objects: set[tuple], providers: dict[str, str]):
    """What simulate() calls to make a PlatformCluster that sees this moment's installed kinds and platform objects."""
    return functools.partial(PlatformCluster, installed=installed, platform_objects=platform_objects, providers=providers)


class RootCluster(Cluster):
    """The root Application's cluster: each child Application is judged by replaying it."""

    def __init__(self, tasks, load_balancer, argocd, *, lua: bool = True):
        super().__init__(tasks, load_balancer, argocd)
        self.lua = lua
        self.installed: set[str] = set()
        self.platform_objects: set[tuple] = set()
        self.providers = {kind: f"Application/{t.obj['metadata']['name']}" for t in tasks if t.obj["kind"] == "Application"
                          for kind in PROVIDES.get(t.obj["spec"]["source"].get("chart"), ())}
        self.started: dict[str, tuple] = {}
        self.children: dict[str, Child] = {}

    def apply(self, obj: dict) -> None:
        super().apply(obj)
        if obj["kind"] == "Application":
            self.started[obj["metadata"]["name"]] = (set(self.installed), set(self.platform_objects))

    def health(self, obj: dict):
        if obj["kind"] != "Application":
            return super().health(obj)
        child = self.child(obj)
        if not self.lua:
            return None, f"no health check (its own health is {child.health})"
        return child.health, child.why

    def child(self, app: dict) -> Child:
        name = app["metadata"]["name"]
        if name not in self.children:
            self.children[name] = self._replay(app)
            if self.children[name].health == "Healthy" and self.lua:
                self._installs(app)
        return self.children[name]

    def _installs(self, app: dict) -> None:
        self.installed |= PROVIDES.get(app["spec"]["source"].get("chart"), set())
        result = self.children[app["metadata"]["name"]].sync
        if result is not None:
            self.platform_objects |= {tuple(r.split("/", 1)) for r in result.health if r.split("/")[0] in PLATFORM_KINDS}

    def _replay(self, app: dict) -> Child:
        name = app["metadata"]["name"]
        project = self.live.get(("AppProject", app["spec"]["project"]))
        refused = permitted(app, project)
        if refused:
            return Child("Unknown", f"InvalidSpecError: {refused}")
        installed, platform_objects = self.started.get(name, (set(), set()))
        source = app["spec"]["source"]
        if source.get("chart"):
            lacking = sorted(NEEDS.get(source["chart"], set()) - installed)
            if lacking:
                came = sorted({self.providers.get(k, "nothing") for k in lacking})
                return Child("Degraded", f"started before {', '.join(lacking)} existed ({', '.join(came)} was not Healthy"
                                         " yet): its controller runs without them")
            return Child("Healthy", f"chart {source['chart']} {source.get('targetRevision')} synced")
        objects = argocd_render.build(app)
        kind = platform_cluster(installed, platform_objects, self.providers)
        result = simulate(objects, load_balancer=self.load_balancer, argocd=self.argocd, cluster_type=kind)
        if not result.finished:
            worst = max([result.app_health, "Missing"], key=HEALTH_ORDER.index)
            return Child(worst, "its sync did not finish: " + "; ".join(result.problems), result)
        why = "synced" if result.app_health == "Healthy" else "; ".join(result.warnings)
        return Child(result.app_health, why, result)


@dataclass
class TreeResult:
    """The root's sync and what each child Application did."""

    root: SyncResult
    children: dict[str, Child] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        return self.root.problems + [f"Application/{n} ends {c.health}: {c.why}" for n, c in self.children.items()
                                     if c.health not in ("Healthy", "Progressing") or (c.sync and c.sync.problems)]

    def report(self) -> str:
        lines = [self.root.report()]
        lines += [f"Application/{n}: {c.health} ({c.why})" for n, c in self.children.items()]
        return "\n".join(lines)


def replay(objects: list[dict], *, lua: bool | None = None, load_balancer: bool = False,
           argocd: tuple[int, int] = ARGOCD) -> TreeResult:
    """Walk the root Application's sync of these objects and every child it applies."""
    holder: list[RootCluster] = []

    def make(tasks, lb, version):
        holder.append(RootCluster(tasks, lb, version, lua=application_health_check() if lua is None else lua))
        return holder[0]

    result = simulate(objects, load_balancer=load_balancer, argocd=argocd, cluster_type=make)
    cluster = holder[0]
    for task in cluster.tasks:
        if task.obj["kind"] == "Application" and key(task.obj) in cluster.live:
            cluster.child(task.obj)
    return TreeResult(result, cluster.children)
