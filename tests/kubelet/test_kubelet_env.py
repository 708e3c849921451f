"""The pure parts: environment resolution as the kubelet does it, the Dockerfile reading, the bwrap mounts."""

from __future__ import annotations

import base64

import pytest
from devstack.dockerfile import exec_form, external_bases, read_image
from devstack.repo import DOCKERFILE

from kubelet_env import (
    command_line, container_env, drain_budget, empty_dir_mounts, expand, http_probes, point_at_test_servers,
    service_link_env, with_cluster_ips,
)
from kubelet_sandbox import mounts, write_failures

SERVICES = with_cluster_ips([
    {"kind": "Service", "metadata": {"name": "redis"}, "spec": {"ports": [{"name": "redis", "port": 6379}]}},
    {"kind": "Service", "metadata": {"name": "db-headless"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}},
])
OBJECTS = [
    {"kind": "ConfigMap", "metadata": {"name": "first"}, "data": {"A": "from-first", "B": "from-first", "bad key": "x"}},
    {"kind": "ConfigMap", "metadata": {"name": "second"}, "data": {"B": "from-second", "C": "from-second"}},
    {"kind": "Secret", "metadata": {"name": "secret"}, "data": {"PASSWORD": base64.b64encode(b"s3cret").decode()}},
]


def env_of(container: dict, pod_spec: dict | None = None) -> dict[str, str]:
    return container_env(container, pod_spec or {}, OBJECTS, SERVICES)


def test_service_links_name_every_port_and_skip_headless_services():
    env = service_link_env(SERVICES)
    assert env == {
        "REDIS_SERVICE_HOST": "10.96.0.10", "REDIS_SERVICE_PORT": "6379", "REDIS_SERVICE_PORT_REDIS": "6379",
        "REDIS_PORT": "tcp://10.96.0.10:6379", "REDIS_PORT_6379_TCP": "tcp://10.96.0.10:6379",
        "REDIS_PORT_6379_TCP_PROTO": "tcp", "REDIS_PORT_6379_TCP_PORT": "6379", "REDIS_PORT_6379_TCP_ADDR": "10.96.0.10",
    }


def test_service_links_are_the_lowest_source_and_off_with_enable_service_links_false():
    container = {"envFrom": [{"configMapRef": {"name": "first"}}]}
    assert env_of(container)["REDIS_PORT"] == "tcp://10.96.0.10:6379"
    assert env_of({"env": [{"name": "REDIS_PORT", "value": "6379"}]})["REDIS_PORT"] == "6379"
    off = env_of(container, {"enableServiceLinks": False})
    assert "REDIS_PORT" not in off and "REDIS_SERVICE_HOST" not in off
    # The API server's own Service is given whatever the pod says.
    assert off["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


def test_later_env_from_wins_then_env_wins_over_env_from():
    container = {
        "envFrom": [{"configMapRef": {"name": "first"}}, {"configMapRef": {"name": "second"}}],
        "env": [{"name": "C", "value": "from-env"}],
    }
    env = env_of(container, {"enableServiceLinks": False})
    assert (env["A"], env["B"], env["C"]) == ("from-first", "from-second", "from-env")
    assert "bad key" not in env


def test_value_from_secret_and_config_map_keys_and_prefixes():
    container = {
        "envFrom": [{"secretRef": {"name": "secret"}, "prefix": "DB_"}],
        "env": [
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "secret", "key": "PASSWORD"}}},
            {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "first", "key": "A"}}},
            {"name": "GONE", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "K", "optional": True}}},
        ],
    }
    env = env_of(container)
    assert (env["DB_PASSWORD"], env["PASSWORD"], env["A"]) == ("s3cret", "s3cret", "from-first")
    assert "GONE" not in env
    with pytest.raises(LookupError, match="no key"):
        env_of({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "secret", "key": "NOPE"}}}]})


def test_expansion_reads_earlier_variables_and_service_links():
    container = {"env": [
        {"name": "HOST", "value": "$(REDIS_SERVICE_HOST)"},
        {"name": "URL", "value": "redis://$(HOST):$(NOT_SET)/$$(HOST)"},
    ]}
    env = env_of(container)
    assert env["URL"] == "redis://10.96.0.10:$(NOT_SET)/$(HOST)"
    assert expand("a $( b $x $", {}) == "a $( b $x $"


def test_command_and_args_replace_the_image_parts_and_expand():
    env = {"PASSWORD": "p"}
    assert command_line({}, ["entry"], ["cmd", "$(PASSWORD)"], env) == ["entry", "cmd", "$(PASSWORD)"]
    assert command_line({"args": ["--requirepass", "$(PASSWORD)"]}, ["entry"], ["cmd"], env) == [
        "entry", "--requirepass", "p"]
    assert command_line({"command": ["run"]}, ["entry"], ["cmd"], env) == ["run"]


def test_only_service_names_and_their_ports_point_at_the_test_servers():
    env = {"REDIS_HOST": "redis", "REDIS_PORT": "6379", "OTHER_HOST": "redis", "OTHER_PORT": "tcp://10.96.0.10:6379",
           "REDIS_SERVICE_HOST": "10.96.0.10", "CACHE_HOST": "example.org", "CACHE_PORT": "6379"}
    assert point_at_test_servers(env, SERVICES, {"redis": 40000}) == {
        **env, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "40000", "OTHER_HOST": "127.0.0.1",
    }


