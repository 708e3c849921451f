"""A container's environment and command line, resolved from rendered objects as the kubelet does.

Pure functions over the dicts `kubectl kustomize` renders: service-link variables, envFrom,
env with valueFrom, `$(VAR)` expansion, and the reading of probes, mounts and grace periods.
"""

from __future__ import annotations

import base64
import re

# The API server's own Service in `default`: the kubelet gives its variables to every pod,
# whatever enableServiceLinks says.
MASTER_SERVICE = {
    "kind": "Service",
    "metadata": {"name": "kubernetes", "namespace": "default"},
    "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]},
}
ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o.get("kind") == kind]


def named(objects: list[dict], kind: str, name: str) -> dict:
    """The one rendered object of that kind and name."""
    found = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    if len(found) != 1:
        raise LookupError(f"{len(found)} {kind} objects named {name!r}")
    return found[0]


def with_cluster_ips(services: list[dict], first: int = 10) -> list[dict]:
    """Copies of the Services with made-up ClusterIPs, as the API server would assign; headless ones keep None."""
    result = []
    for i, service in enumerate(services):
        copy = {**service, "spec": dict(service["spec"])}
        copy["spec"].setdefault("clusterIP", f"10.96.0.{first + i}")
        result.append(copy)
    return result


def _var(name: str) -> str:
    return name.upper().replace("-", "_")


def service_link_env(services: list[dict]) -> dict[str, str]:
    """The `{SVC}_SERVICE_HOST`, `{SVC}_PORT=tcp://IP:PORT`... variables of these Services."""
    env: dict[str, str] = {}
    for service in services:
        ip = service["spec"].get("clusterIP")
        if ip in (None, "", "None"):
            continue
        prefix = _var(service["metadata"]["name"])
        ports = service["spec"]["ports"]
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{_var(port['name'])}"] = str(port["port"])
        for i, port in enumerate(ports):
            proto = port.get("protocol", "TCP")
            url = f"{proto.lower()}://{ip}:{port['port']}"
            if i == 0:
                env[f"{prefix}_PORT"] = url
            each = f"{prefix}_PORT_{port['port']}_{proto.upper()}"
            env.update({each: url, f"{each}_PROTO": proto.lower(), f"{each}_PORT": str(port["port"]),
                        f"{each}_ADDR": ip})
    return env


def pod_service_env(pod_spec: dict, services: list[dict]) -> dict[str, str]:
    """The master Service's variables always; the namespace's Services' unless enableServiceLinks is false."""
    chosen = [MASTER_SERVICE]
    if pod_spec.get("enableServiceLinks", True):
        chosen += services
    return service_link_env(chosen)


def expand(text: str, *mappings: dict[str, str]) -> str:
    """The kubelet's `$(VAR)` expansion: `$$` is a `$`, an unknown `$(VAR)` stays as written."""
    out = []
    i = 0
    while i < len(text):
        if text[i] != "$" or i + 1 == len(text):
            out.append(text[i])
            i += 1
        elif text[i + 1] == "$":
            out.append("$")
            i += 2
        elif text[i + 1] == "(" and (close := text.find(")", i + 2)) != -1:
            name = text[i + 2:close]
            out.append(next((m[name] for m in mappings if name in m), f"$({name})"))
            i = close + 1
        else:
            out.append(text[i:i + 2])
            i += 2
    return "".join(out)


def source_data(objects: list[dict], kind: str, name: str) -> dict[str, str]:
    """A ConfigMap's data, or a Secret's data decoded and its stringData."""
    obj = named(objects, kind, name)
    if kind == "Secret":
        data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        return {**data, **(obj.get("stringData") or {})}
    return dict(obj.get("data") or {})


def _key_ref(objects: list[dict], kind: str, ref: dict) -> str | None:
    try:
        data = source_data(objects, kind, ref["name"])
    except LookupError:
        if ref.get("optional"):
            return None
        raise
    if ref["key"] not in data:
        if ref.get("optional"):
            return None
        raise LookupError(f"{kind} {ref['name']!r} has no key {ref['key']!r}")
    return data[ref["key"]]


