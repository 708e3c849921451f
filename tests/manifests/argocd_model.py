"""An offline model of how Argo CD syncs one Application wave by wave and judges its health.

Each rule restates in our words what the named upstream file does: gitops-engine `pkg/...`
(vendored in argo-cd as `gitops-engine/pkg/...`), argo-cd `resource_customizations/<group>/<Kind>/health.lua`.
It follows Argo CD v3.1 (`ARGOCD`, what terraform's chart 8.5.0 installs); `argocd=` selects the
two later changes it knows: the CronJob health check (3.2) and HPA metric failures ranked first (3.5).

| rule | upstream |
| --- | --- |
| tasks sort by phase (PreSync, Sync, PostSync), wave, kind (Helm's order), name; a Namespace joins the first wave of what lives in it | `pkg/sync/sync_tasks.go` |
| the wave is the `sync-wave` annotation, else 0 | `pkg/sync/syncwaves/waves.go` |
| a hook runs in each phase its `hook` annotation names; `Skip` is never applied; SyncFail runs only on failure | `pkg/sync/hook/hook.go`, `pkg/sync/sync_phase.go` |
| a wave is applied, then the sync waits until each of its tasks is Healthy or has no health check | `pkg/sync/sync_context.go` (`Sync`) |
| a Degraded resource, or a Degraded or Unknown hook, fails the operation; anything else not Healthy waits | `pkg/sync/sync_context.go` (`Sync`, `getOperationPhase`) |
| the last wave is not awaited unless it holds a hook; then all its tasks are (when there are several waves) | `pkg/sync/sync_context.go` (`Sync`, `multiStep`) |
| app health: the worst of Healthy < Suspended < Progressing < Missing < Degraded < Unknown over live non-hook resources; no health check, not created yet, `ignore-healthcheck` do not count | `pkg/health/health.go`, argo-cd `controller/health.go` |
| PVC: Bound Healthy, Pending Progressing; Service: Healthy, type LoadBalancer without an address Progressing; Ingress: Healthy only with a load-balancer address | `pkg/health/health_pvc.go`, `health_service.go`, `health_ingress.go` |
| Deployment: paused Suspended, unavailable replicas Progressing, ProgressDeadlineExceeded Degraded; StatefulSet, DaemonSet, ReplicaSet: Progressing until ready | `pkg/health/health_deployment.go`, `health_statefulset.go`, `health_daemonset.go`, `health_replicaset.go` |
| Job: Progressing until Complete (Healthy) or Failed (Degraded, e.g. `activeDeadlineSeconds`); Pod: Pending Progressing | `pkg/health/health_job.go`, `health_pod.go` |
| HPA: conditions in order; AbleToScale=True, set first once the target is found, is Healthy even when metrics fail (3.5: a metric failure anywhere is Degraded); FailedGetScale Degraded | `pkg/health/health_hpa.go` |
| APIService: Healthy when Available | `pkg/health/health_apiservice.go` |
| CronJob: no health check (3.2: Healthy before its first run and when suspended); PodDisruptionBudget: Healthy once observed (InsufficientPods accepted) | `batch/CronJob/health.lua`, `policy/PodDisruptionBudget/health.lua` |
| ScaledObject: Ready Healthy, Ready=False Degraded, Paused Suspended | `keda.sh/ScaledObject/health.lua` |
| ExternalSecret, SecretStore, ClusterSecretStore: Ready Healthy, Ready=False Degraded | `external-secrets.io/<Kind>/health.lua` |
| Certificate: Issuing Progressing, Ready Healthy; Issuer, ClusterIssuer: Ready Healthy | `cert-manager.io/<Kind>/health.lua` |
| Gateway: Progressing until Programmed (an address), then a listener whose certificate Secret is missing Degraded (ResolvedRefs=False); HTTPRoute: Progressing until a parent reports, ResolvedRefs=False (a backend is missing) or Accepted=False (no such listener, no common hostname) Degraded, else Healthy; gateway.envoyproxy.io policies: no health check | `gateway.networking.k8s.io/<Kind>/health.lua`; cert-manager's gateway-shim makes a Certificate for each TLS listener of a Gateway annotated with an issuer, whatever the Gateway's health |
| no health check: argoproj.io Application (removed in 1.8) and AppProject, TriggerAuthentication, ServiceMonitor, PodMonitor, PrometheusRule, ConfigMap, Secret, ... | argo-cd `docs/operator-manual/health.md`; no Lua file |

The cold cluster it assumes: nothing has run yet. Every storage class binds on first
consumer (WaitForFirstConsumer: kind's `standard`, the GKE/EKS/AKS defaults),
so a claim binds only when a pod that mounts it is created; a CronJob creates no pod during
a sync; a StatefulSet's claim templates are bound by its own pods. No load balancer publishes
an address (bare metal) unless `load_balancer=True`. No metrics exist yet. The platform's
controllers (KEDA, External Secrets, cert-manager, the Gateway implementation) are installed
and work: a cluster-scoped store or issuer the Application does not render is the platform's
and exists, the store holds the keys asked for, an ACME HTTP-01 challenge can be reached.
A pod is created once its owner and its ServiceAccount exist; it runs (and a Job completes)
once every non-optional ConfigMap and Secret it reads exists and every claim it mounts is bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WAVE = "argocd.argoproj.io/sync-wave"
HOOK = "argocd.argoproj.io/hook"
IGNORE_HEALTH = "argocd.argoproj.io/ignore-healthcheck"
ARGOCD = (3, 1)
ARGOCD_CHART = "8.5.0"
PHASES = ("PreSync", "Sync", "PostSync")
HEALTH_ORDER = ("Healthy", "Suspended", "Progressing", "Missing", "Degraded", "Unknown")
KIND_ORDER = (
    "Namespace NetworkPolicy ResourceQuota LimitRange PodSecurityPolicy PodDisruptionBudget "
    "ServiceAccount Secret SecretList ConfigMap StorageClass PersistentVolume PersistentVolumeClaim "
    "CustomResourceDefinition ClusterRole ClusterRoleList ClusterRoleBinding ClusterRoleBindingList "
    "Role RoleList RoleBinding RoleBindingList Service DaemonSet Pod ReplicationController ReplicaSet "
    "Deployment HorizontalPodAutoscaler StatefulSet Job CronJob IngressClass Ingress APIService"
).split()
FIXED = {
    "PodDisruptionBudget": ("Healthy", "observed (InsufficientPods is accepted)"),
    **dict.fromkeys(("SecretStore", "ClusterSecretStore", "Issuer", "ClusterIssuer"), ("Healthy", "Ready")),
}
POD_OWNERS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod"}
PLATFORM_KINDS = {"ClusterSecretStore", "ClusterIssuer", "ClusterTriggerAuthentication", "GatewayClass"}


def ref(obj: dict) -> str:
    """`Kind/name`, as every message names an object."""
    return f"{obj['kind']}/{obj['metadata']['name']}"


def key(obj: dict) -> tuple[str, str]:
    """How the cluster finds an object: by kind and name (one namespace per Application)."""
    return (obj["kind"], obj["metadata"]["name"])


def pod_spec(obj: dict) -> dict | None:
    """The pod spec an object runs or schedules, if any."""
    spec = obj.get("spec") or {}
    if obj["kind"] == "Pod":
        return spec
    if obj["kind"] == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec")


def pod_needs(spec: dict) -> tuple[set, set]:
    """The non-optional ConfigMaps/Secrets a pod reads and the claims it mounts, as (kind, name)."""
    reads, claims = set(), set()

    def add(kind, source, key="name"):
        if source and not source.get("optional"):
            reads.add((kind, source.get(key)))

    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for env in c.get("envFrom") or []:
            add("ConfigMap", env.get("configMapRef"))
            add("Secret", env.get("secretRef"))
        for env in c.get("env") or []:
            add("ConfigMap", (env.get("valueFrom") or {}).get("configMapKeyRef"))
            add("Secret", (env.get("valueFrom") or {}).get("secretKeyRef"))
    for vol in spec.get("volumes") or []:
        add("ConfigMap", vol.get("configMap"))
        add("Secret", vol.get("secret"), "secretName")
        for source in (vol.get("projected") or {}).get("sources") or []:
            add("ConfigMap", source.get("configMap"))
            add("Secret", source.get("secret"))
        if vol.get("persistentVolumeClaim"):
            claims.add(("PersistentVolumeClaim", vol["persistentVolumeClaim"]["claimName"]))
    return reads, claims


@dataclass
class Task:
    """One object applied in one phase and wave."""

    obj: dict
    phase: str
    wave: int
    hook: bool

    @property
    def ref(self) -> str:
        return ref(self.obj)

    @property
    def step(self) -> tuple:
        return (PHASES.index(self.phase), self.wave)

    @property
    def key(self) -> tuple:
        return (*self.step, KIND_ORDER.index(self.obj["kind"]) - len(KIND_ORDER)
                if self.obj["kind"] in KIND_ORDER else 0, self.obj["metadata"]["name"])


def label(phase: str, wave: int) -> str:
    """How a message names a wave: `wave 2`, or `PostSync wave 0` outside the Sync phase."""
    return f"wave {wave}" if phase == "Sync" else f"{phase} wave {wave}"


def sync_tasks(objects: list[dict]) -> list[Task]:
    """Every task of a sync, in the order Argo CD runs them."""
    tasks = []
    for obj in objects:
        notes = obj["metadata"].get("annotations") or {}
        try:
            wave = int(notes.get(WAVE, "0"))
        except ValueError:
            wave = 0
        types = [t.strip() for t in notes[HOOK].split(",")] if HOOK in notes else []
        if types == ["Skip"]:
            continue
        phases = [p for p in PHASES if p in types] if types else ["Sync"]
        tasks += [Task(obj, phase, wave, bool(types)) for phase in phases]
    tasks.sort(key=lambda t: t.key)
    for ns in [t for t in tasks if t.obj["kind"] == "Namespace"]:
        first = next((t for t in tasks if t.obj["metadata"].get("namespace") == ns.obj["metadata"]["name"]), None)
        if first is not None and first.key < ns.key:
            ns.phase, ns.wave = first.phase, first.wave
    tasks.sort(key=lambda t: t.key)
    return tasks


class Cluster:
    """The live state of a cold cluster as the sync applies objects and controllers react."""

    def __init__(self, tasks: list[Task], load_balancer: bool, argocd: tuple[int, int]):
        self.tasks = tasks
        self.load_balancer = load_balancer
        self.argocd = argocd
        self.live: dict[tuple, dict] = {}
        self.bound: set[tuple] = set()
        self.made: dict[tuple, str] = {}
        self.rendered = {key(t.obj) for t in tasks}

    def apply(self, obj: dict) -> None:
        self.live[key(obj)] = obj

    def exists(self, kind: str, name: str) -> bool:
        return (kind, name) in self.live or (kind, name) in self.made or (kind, name) == ("ServiceAccount", "default")

    def where(self, kind: str, name: str) -> str:
        """Why an object the sync needs does not exist (yet)."""
        gone = f"{kind}/{name} does not exist"
        if (kind, name) in self.rendered:
            t = next(t for t in self.tasks if key(t.obj) == (kind, name))
            return f"{gone} (it is in {label(t.phase, t.wave)})"
        for t in (t for t in self.tasks if (kind, name) in self.makes(t.obj)):
            if key(t.obj) in self.live:
                return f"{gone} ({t.ref} is {': '.join(self.health(t.obj))})"
            return f"{gone} ({t.ref} is in {label(t.phase, t.wave)})"
        return f"{gone} (not rendered)"

    @staticmethod
    def makes(obj: dict) -> set[tuple]:
        """What a controller creates from this object once it is Healthy."""
        spec = obj.get("spec") or {}
        if obj["kind"] == "ExternalSecret":
            return {("Secret", (spec.get("target") or {}).get("name") or obj["metadata"]["name"])}
        if obj["kind"] == "Certificate" and spec.get("secretName"):
            return {("Secret", spec["secretName"])}
        return set()

    def missing(self, needs) -> list[str]:
        return [self.where(kind, name) for kind, name in sorted(needs) if not self.exists(kind, name)]

    def pod_blockers(self, obj: dict) -> tuple[list[str], list[str]]:
        """Why no pod of this object is created, and why its pods cannot run."""
        spec = pod_spec(obj) or {}
        account = spec.get("serviceAccountName") or "default"
        not_created = self.missing({("ServiceAccount", account)})
        reads, claims = pod_needs(spec)
        cannot_run = self.missing(reads | claims)
        cannot_run += [f"PersistentVolumeClaim/{n} is not bound" for k, n in sorted(claims)
                       if self.exists(k, n) and (k, n) not in self.bound]
        return not_created, cannot_run

    def settle(self) -> None:
        """Let the controllers act until nothing changes: secrets are made, claims bind."""
        changed = True
        while changed:
            changed = False
            for obj in list(self.live.values()):
                changed |= self.add_shim_certificates(obj)
                if self.health(obj)[0] == "Healthy":
                    for made in self.makes(obj) - set(self.made):
                        self.made[made] = ref(obj)
                        changed = True
                if obj["kind"] in POD_OWNERS and not self.pod_blockers(obj)[0]:
                    for claim in pod_needs(pod_spec(obj) or {})[1]:
                        if claim in self.live and claim not in self.bound:
                            self.bound.add(claim)
                            changed = True

    def health(self, obj: dict) -> tuple[str | None, str]:
        """The health Argo CD would show for a live object, with the reason; None: no health check."""
        kind, spec = obj["kind"], obj.get("spec") or {}
        if kind in FIXED:
            return FIXED[kind]
        check = getattr(self, f"_{kind.lower()}", None)
        return check(obj, spec) if check else (None, "no health check")

    def _workload(self, obj: dict, spec: dict) -> str | None:
        """Why a workload's pods are not all running, or None when they are."""
        if spec.get("replicas", 1) == 0:
            return None
        not_created, cannot_run = self.pod_blockers(obj)
        if not_created:
            return "no pod is created: " + "; ".join(not_created)
        if cannot_run:
            return "its pods cannot start: " + "; ".join(cannot_run)
        return None

    def _deployment(self, obj, spec):
        if spec.get("paused"):
            return "Suspended", "Deployment is paused"
        why = self._workload(obj, spec)
        if why:
            deadline = spec.get("progressDeadlineSeconds", 600)
            return "Degraded", f"{why}; ProgressDeadlineExceeded after {deadline} s"
        return "Healthy", "all replicas available"

    def _statefulset(self, obj, spec):
        why = self._workload(obj, spec)
        return ("Progressing", why) if why else ("Healthy", "all pods ready")

    _daemonset = _replicaset = _statefulset

    def _pod(self, obj, spec):
        why = self._workload(obj, {})
        return ("Progressing", f"Pending: {why}") if why else ("Healthy", "ready or succeeded")

    def _job(self, obj, spec):
        if spec.get("suspend"):
            return "Suspended", "Job is suspended"
        why = self._workload(obj, {})
        if why and spec.get("activeDeadlineSeconds"):
            return "Degraded", f"{why}; DeadlineExceeded after {spec['activeDeadlineSeconds']} s"
        return ("Progressing", why) if why else ("Healthy", "complete (its command is assumed to succeed)")

    def _cronjob(self, obj, spec):
        return ("Healthy", "not scheduled yet") if self.argocd >= (3, 2) else (None, "no health check")

    def _persistentvolumeclaim(self, obj, spec):
        if key(obj) in self.bound:
            return "Healthy", "Bound"
        claim = key(obj)
        here = next(t for t in self.tasks if t.obj is obj)
        consumers = [t for t in self.tasks if claim in pod_needs(pod_spec(t.obj) or {})[1]]
        details = []
        for t in consumers:
            if t.obj["kind"] == "CronJob":
                details.append(f"{t.ref} creates pods only on schedule")
            elif key(t.obj) not in self.live:
                details.append(f"{t.ref} is in {label(t.phase, t.wave)}")
            else:
                details.append(f"{t.ref}: {'; '.join(self.pod_blockers(t.obj)[0])}")
        later = [t for t in consumers if t.step > here.step]
        when = f" before {label(later[0].phase, later[0].wave)}" if later else ""
        if not consumers:
            return "Progressing", "Pending: WaitForFirstConsumer and nothing mounts it"
        return "Progressing", f"Pending: WaitForFirstConsumer and no pod mounts it{when}: " + "; ".join(details)

    def _address(self, condition: str = "") -> tuple[str, str]:
        if self.load_balancer:
            return "Healthy", "a load-balancer address is published"
        return "Progressing", f"{condition}no load-balancer address: bare metal publishes none"

    def _service(self, obj, spec):
        return self._address("type LoadBalancer, ") if spec.get("type") == "LoadBalancer" else ("Healthy", "ready")

    def _ingress(self, obj, spec):
        return self._address()

    def _gateway(self, obj, spec):
        return gateway_health(self, obj, spec)

    def _target(self, target: dict) -> list[str]:
        return self.missing({(target.get("kind") or "Deployment", target.get("name"))})

    def _horizontalpodautoscaler(self, obj, spec):
        gone = self._target(spec.get("scaleTargetRef") or {})
        if gone:
            return "Degraded", "FailedGetScale: " + "; ".join(gone)
        if self.argocd >= (3, 5):
            return "Degraded", "FailedGetResourceMetric: no metrics until its pods have run and been scraped"
        return "Healthy", "AbleToScale (no metrics yet: ScalingActive=False does not count)"

    def _scaledobject(self, obj, spec):
        gone = self._target(spec.get("scaleTargetRef") or {})
        for auth in (t["authenticationRef"] for t in spec.get("triggers") or [] if t.get("authenticationRef")):
            gone += self._platform(auth, "TriggerAuthentication")
            found = self.live.get((auth.get("kind") or "TriggerAuthentication", auth["name"]))
            for secret in ((found or {}).get("spec") or {}).get("secretTargetRef") or []:
                gone += self.missing({("Secret", secret["name"])})
        if gone:
            return "Degraded", "Ready=False: " + "; ".join(gone)
        notes = obj["metadata"].get("annotations") or {}
        if notes.get("autoscaling.keda.sh/paused") == "true" or "autoscaling.keda.sh/paused-replicas" in notes:
            return "Suspended", "Paused"
        return "Healthy", "Ready"

    def _platform(self, ref_: dict, default_kind: str) -> list[str]:
        """A missing store or issuer; a cluster-scoped one the Application does not render is the platform's."""
        kind, name = ref_.get("kind") or default_kind, ref_.get("name")
        if kind in PLATFORM_KINDS and (kind, name) not in self.rendered:
            return []
        return self.missing({(kind, name)})

    def _externalsecret(self, obj, spec):
        gone = self._platform(spec.get("secretStoreRef") or {}, "SecretStore")
        return ("Degraded", "Ready=False: " + "; ".join(gone)) if gone else ("Healthy", "Ready: secret synced")

    def _certificate(self, obj, spec):
        gone = self._platform(spec.get("issuerRef") or {}, "Issuer")
        if gone:
            return "Progressing", "Issuing: " + "; ".join(gone)
        return "Healthy", "Ready (an ACME HTTP-01 challenge is assumed reachable)"

    def _httproute(self, obj, spec):
        return httproute_health(self, obj, spec)

    def add_shim_certificates(self, obj: dict) -> bool:
        """Let cert-manager's gateway-shim create the Certificates of a live Gateway; True if it made one."""
        made = [c for c in shim_certificates(obj) if key(c) not in self.live]
        for cert in made:
            self.live[key(cert)] = cert
        return bool(made)

    def _apiservice(self, obj, spec):
        service = spec.get("service")
        gone = self.missing({("Service", service["name"])}) if service else []
        return ("Progressing", "; ".join(gone)) if gone else ("Healthy", "Available")


