"""Policy checks over rendered manifests: each returns a list of problems, empty when all is well.

Pure functions over parsed objects, so the tests can run them on the real overlays and on
deliberately broken copies (to prove that every check can fail).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
DIGEST_RE = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
PLACEHOLDER_DIGEST = "sha256:" + "0" * 64
OUR_SERVICES = ("vote", "worker", "result")
OUR_UID_MIN = 10000
# The requests of the classic voting app's architecture, which ours must at least match (cpu in millicores, memory in MiB).
CLASSIC_REQUESTS = {"vote": (50, 64), "redis": (50, 64), "result": (50, 64), "worker": (100, 128), "db": (100, 128)}
# How long each service may take to drain after SIGTERM (runtime interface).
DRAIN_SECONDS = {"vote": 20, "result": 20, "worker": 10}


def prestop_sleep(container: dict) -> int:
    """Seconds a container's preStop hook sleeps (exec sleep N, or the sleep action)."""
    pre = (container.get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in pre:
        return int(pre["sleep"]["seconds"])
    command = (pre.get("exec") or {}).get("command") or []
    return int(command[1]) if command[:1] == ["sleep"] and len(command) == 2 else 0


# Pod Security "restricted" allows only these volume types.
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}
WRITABLE_VOLUME_TYPES = {"emptyDir", "persistentVolumeClaim", "ephemeral"}
RECOMMENDED_LABELS = ("app.kubernetes.io/part-of", "app.kubernetes.io/instance")
NAMESPACED_EXEMPT = {"Namespace"}


def ref(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def pod_template(obj: dict) -> dict | None:
    """The pod template of a workload, job or cronjob, a bare Pod itself; None for other kinds."""
    if obj["kind"] in WORKLOAD_KINDS or obj["kind"] in ("Job", "ReplicaSet"):
        return obj["spec"]["template"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]
    if obj["kind"] == "Pod":
        return obj
    return None


def pod_specs(objects: list[dict]) -> Iterator[tuple[dict, dict]]:
    """(object, pod template) for every object that runs pods."""
    for obj in objects:
        template = pod_template(obj)
        if template is not None:
            yield obj, template


def containers(spec: dict) -> list[dict]:
    return list(spec.get("initContainers", [])) + list(spec.get("containers", []))


def find(objects: list[dict], kind: str, name: str) -> dict | None:
    return next((o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name), None)


def cpu_millis(value: str | int) -> float:
    text = str(value)
    return float(text[:-1]) if text.endswith("m") else float(text) * 1000


def mebibytes(value: str | int) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024, "K": 1e3 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    text = str(value)
    for suffix, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text) / 2**20