def container_env(container: dict, pod_spec: dict, objects: list[dict], services: list[dict]) -> dict[str, str]:
    """The environment the kubelet gives the container: envFrom, then env, then service links beneath both."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        kind, ref = ("ConfigMap", source["configMapRef"]) if "configMapRef" in source else ("Secret", source["secretRef"])
        try:
            data = source_data(objects, kind, ref["name"])
        except LookupError:
            if ref.get("optional"):
                continue
            raise
        for key, value in data.items():
            key = source.get("prefix", "") + key
            if ENV_NAME.fullmatch(key):  # the kubelet skips keys that are not variable names
                env[key] = value
    links = pod_service_env(pod_spec, services)
    for item in container.get("env", []):
        if "valueFrom" not in item:
            env[item["name"]] = expand(item.get("value", ""), env, links)
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source:
            value = _key_ref(objects, "Secret", source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            value = _key_ref(objects, "ConfigMap", source["configMapKeyRef"])
        else:
            raise NotImplementedError(f"valueFrom {sorted(source)} of {item['name']}")
        if value is not None:
            env[item["name"]] = value
    for key, value in links.items():
        env.setdefault(key, value)
    return env


def command_line(container: dict, entrypoint: list[str], cmd: list[str], env: dict[str, str]) -> list[str]:
    """`command` replaces the image's ENTRYPOINT, `args` its CMD; `$(VAR)` expands in both, not in the image's."""
    command = [expand(word, env) for word in container["command"]] if "command" in container else None
    args = [expand(word, env) for word in container["args"]] if "args" in container else None
    if command is not None:
        return command + (args or [])
    return entrypoint + (args if args is not None else cmd)


def point_at_test_servers(env: dict[str, str], services: list[dict], test_ports: dict[str, int]) -> dict[str, str]:
    """`X_HOST` naming a Service becomes 127.0.0.1, and `X_PORT` equal to its port the test server's port.

    The only change to the resolved environment: a cluster DNS name cannot resolve here. A
    value such as `tcp://10.96.0.5:6379` is never rewritten.
    """
    ports = {s["metadata"]["name"]: str(s["spec"]["ports"][0]["port"]) for s in services}
    result = dict(env)
    for key, value in env.items():
        if key.endswith("_HOST") and value in test_ports:
            result[key] = "127.0.0.1"
            port_key = key.removesuffix("_HOST") + "_PORT"
            if env.get(port_key) == ports.get(value):
                result[port_key] = str(test_ports[value])
    return result


def workload(objects: list[dict], name: str) -> tuple[dict, dict]:
    """(pod spec, its one container) of the Deployment or StatefulSet `name`."""
    found = [o for o in objects if o.get("kind") in ("Deployment", "StatefulSet") and o["metadata"]["name"] == name]
    if len(found) != 1:
        raise LookupError(f"{len(found)} workloads named {name!r}")
    pod_spec = found[0]["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    return pod_spec, container


def empty_dir_mounts(pod_spec: dict, container: dict) -> list[str]:
    """The container's mount paths backed by an emptyDir, parents before children."""
    empty = {v["name"] for v in pod_spec.get("volumes", []) if "emptyDir" in v}
    paths = [m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in empty]
    return sorted(paths, key=lambda p: p.rstrip("/").count("/"))


def run_as(pod_spec: dict, container: dict) -> tuple[int | None, int | None]:
    """runAsUser and runAsGroup, the container's securityContext over the pod's."""
    pod, own = pod_spec.get("securityContext", {}), container.get("securityContext", {})
    return own.get("runAsUser", pod.get("runAsUser")), own.get("runAsGroup", pod.get("runAsGroup"))


def container_port(container: dict, name: str) -> int:
    """The number of the container port called `name`."""
    (number,) = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == name]
    return number


def http_probes(container: dict) -> dict[str, tuple[str, int]]:
    """{probe kind: (path, container port number)} for the httpGet probes, named ports resolved."""
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    found = {}
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container.get(kind, {}).get("httpGet")
        if get:
            port = get["port"]
            found[kind] = (get.get("path", "/"), ports[port] if isinstance(port, str) else int(port))
    return found


def prestop_pause(container: dict) -> float:
    """Seconds the preStop hook sleeps before the container gets SIGTERM (0 without one)."""
    hook = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in hook:
        return float(hook["sleep"]["seconds"])
    command = hook.get("exec", {}).get("command", [])
    if command[:1] == ["sleep"] and len(command) == 2:
        return float(command[1])
    if command:
        raise ValueError(f"a preStop command that is not a plain sleep: {command}")
    return 0.0


def drain_budget(pod_spec: dict, container: dict) -> float:
    """The seconds left for the process after SIGTERM: the grace period less the preStop pause."""
    return float(pod_spec.get("terminationGracePeriodSeconds", 30)) - prestop_pause(container)