@dataclass
class WaveResult:
    """What one wave applied and what kept the sync from going on."""

    label: str
    applied: list[str]
    unhealthy: dict[str, str] = field(default_factory=dict)


@dataclass
class SyncResult:
    """The outcome of one modelled sync operation and the health it leaves."""

    waves: list[WaveResult]
    finished: bool
    health: dict[str, tuple[str | None, str]]
    app_health: str
    problems: list[str]
    warnings: list[str]

    def report(self) -> str:
        """The walk as text, for an assertion message."""
        lines = [f"{w.label}: applied {', '.join(w.applied)}" for w in self.waves]
        lines += [f"  {r}: {why}" for w in self.waves for r, why in w.unhealthy.items()]
        lines += [f"app health {self.app_health}; finished={self.finished}"]
        return "\n".join(lines + self.problems + self.warnings)


def simulate(objects: list[dict], *, load_balancer: bool = False, argocd: tuple[int, int] = ARGOCD,
             cluster_type=Cluster) -> SyncResult:
    """Walk one sync of these rendered objects on a cold cluster, as Argo CD would.

    `cluster_type` is called as Cluster is, with (tasks, load_balancer, argocd): argocd_tree passes one
    that knows which CRDs the platform has installed and judges child Applications."""
    tasks = sync_tasks(objects)
    cluster = cluster_type(tasks, load_balancer, argocd)
    steps = sorted({t.step for t in tasks})
    multi_step = len(steps) > 1
    waves, problems, finished = [], [], True
    for i, step in enumerate(steps):
        group = [t for t in tasks if t.step == step]
        for t in group:
            cluster.apply(t.obj)
        cluster.settle()
        result = WaveResult(label(group[0].phase, group[0].wave), [t.ref for t in group])
        waves.append(result)
        final = i == len(steps) - 1
        has_hook = any(t.hook for t in group)
        later = "" if final else f"{label(PHASES[steps[i + 1][0]], steps[i + 1][1])} and later are never applied"
        for t in group:
            if final and not (has_hook and (multi_step or t.hook)):
                continue
            status, why = cluster.health(t.obj)
            if status in (None, "Healthy"):
                continue
            result.unhealthy[t.ref] = f"{status}: {why}"
            fails = status == "Degraded" or (t.hook and status == "Unknown")
            if fails:
                outcome = f"is {status} ({why}); the sync fails" + (f", {later}" if later else "")
            else:
                outcome = f"stays {status} ({why}); " + (later or "the sync never finishes")
            problems.append(f"{result.label}: {t.ref} {outcome}")
        if result.unhealthy:
            finished = False
            break
    health = {t.ref: cluster.health(t.obj) if key(t.obj) in cluster.live else ("Missing", "never applied")
              for t in tasks}
    counted = [(t, health[t.ref]) for t in tasks if not t.hook and key(t.obj) in cluster.live
               and (t.obj["metadata"].get("annotations") or {}).get(IGNORE_HEALTH) != "true"
               and health[t.ref][0] is not None]
    app_health = max((h[0] for _, h in counted), key=HEALTH_ORDER.index, default="Healthy")
    warnings = [] if not finished else [
        f"{t.ref} ({label(t.phase, t.wave)}) stays {status} ({why}): the sync finishes, the app is {app_health}"
        for t, (status, why) in counted if status != "Healthy"]
    return SyncResult(waves, finished, health, app_health, problems, warnings)