def labels_match(selector: dict, labels: dict) -> bool:
    """matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist) against a label set."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# --- images -------------------------------------------------------------------------------------

def image_problems(objects: list[dict]) -> list[str]:
    """Every container image is pinned by digest."""
    problems = []
    for obj, template in pod_specs(objects):
        for c in containers(template["spec"]):
            if not DIGEST_RE.match(c.get("image", "")):
                problems.append(f"{ref(obj)} container {c['name']}: image {c.get('image')!r} is not pinned by digest")
    return problems


# --- containers and pods ------------------------------------------------------------------------

def restricted_problems(where: str, pod_spec: dict, container: dict) -> list[str]:
    """Pod Security Standard "restricted", as the fields we set."""
    problems = []
    pod_sc = pod_spec.get("securityContext") or {}
    sc = container.get("securityContext") or {}
    if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
        problems.append(f"{where}: runAsNonRoot is not true")
    if 0 in (sc.get("runAsUser"), pod_sc.get("runAsUser")):
        problems.append(f"{where}: runs as UID 0")
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        problems.append(f"{where}: seccompProfile is {seccomp!r}, not RuntimeDefault")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: allowPrivilegeEscalation is not false")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: readOnlyRootFilesystem is not true")
    if sc.get("privileged"):
        problems.append(f"{where}: privileged")
    caps = sc.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []):
        problems.append(f"{where}: capabilities do not drop ALL")
    if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
        problems.append(f"{where}: adds capabilities {caps['add']}")
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field):
            problems.append(f"{where}: {field}")
    return problems


def resource_problems(where: str, container: dict, component: str | None) -> list[str]:
    problems = []
    res = container.get("resources") or {}
    for kind in ("requests", "limits"):
        for name in ("cpu", "memory"):
            if name not in (res.get(kind) or {}):
                problems.append(f"{where}: no {kind}.{name}")
    if problems:
        return problems
    if cpu_millis(res["limits"]["cpu"]) < cpu_millis(res["requests"]["cpu"]):
        problems.append(f"{where}: cpu limit below request")
    if mebibytes(res["limits"]["memory"]) < mebibytes(res["requests"]["memory"]):
        problems.append(f"{where}: memory limit below request")
    if component in CLASSIC_REQUESTS:
        cpu, mem = CLASSIC_REQUESTS[component]
        if cpu_millis(res["requests"]["cpu"]) < cpu or mebibytes(res["requests"]["memory"]) < mem:
            problems.append(f"{where}: requests below the classic architecture's {cpu}m/{mem}Mi")
    return problems


def probe_problems(where: str, container: dict) -> list[str]:
    problems = []
    live, ready = container.get("livenessProbe"), container.get("readinessProbe")
    if not live:
        problems.append(f"{where}: no livenessProbe")
    if not ready:
        problems.append(f"{where}: no readinessProbe")
    if live and ready and live == ready:
        problems.append(f"{where}: liveness and readiness probes are the same check")
    path = ((live or {}).get("httpGet") or {}).get("path", "")
    if "ready" in path:
        problems.append(f"{where}: liveness probe {path} checks readiness (dependencies)")
    return problems


def port_problems(where: str, container: dict) -> list[str]:
    return [f"{where}: port {p.get('containerPort')} has no name" for p in container.get("ports", []) if not p.get("name")]


def volume_problems(where: str, pod_spec: dict, container: dict, claim_templates: list[dict]) -> list[str]:
    problems = []
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    claimed = {t["metadata"]["name"]: {"persistentVolumeClaim": {}} for t in claim_templates}
    for v in volumes.values():
        kinds = set(v) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"{where}: volume {v['name']} of type {sorted(kinds)} is not allowed by 'restricted'")
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"]) or claimed.get(mount["name"])
        if volume is None:
            problems.append(f"{where}: mounts unknown volume {mount['name']}")
        elif not mount.get("readOnly") and not (set(volume) & WRITABLE_VOLUME_TYPES) and not set(volume) & {
            "secret", "configMap", "projected", "downwardAPI"
        }:
            problems.append(f"{where}: writable mount {mount['mountPath']} is not an emptyDir or a PVC")
    return problems


def pod_problems(objects: list[dict]) -> list[str]:
    """Limits, probes, restricted security context, service account, ports, grace period."""
    problems = []
    accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"}
    for obj, template in pod_specs(objects):
        spec = template["spec"]
        component = (template.get("metadata", {}).get("labels") or {}).get("app.kubernetes.io/name")
        long_running = obj["kind"] in WORKLOAD_KINDS
        account = spec.get("serviceAccountName")
        if not account or account == "default":
            problems.append(f"{ref(obj)}: no service account of its own")
        elif account not in accounts:
            problems.append(f"{ref(obj)}: service account {account} is not rendered")
        elif accounts[account].get("automountServiceAccountToken") is not False:
            problems.append(f"{ref(obj)}: ServiceAccount {account} automounts its token")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{ref(obj)}: automountServiceAccountToken is not false")
        if spec.get("enableServiceLinks") is not False:
            # Otherwise the kubelet injects REDIS_PORT=tcp://... and friends for every Service.
            problems.append(f"{ref(obj)}: enableServiceLinks is not false")
        if component in DRAIN_SECONDS:
            grace = spec.get("terminationGracePeriodSeconds", 30)
            # A preStop sleep runs before SIGTERM and counts against the same grace period.
            pause = max((prestop_sleep(c) for c in containers(spec)), default=0)
            if grace <= DRAIN_SECONDS[component] + pause:
                problems.append(f"{ref(obj)}: terminationGracePeriodSeconds {grace} <= preStop {pause}s + "
                                f"drain {DRAIN_SECONDS[component]}s")
        pod_sc = spec.get("securityContext") or {}
        for c in containers(spec):
            where = f"{ref(obj)} container {c['name']}"
            problems += restricted_problems(where, spec, c)
            problems += resource_problems(where, c, component if long_running else None)
            problems += port_problems(where, c)
            problems += volume_problems(where, spec, c, obj.get("spec", {}).get("volumeClaimTemplates", []))
            if long_running:
                problems += probe_problems(where, c)
            if component in OUR_SERVICES:
                uid = (c.get("securityContext") or {}).get("runAsUser", pod_sc.get("runAsUser"))
                if uid is None or uid < OUR_UID_MIN:
                    problems.append(f"{where}: our image runs as UID {uid}, not a fixed UID >= {OUR_UID_MIN}")
    return problems


# --- storage, secrets, labels -------------------------------------------------------------------

def pvc_problems(objects: list[dict]) -> list[str]:
    """Every PVC is mounted by some pod template, and every claim a pod names exists."""
    claims = {o["metadata"]["name"] for o in objects if o["kind"] == "PersistentVolumeClaim"}
    used = set()
    problems = []
    for obj, template in pod_specs(objects):
        volumes = template["spec"].get("volumes", [])
        mounted = {m["name"] for c in containers(template["spec"]) for m in c.get("volumeMounts", [])}
        for v in volumes:
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                used.add(claim)
                if claim not in claims:
                    problems.append(f"{ref(obj)}: claims {claim}, which is not rendered")
                if v["name"] not in mounted:
                    problems.append(f"{ref(obj)}: PVC volume {v['name']} is never mounted")
        for vct in obj.get("spec", {}).get("volumeClaimTemplates", []):
            if vct["metadata"]["name"] not in mounted:
                problems.append(f"{ref(obj)}: volumeClaimTemplate {vct['metadata']['name']} is never mounted")
    problems += [f"PersistentVolumeClaim/{c} is not used by any workload" for c in sorted(claims - used)]
    return problems


def secret_problems(objects: list[dict], *, allow_dev_only: bool) -> list[str]:
    """No Secret with data in the output, except dev-only ones that say so."""
    problems = []
    for obj in objects:
        if obj["kind"] != "Secret" or not (obj.get("data") or obj.get("stringData")):
            continue
        marked = (obj["metadata"].get("annotations") or {}).get("voting-app/dev-only-credentials") == "true"
        if not allow_dev_only:
            problems.append(f"{ref(obj)}: clear-text Secret data in this environment")
        elif not marked:
            problems.append(f"{ref(obj)}: Secret with data is not marked voting-app/dev-only-credentials")
    return problems


def label_problems(objects: list[dict], namespace: str) -> list[str]:
    problems = []
    for obj in objects:
        labels = obj["metadata"].get("labels") or {}
        for key in RECOMMENDED_LABELS:
            if key not in labels:
                problems.append(f"{ref(obj)}: no label {key}")
        if obj["kind"] not in NAMESPACED_EXEMPT and obj["metadata"].get("namespace") != namespace:
            problems.append(f"{ref(obj)}: namespace {obj['metadata'].get('namespace')!r}, not {namespace}")
    for obj, template in pod_specs(objects):
        labels = template.get("metadata", {}).get("labels") or {}
        for key in ("app.kubernetes.io/name", *RECOMMENDED_LABELS):
            if key not in labels:
                problems.append(f"{ref(obj)}: pod template has no label {key}")
        if obj["kind"] in WORKLOAD_KINDS and "app.kubernetes.io/name" not in (obj["metadata"].get("labels") or {}):
            problems.append(f"{ref(obj)}: no label app.kubernetes.io/name")
    return problems


# --- selectors and ports ------------------------------------------------------------------------

def _pod_label_sets(objects: list[dict]) -> list[tuple[dict, dict]]:
    return [(obj, template.get("metadata", {}).get("labels") or {}) for obj, template in pod_specs(objects)]


# Pods that controllers start in our namespace, which no manifest of ours renders.
CONTROLLER_PODS = [({"kind": "Pod", "metadata": {"name": "acme-solver"}}, {"acme.cert-manager.io/http01-solver": "true"})]


def selector_problems(objects: list[dict]) -> list[str]:
    """Workload selectors match their templates; Service, PDB and policy selectors match some pods."""
    problems = []
    pods = _pod_label_sets(objects)
    for obj in objects:
        kind = obj["kind"]
        if kind in WORKLOAD_KINDS:
            selector = obj["spec"].get("selector") or {}
            labels = obj["spec"]["template"].get("metadata", {}).get("labels") or {}
            if not selector.get("matchLabels") and not selector.get("matchExpressions"):
                problems.append(f"{ref(obj)}: empty selector")
            elif not labels_match(selector, labels):
                problems.append(f"{ref(obj)}: selector does not match its pod template labels")
            others = [o for o, lbl in pods if o is not obj and o["kind"] in WORKLOAD_KINDS and labels_match(selector, lbl)]
            if others:
                problems.append(f"{ref(obj)}: selector also matches {', '.join(ref(o) for o in others)}")
        elif kind == "Service":
            selector = obj["spec"].get("selector")
            if not selector:
                problems.append(f"{ref(obj)}: no selector")
            elif not any(labels_match({"matchLabels": selector}, lbl) for _, lbl in pods):
                problems.append(f"{ref(obj)}: selector {selector} matches no pod template")
        elif kind == "PodDisruptionBudget":
            if not any(labels_match(obj["spec"]["selector"], lbl) for _, lbl in pods):
                problems.append(f"{ref(obj)}: selector matches no pod template")
        elif kind == "NetworkPolicy":
            selector = obj["spec"]["podSelector"]
            if selector and not any(labels_match(selector, lbl) for _, lbl in pods + CONTROLLER_PODS):
                problems.append(f"{ref(obj)}: podSelector matches no pod template")
            for rule in obj["spec"].get("ingress", []) + obj["spec"].get("egress", []):
                for peer in rule.get("from", []) + rule.get("to", []):
                    if "podSelector" in peer and "namespaceSelector" not in peer and peer["podSelector"]:
                        if not any(labels_match(peer["podSelector"], lbl) for _, lbl in pods):
                            problems.append(f"{ref(obj)}: peer podSelector {peer['podSelector']} matches no pod")
        elif kind in ("HorizontalPodAutoscaler", "ScaledObject"):
            target = obj["spec"]["scaleTargetRef"]
            if find(objects, target.get("kind", "Deployment"), target["name"]) is None:
                problems.append(f"{ref(obj)}: scale target {target['name']} is not rendered")
    return problems


def service_port_problems(objects: list[dict]) -> list[str]:
    """Every Service targetPort exists, by name or number, on the pods it selects."""
    problems = []
    pods = [(obj, t) for obj, t in pod_specs(objects)]
    for svc in (o for o in objects if o["kind"] == "Service"):
        selector = {"matchLabels": svc["spec"].get("selector") or {}}
        targets = [t for _, t in pods if labels_match(selector, t.get("metadata", {}).get("labels") or {})]
        for port in svc["spec"].get("ports", []):
            if not port.get("name"):
                problems.append(f"{ref(svc)}: port {port['port']} has no name")
            target = port.get("targetPort", port["port"])
            for t in targets:
                declared = [p for c in t["spec"]["containers"] for p in c.get("ports", [])]
                if isinstance(target, str):
                    ok = any(p.get("name") == target for p in declared)
                else:
                    ok = any(p.get("containerPort") == target for p in declared)
                if not ok:
                    problems.append(f"{ref(svc)}: targetPort {target!r} is not a port of the pods it selects")
    return problems


def route_problems(objects: list[dict]) -> list[str]:
    """HTTPRoute backends name a rendered Service and one of its port numbers."""
    problems = []
    for route in (o for o in objects if o["kind"] == "HTTPRoute"):
        for rule in route["spec"].get("rules", []):
            for backend in rule.get("backendRefs") or []:
                if backend.get("kind", "Service") != "Service":
                    problems.append(f"{ref(route)}: backend {backend.get('kind')}/{backend['name']} is not a Service")
                    continue
                svc = find(objects, "Service", backend["name"])
                if svc is None:
                    problems.append(f"{ref(route)}: backend Service {backend['name']} is not rendered")
                elif backend.get("port") not in {p["port"] for p in svc["spec"]["ports"]}:
                    problems.append(f"{ref(route)}: backend port {backend.get('port')} is not a port of Service "
                                    f"{backend['name']}")
    return problems


def statefulset_problems(objects: list[dict]) -> list[str]:
    """A StatefulSet names a headless Service of its pods, and its claim templates carry no labels.

    volumeClaimTemplates cannot change after creation: a label added or renamed there later
    would make every sync of the StatefulSet fail.
    """
    problems = []
    for sts in (o for o in objects if o["kind"] == "StatefulSet"):
        svc = find(objects, "Service", sts["spec"].get("serviceName", ""))
        labels = sts["spec"]["template"].get("metadata", {}).get("labels") or {}
        if svc is None:
            problems.append(f"{ref(sts)}: serviceName {sts['spec'].get('serviceName')!r} is not a rendered Service")
        elif svc["spec"].get("clusterIP") != "None":
            problems.append(f"{ref(sts)}: serviceName {svc['metadata']['name']} is not a headless Service")
        elif not labels_match({"matchLabels": svc["spec"].get("selector") or {}}, labels):
            problems.append(f"{ref(sts)}: headless Service {svc['metadata']['name']} does not select its pods")
        for template in sts["spec"].get("volumeClaimTemplates", []):
            if template["metadata"].get("labels"):
                problems.append(f"{ref(sts)}: volumeClaimTemplate {template['metadata']['name']} has labels "
                                f"{sorted(template['metadata']['labels'])}, which can never change")
    return problems


KEEP = "argocd.argoproj.io/sync-options"


def data_protection_problems(objects: list[dict]) -> list[str]:
    """Neither a prune nor deleting the Application removes the namespace or a volume of data."""
    problems = []
    for obj in objects:
        if obj["kind"] in ("Namespace", "PersistentVolumeClaim"):
            options = {o.strip() for o in (obj["metadata"].get("annotations") or {}).get(KEEP, "").split(",")}
            missing = {"Prune=false", "Delete=false"} - options
            if missing:
                problems.append(f"{ref(obj)}: {KEEP} lacks {', '.join(sorted(missing))}")
        if obj["kind"] == "StatefulSet" and obj["spec"].get("volumeClaimTemplates"):
            policy = obj["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
            if policy.get("whenDeleted", "Retain") != "Retain" or policy.get("whenScaled", "Retain") != "Retain":
                problems.append(f"{ref(obj)}: persistentVolumeClaimRetentionPolicy deletes its claims")
    if not any(o["kind"] == "Namespace" for o in objects):
        problems.append("no Namespace is rendered, so nothing can protect it")
    return problems


def _flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args[:-1] else None


def redis_problems(objects: list[dict]) -> list[str]:
    """Redis asks for a password from a Secret and refuses writes, cleanly, before its memory limit.

    Without maxmemory a long backlog (or, with an append-only file, a rewrite's copy-on-write)
    gets Redis OOM-killed; with maxmemory and noeviction a write fails and vote answers 503.
    """
    redis_server = next((o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "redis"), None)
    if redis_server is None:
        return ["Deployment/redis is not rendered"]
    container = redis_server["spec"]["template"]["spec"]["containers"][0]
    args = [str(a) for a in container.get("args", [])]
    env = {e["name"]: e for e in container.get("env", [])}
    problems = []
    if _flag(args, "--requirepass") != "$(REDIS_PASSWORD)" or "secretKeyRef" not in (
            env.get("REDIS_PASSWORD", {}).get("valueFrom") or {}):
        problems.append("Deployment/redis: --requirepass does not come from a Secret through $(REDIS_PASSWORD)")
    if env.get("REDISCLI_AUTH", {}).get("value") != "$(REDIS_PASSWORD)":
        problems.append("Deployment/redis: the probes' redis-cli does not authenticate (REDISCLI_AUTH)")
    if _flag(args, "--maxmemory-policy") != "noeviction":
        problems.append("Deployment/redis: maxmemory-policy is not noeviction (a full Redis would drop votes)")
    maxmemory, limit = _flag(args, "--maxmemory"), (container.get("resources") or {}).get("limits", {}).get("memory")
    if maxmemory is None or limit is None:
        return problems + ["Deployment/redis: no --maxmemory, or no memory limit"]
    units = {"kb": 1e3, "mb": 1e6, "gb": 1e9, "k": 1e3, "m": 1e6, "g": 1e9}
    number = maxmemory.lower().rstrip("kmgb")
    in_mib = int(number) * units.get(maxmemory.lower()[len(number):], 1) / 2**20
    # An append-only file is rewritten by a forked child: leave the limit room for its copy.
    share = 0.5 if _flag(args, "--appendonly") == "yes" else 0.8
    if in_mib > mebibytes(limit) * share:
        problems.append(f"Deployment/redis: --maxmemory {maxmemory} is above {share:.0%} of the {limit} limit")
    return problems


def sync_wave(obj: dict) -> int:
    return int((obj["metadata"].get("annotations") or {}).get("argocd.argoproj.io/sync-wave", "0"))


def sync_wave_problems(objects: list[dict]) -> list[str]:
    """Argo CD applies the credentials first, then the data services, then the apps."""
    problems = []
    secrets = [o for o in objects if o["kind"] in ("Secret", "ExternalSecret") and o["metadata"]["name"] == "db"]
    data = [o for o in objects if o["kind"] in WORKLOAD_KINDS and o["metadata"]["name"] in ("db", "redis")]
    apps = [o for o in objects if o["kind"] in WORKLOAD_KINDS and o["metadata"]["name"] in ("vote", "worker", "result")]
    if not secrets or len(data) != 2 or len(apps) != 3:
        return ["the db credentials, db, redis, vote, worker and result are not all rendered"]
    for s in secrets:
        for d in data:
            if sync_wave(s) >= sync_wave(d):
                problems.append(f"{ref(s)} (wave {sync_wave(s)}) is not before {ref(d)} (wave {sync_wave(d)})")
    for d in data:
        for a in apps:
            if sync_wave(d) >= sync_wave(a):
                problems.append(f"{ref(d)} (wave {sync_wave(d)}) is not before {ref(a)} (wave {sync_wave(a)})")
    for obj, template in pod_specs(objects):
        # Argo CD reads these on the object; in a pod template a change would roll the pods.
        leaked = [k for k in (template.get("metadata", {}).get("annotations") or {}) if k.startswith("argocd.argoproj.io/")]
        if leaked:
            problems.append(f"{ref(obj)}: pod template carries {', '.join(leaked)}")
    return problems
