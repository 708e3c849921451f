"""Each check of test_pods.py, fed a broken form of the pod, must report it."""

from __future__ import annotations

import copy
import re
import socket

from kubelet_cluster import lifecycle
from kubelet_env import container_port, named, prestop_pause, workload


def test_service_links_without_redis_port_in_the_config_stop_vote(cluster):
    objects = copy.deepcopy(cluster.objects)
    pod_spec, container = workload(objects, "vote")
    del pod_spec["enableServiceLinks"]
    (config,) = [s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s]
    del named(objects, "ConfigMap", config)["data"]["REDIS_PORT"]
    problems = lifecycle(*cluster.pod("vote", objects=objects))
    assert any("REDIS_PORT must be a whole number, got 'tcp://" in p for p in problems), problems


def test_gunicorn_control_socket_is_reported_as_a_write_outside_the_mounts(cluster):
    (cluster.scratch / "control_socket_on.py").write_text(
        "from vote.gunicorn_conf import *  # noqa: F403\n"
        "control_socket_disable = False\n"
    )

    def with_socket(argv: list[str]) -> list[str]:
        assert "python:vote.gunicorn_conf" in argv, argv
        return ["python:control_socket_on" if word == "python:vote.gunicorn_conf" else word for word in argv]

    pod = cluster.pod("vote", extra_env={"PYTHONPATH": str(cluster.scratch)}, edit_argv=with_socket)
    problems = lifecycle(*pod)
    assert any("wrote outside its mounts" in p and "Control server error" in p for p in problems), problems


def test_vote_without_its_tmp_mount_is_reported(cluster):
    objects = copy.deepcopy(cluster.objects)
    _, container = workload(objects, "vote")
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["mountPath"] != "/tmp"]
    problems = lifecycle(*cluster.pod("vote", objects=objects))
    assert any(p.startswith("vote wrote outside its mounts") and "Read-only file system" in p for p in problems), problems


def read_response(sock: socket.socket) -> bytes:
    """One whole HTTP/1.1 response with a Content-Length, and nothing past it."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_grace_period_shorter_than_the_drain_is_reported(cluster):
    objects = copy.deepcopy(cluster.objects)
    pod_spec, container = workload(objects, "vote")
    pod_spec["terminationGracePeriodSeconds"] = int(prestop_pause(container)) + 1
    held: list[socket.socket] = []

    def request_in_flight(pod) -> None:
        sock = socket.create_connection(("127.0.0.1", pod.host_ports[container_port(container, "http")]))
        held.append(sock)
        # An answered request first: the connection reaches gunicorn through the relays.
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: vote\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        # Then a vote whose body is still arriving: gunicorn waits for it while it drains.
        sock.sendall(b"POST / HTTP/1.1\r\nHost: vote\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 100\r\n\r\nvote=")
        sock.settimeout(0.5)
        try:
            early = sock.recv(1)
        except TimeoutError:
            return
        raise AssertionError(f"gunicorn did not wait for the body: {early!r}")

    try:
        problems = lifecycle(*cluster.pod("vote", objects=objects), during=request_in_flight)
    finally:
        for sock in held:
            sock.close()
    assert any("did not exit within 1s of SIGTERM" in p for p in problems), problems