# --- Gateway API (gateway.networking.k8s.io) and cert-manager's gateway-shim --------------------

SHIM_ISSUERS = {"cert-manager.io/cluster-issuer": "ClusterIssuer", "cert-manager.io/issuer": "Issuer"}


def shim_certificates(gateway: dict) -> list[dict]:
    """The Certificates cert-manager's gateway-shim creates for a Gateway: one per TLS listener that
    terminates with a hostname and a certificateRef, named and stored after that Secret.

    Upstream: cert-manager `pkg/controller/certificate-shim/sync.go` (`buildCertificates`).
    """
    if gateway["kind"] != "Gateway":
        return []
    notes = gateway["metadata"].get("annotations") or {}
    issuer = next(({"name": notes[a], "kind": k, "group": "cert-manager.io"} for a, k in SHIM_ISSUERS.items()
                   if notes.get(a)), None)
    certs = {}
    for listener in (gateway.get("spec") or {}).get("listeners") or []:
        tls = listener.get("tls") or {}
        if issuer is None or not listener.get("hostname") or tls.get("mode", "Terminate") != "Terminate":
            continue
        for ref_ in tls.get("certificateRefs") or []:
            if (ref_.get("kind") or "Secret") == "Secret" and not ref_.get("namespace"):
                cert = certs.setdefault(ref_["name"], {
                    "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                    "metadata": {"name": ref_["name"]},
                    "spec": {"secretName": ref_["name"], "dnsNames": [], "issuerRef": issuer},
                })
                cert["spec"]["dnsNames"].append(listener["hostname"])
    return list(certs.values())