def test_pod_reading_helpers():
    pod_spec = {"terminationGracePeriodSeconds": 30,
                "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "m", "emptyDir": {}}, {"name": "c", "configMap": {}}]}
    container = {
        "ports": [{"name": "http", "containerPort": 8080}],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8081}},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
        "volumeMounts": [{"name": "m", "mountPath": "/tmp/m"}, {"name": "tmp", "mountPath": "/tmp"},
                         {"name": "c", "mountPath": "/etc/c"}],
    }
    assert http_probes(container) == {"livenessProbe": ("/healthz", 8080), "readinessProbe": ("/readyz", 8081)}
    assert drain_budget(pod_spec, container) == 25
    assert empty_dir_mounts(pod_spec, container) == ["/tmp", "/tmp/m"]


def test_mounts_nest_and_stand_in_for_a_missing_mount_point():
    exists = {"/", "/tmp"}.__contains__
    assert mounts(["/tmp", "/tmp/m"], exists) == ["--tmpfs", "/tmp", "--tmpfs", "/tmp/m"]
    assert mounts(["/tmp/m"], exists) == ["--tmpfs", "/tmp", "--tmpfs", "/tmp/m", "--remount-ro", "/tmp"]


def test_write_failures_name_the_lines():
    log = "ok\n[ERROR] Control server error: [Errno 30] Read-only file system: '/nonexistent'\nfine\n"
    assert write_failures(log) == ["[ERROR] Control server error: [Errno 30] Read-only file system: '/nonexistent'"]
    assert write_failures("PermissionError: [Errno 13] Permission denied: '/app/x'\n")
    assert write_failures("all good\n") == []


@pytest.mark.parametrize("service", ["vote", "worker", "result"])
def test_each_dockerfile_reads_as_a_uv_install_a_user_and_a_command(service):
    image = read_image(DOCKERFILE.read_text(), {"SERVICE": service})
    assert image.install[:2] == ["uv", "sync"] and image.install[-2:] == ["--package", service]
    assert image.cmd and image.user[0] != 0 and image.home
    assert image.env["PATH"].startswith(image.venv.rstrip("/") + "/bin:")
    assert image.env["PYTHONUNBUFFERED"] == "1"


def test_dockerfile_reading_forms():
    assert exec_form('["a", "b c"]') == ["a", "b c"]
    assert exec_form("a $B") == ["/bin/sh", "-c", "a $B"]
    text = (
        "FROM x AS build\nENV UV_PROJECT_ENVIRONMENT=/app/.venv\nRUN uv sync --frozen\n"
        "FROM x\nCOPY --from=build /app/.venv /app/.venv\nRUN useradd --uid 1 --home-dir /home/app app\nENV PATH=\"/app/.venv/bin:${PATH}\" \\\n    A=1\n"
        "ENV LEGACY some value\nUSER 1:2\nENTRYPOINT [\"tini\"]\nCMD [\"serve\"]\n"
    )
    image = read_image(text)
    assert image.install == ["uv", "sync", "--frozen"]
    assert (image.entrypoint, image.cmd, image.user, image.home) == (["tini"], ["serve"], (1, 2), "/home/app")
    assert image.env["PATH"].startswith("/app/.venv/bin:/usr/local/sbin:") and image.env["LEGACY"] == "some value"
    with pytest.raises(ValueError, match="numeric"):
        read_image(text.replace("USER 1:2", "USER app"))
    with pytest.raises(ValueError, match="build stages, not one"):
        read_image(text.replace("COPY --from=build", "COPY"))


def test_build_arguments_pick_the_package_the_stage_and_the_base():
    """Global ARGs reach FROM only; a stage sees an ARG it declares; FROM may name an earlier stage."""
    text = (
        "ARG BASE=python:3.11-slim\nARG APP\n"
        "FROM ${BASE} AS build\nARG APP\nENV UV_PROJECT_ENVIRONMENT=/v\nCOPY apps/${APP}/src src\n"
        "RUN uv sync --package \"${APP}\"\n"
        "FROM ${BASE} AS runtime\nCOPY --from=build /v /v\nUSER 1:1\nENV PATH=/v/bin:${PATH}\n"
        "FROM runtime AS one\nEXPOSE 1\nCMD [\"one\"]\n"
        "FROM runtime AS two\nEXPOSE 2/tcp\nCMD [\"two\"]\n"
        "FROM ${APP}\n"
    )
    one, two = read_image(text, {"APP": "one"}), read_image(text, {"APP": "two"})
    assert (one.cmd, one.exposed, one.install[-1], one.copies) == (["one"], {1}, "one", ["apps/one/src"])
    assert (two.cmd, two.exposed, two.install[-1]) == (["two"], {2}, "two")
    assert one.env["PATH"].startswith("/v/bin:/usr/local/sbin:") and one.build_env == {"UV_PROJECT_ENVIRONMENT": "/v"}
    assert external_bases(text, {"APP": "one"}) == ["python:3.11-slim", "python:3.11-slim"]
    assert external_bases(text, {"APP": "one", "BASE": "python:3.12"}) == ["python:3.12", "python:3.12"]
    with pytest.raises(ValueError, match="blank"):
        read_image(text)