def gateway_health(cluster: Cluster, obj: dict, spec: dict) -> tuple[str, str]:
    """Argo CD's Gateway check: Programmed (the controller has an address) first, then each listener's refs."""
    status, why = cluster._address("Programmed=False, ")
    if status != "Healthy":
        return status, why
    for listener in spec.get("listeners") or []:
        for ref_ in (listener.get("tls") or {}).get("certificateRefs") or []:
            secret = ("Secret", ref_["name"])
            if cluster.exists(*secret):
                continue
            cert = cluster.live.get(("Certificate", ref_["name"]))
            if cert is None:
                reason = "no Certificate makes it (the Gateway names no cert-manager issuer in an annotation)"
            else:
                reason = "Certificate/{} is {}".format(ref_["name"], ": ".join(cluster.health(cert)))
            return "Degraded", f"Listener {listener.get('name')}: ResolvedRefs=False: Secret/{ref_['name']} " \
                               f"does not exist ({reason})"
    return "Healthy", "Programmed: an address is assigned and every listener's certificate exists"


def httproute_health(cluster: Cluster, obj: dict, spec: dict) -> tuple[str, str]:
    """Argo CD's HTTPRoute check over the parents' conditions the Gateway controller would write."""
    parents = spec.get("parentRefs") or []
    gone = cluster.missing({("Gateway", p["name"]) for p in parents})
    if gone:
        return "Progressing", "no parent has accepted it (Waiting for HTTPRoute status): " + "; ".join(gone)
    backends = {(b.get("kind") or "Service", b["name"]) for r in spec.get("rules") or []
                for b in r.get("backendRefs") or []}
    gone = cluster.missing(backends)
    if gone:
        return "Degraded", "ResolvedRefs=False: " + "; ".join(gone)
    for parent in parents:
        gateway = cluster.live[("Gateway", parent["name"])]
        listeners = (gateway.get("spec") or {}).get("listeners") or []
        if parent.get("sectionName"):
            listeners = [x for x in listeners if x.get("name") == parent["sectionName"]]
            if not listeners:
                return "Degraded", f"Accepted=False: NoMatchingParent: Gateway/{parent['name']} has no listener " \
                                   f"{parent['sectionName']}"
        hosts = set(spec.get("hostnames") or [])
        if hosts and not any(not x.get("hostname") or x["hostname"] in hosts for x in listeners):
            return "Degraded", f"Accepted=False: NoMatchingListenerHostname: Gateway/{parent['name']}"
    return "Healthy", "Accepted"
