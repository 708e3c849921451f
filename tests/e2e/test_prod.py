"""Prod on kind as `make cluster ENV=prod` makes it: Argo CD syncs the platform, then prod, from the git server in
the cluster; voters vote over HTTPS through the Gateway, KEDA scales the worker, External Secrets makes the
credentials, the backup restores, the NetworkPolicies hold, and Prometheus and Grafana see the app."""

from __future__ import annotations

import json
import secrets
import socket
import ssl
import threading
import time
import uuid

import httpx
import pytest
import redis
from websockets.sync.client import connect

pytestmark = [pytest.mark.prod, pytest.mark.timeout(3600)]

NS = "voting-app-prod"
GATEWAY = ("127.0.0.1", 8443)  # kind maps it to the Gateway's HTTPS NodePort 30443
ROUTES = ("gateway.networking.k8s.io", "v1", "httproutes")
PROMETHEUS = ("monitoring", "svc/kube-prometheus-stack-prometheus", 9090)
GRAFANA = ("monitoring", "svc/kube-prometheus-stack-grafana", 80)


@pytest.fixture(scope="module")
def ready(cluster):
    cluster.wait_rollouts(NS)
    return cluster


@pytest.fixture(scope="module")
def hosts(ready) -> dict[str, str]:
    """service -> the hostname its HTTPRoute serves, read from the live routes."""
    found = {}
    for route in ready.custom.list_namespaced_custom_object(*ROUTES[:2], NS, ROUTES[2])["items"]:
        backends = {ref["name"] for rule in route["spec"].get("rules", []) for ref in rule.get("backendRefs", [])}
        for service in backends & {"vote", "result"}:
            found[service] = route["spec"]["hostnames"][0]
    assert set(found) == {"vote", "result"}, f"HTTPRoutes to vote and result in {NS}: {found}"
    return found


@pytest.fixture(scope="module")
def local_ca(ready, tmp_path_factory) -> ssl.SSLContext:
    """A TLS context that trusts only the cluster's local CA, from its Secret in cert-manager."""
    secret = ready.secret("cert-manager", "voting-app-local-ca")
    pem = secret.get("ca.crt") or secret["tls.crt"]
    path = tmp_path_factory.mktemp("ca") / "voting-app-local-ca.pem"
    path.write_text(pem)
    return ssl.create_default_context(cafile=str(path))


def via_gateway(method: str, host: str, path: str, context: ssl.SSLContext, **kwargs) -> httpx.Response:
    """A request to 127.0.0.1:8443 as a browser for `host` would send it: Host header and SNI both `host`."""
    with httpx.Client(verify=context, timeout=15) as client:
        return client.request(
            method, f"https://{GATEWAY[0]}:{GATEWAY[1]}{path}", headers={"Host": host},
            extensions={"sni_hostname": host}, **kwargs,
        )


def test_a_vote_over_https_through_the_gateway_reaches_the_result_websocket(ready, hosts, local_ca, e2e):
    page = via_gateway("GET", hosts["vote"], "/", local_ca)
    assert page.status_code == 200, page.text[:500]
    sock = socket.create_connection(GATEWAY, timeout=30)
    # The URI's host gives the Host header and the SNI; the socket goes to the Gateway's port.
    with connect(f"wss://{hosts['result']}:{GATEWAY[1]}/ws", sock=sock, ssl=local_ca, open_timeout=30) as ws:
        before = e2e.tallies(ws.recv(timeout=30))
        reply = via_gateway("POST", hosts["vote"], "/", local_ca, data={"vote": "a"})
        assert reply.status_code == 200, reply.text[:500]
        expected = {**before, "a": before.get("a", 0) + 1}
        e2e.websocket_shows(ws, expected)


def test_the_external_secret_materializes_the_db_credentials(ready):
    def synced():
        es = ready.custom.get_namespaced_custom_object("external-secrets.io", "v1", NS, "externalsecrets", "db")
        return any(c["type"] == "Ready" and c["status"] == "True" for c in es.get("status", {}).get("conditions", []))

    ready.wait_for(synced, timeout=300, what="ExternalSecret db to be Ready")
    from_store = ready.secret("voting-app-secrets", "prod-db")
    db = ready.secret(NS, "db")
    assert db == {
        "POSTGRES_USER": from_store["username"], "POSTGRES_PASSWORD": from_store["password"],
        "POSTGRES_DB": from_store["database"],
    }


def psql(cluster, sql: str, database: str | None = None) -> str:
    """Run SQL in the db pod as the database's owner; its unaligned output."""
    pod = cluster.pod_of(NS, "db")
    target = f'"{database}"' if database else '"$POSTGRES_DB"'
    code, out = cluster.exec(
        NS, pod, ["sh", "-c", f'psql -v ON_ERROR_STOP=1 -At -U "$POSTGRES_USER" -d {target} -c "$0"', sql],
        container="postgres", timeout=300,
    )
    assert code == 0, f"psql failed ({code}): {out}"
    return out.strip()


def worker_replicas(cluster) -> int:
    return cluster.apps.read_namespaced_deployment("worker", NS).spec.replicas or 0


def test_a_queue_backlog_makes_keda_scale_the_worker_up_and_back_down(ready):
    assert worker_replicas(ready) == 1, "the worker should start at KEDA's minimum of one replica"
    password = ready.secret(NS, "redis")["REDIS_PASSWORD"]
    # The worker drains 2,000 votes in well under KEDA's 15 s poll. Holding a lock on the votes table
    # keeps it from committing, so the backlog stays in Redis long enough to be seen; then it drains.
    locker = threading.Thread(
        target=psql, args=(ready, "BEGIN; LOCK TABLE votes IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(150); COMMIT;"),
        daemon=True,
    )
    locker.start()
    time.sleep(5)
    with ready.port_forward("svc/redis", 6379, NS) as port:
        queue = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=30)
        # 2,000 at a time, until more than KEDA's 100 per replica wait: the blocked worker holds
        # at most two batches, whatever WORKER_BATCH_SIZE prod sets.
        for _ in range(5):
            run = uuid.uuid4().hex[:8]
            queue.rpush("votes", *[json.dumps({"voter_id": f"e2e-keda-{run}-{i}", "vote": "ab"[i % 2]}) for i in range(2000)])
            time.sleep(2)
            if queue.llen("votes") > 100:
                break
        assert queue.llen("votes") > 100, "the worker took the whole backlog before KEDA could see it"
        ready.wait_for(lambda: worker_replicas(ready) > 1, timeout=180, what="KEDA to scale the worker above one replica",
                       last=lambda: (worker_replicas(ready), queue.llen("votes")))
        locker.join(timeout=240)
        ready.wait_for(lambda: queue.llen("votes") == 0, timeout=300, what="the queue to drain")
    # KEDA's cooldown (300 s) and the HPA's scale-down window pass before it returns to one.
    ready.wait_for(lambda: worker_replicas(ready) == 1, timeout=900, interval=15,
                   what="KEDA to scale the worker back to one replica", last=lambda: worker_replicas(ready))


def job_from(cluster, cronjob: str, name: str, env: dict[str, str]) -> None:
    """What `kubectl create job --from=cronjob/<cronjob>` makes, with some variables set to plain values."""
    from kubernetes import client

    template = cluster.batch.read_namespaced_cron_job(cronjob, NS).spec.job_template
    for container in template.spec.template.spec.containers:
        container.env = [v for v in container.env or [] if v.name not in env]
        container.env += [client.V1EnvVar(name=key, value=value) for key, value in env.items()]
    job = client.V1Job(
        metadata=client.V1ObjectMeta(name=name, annotations={"cronjob.kubernetes.io/instantiate": "manual"}),
        spec=template.spec,
    )
    cluster.batch.create_namespaced_job(NS, job)


def job_log(cluster, name: str, timeout: float = 600) -> str:
    def finished():
        status = cluster.batch.read_namespaced_job_status(name, NS).status
        return "succeeded" if status.succeeded else ("failed" if status.failed and status.failed > 0 else None)

    outcome = cluster.wait_for(finished, timeout, what=f"Job {name} to finish")
    pods = cluster.core.list_namespaced_pod(NS, label_selector=f"job-name={name}").items
    logs = "\n".join(cluster.core.read_namespaced_pod_log(p.metadata.name, NS) for p in pods)
    assert outcome == "succeeded", f"Job {name} failed:\n{logs}"
    return logs


def test_a_backup_taken_by_hand_restores_into_a_scratch_database_with_the_same_tallies(ready):
    query = "SELECT vote || '=' || count(*) FROM votes GROUP BY vote ORDER BY vote"
    tallies_before = psql(ready, query)
    assert tallies_before, "no votes to back up: the tests above should have cast some"
    stamp = int(time.time())
    job_from(ready, "db-backup", f"db-backup-e2e-{stamp}", {})
    written = [line for line in job_log(ready, f"db-backup-e2e-{stamp}").splitlines() if line.startswith("backup written: ")]
    assert written, "the backup Job did not say which dump it wrote"
    dump = written[-1].removeprefix("backup written: ").strip()
    scratch = f"restore_e2e_{stamp}"
    psql(ready, f'CREATE DATABASE "{scratch}"')
    try:
        job_from(ready, "db-restore", f"db-restore-e2e-{stamp}", {"PGDATABASE": scratch, "RESTORE_FILE": dump})
        assert f"restore finished: {dump}" in job_log(ready, f"db-restore-e2e-{stamp}")
        assert psql(ready, query, database=scratch) == tallies_before
    finally:
        psql(ready, f'DROP DATABASE IF EXISTS "{scratch}"')


PROBE = """
import json, socket, sys
seen = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
        seen[target] = "open"
    except OSError as exc:
        seen[target] = f"blocked: {exc}"
print(json.dumps(seen))
"""


def test_the_prod_network_policies_hold(ready, hosts, local_ca):
    from kubernetes import client

    vote_pod = ready.pod_of(NS, "vote")
    code, out = ready.exec(NS, vote_pod, ["python", "-c", PROBE, "redis:6379", "db:5432"], container="vote")
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["redis:6379"] == "open", f"vote should reach redis (the probe works): {seen}"
    assert seen["db:5432"].startswith("blocked"), f"vote reached db: {seen}"

    # A pod in a namespace of its own, with the vote image (it has Python), probing vote and result.
    outsider = f"e2e-outsider-{secrets.token_hex(3)}"
    image = ready.apps.read_namespaced_deployment("vote", NS).spec.template.spec.containers[0].image
    targets = [f"vote.{NS}.svc.cluster.local:80", f"result.{NS}.svc.cluster.local:80", "kubernetes.default.svc.cluster.local:443"]
    ready.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=outsider)))
    try:
        ready.core.create_namespaced_pod(outsider, client.V1Pod(
            metadata=client.V1ObjectMeta(name="probe"),
            spec=client.V1PodSpec(
                restart_policy="Never", automount_service_account_token=False,
                security_context=client.V1PodSecurityContext(
                    run_as_non_root=True, run_as_user=10001, seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault")),
                containers=[client.V1Container(
                    name="probe", image=image, image_pull_policy="IfNotPresent", command=["python", "-c", PROBE, *targets],
                    security_context=client.V1SecurityContext(
                        allow_privilege_escalation=False, capabilities=client.V1Capabilities(drop=["ALL"])),
                )],
            ),
        ))
        ready.wait_for(lambda: ready.core.read_namespaced_pod("probe", outsider).status.phase in ("Succeeded", "Failed"),
                       timeout=180, what="the outsider probe to finish")
        seen = json.loads(ready.core.read_namespaced_pod_log("probe", outsider).strip().splitlines()[-1])
    finally:
        ready.core.delete_namespace(outsider)
    assert seen[targets[2]] == "open", f"the outsider's probe should reach the API server (the probe works): {seen}"
    assert seen[targets[0]].startswith("blocked") and seen[targets[1]].startswith("blocked"), seen
    # The Gateway can: the HTTPS requests above went through it; once more, for result.
    assert via_gateway("GET", hosts["result"], "/", local_ca).status_code == 200


def test_prometheus_scrapes_the_three_services_and_loaded_every_rule(ready):
    rules = ready.custom.list_namespaced_custom_object("monitoring.coreos.com", "v1", NS, "prometheusrules")["items"]
    ours = {r.get("alert") or r.get("record") for rule in rules for group in rule["spec"]["groups"] for r in group["rules"]}
    assert ours, f"no PrometheusRule in {NS}"
    namespace, target, port = PROMETHEUS
    with ready.port_forward(target, port, namespace) as local:
        api = f"http://127.0.0.1:{local}/api/v1"

        def healthy() -> set[str]:
            active = httpx.get(f"{api}/targets", params={"state": "active"}, timeout=15).json()["data"]["activeTargets"]
            return {
                name for t in active for name in ("vote", "worker", "result")
                if t["health"] == "up" and t["labels"].get("namespace") == NS and f"/{NS}/{name}/" in t["scrapePool"]
            }

        ready.wait_for(lambda: healthy() == {"vote", "worker", "result"}, timeout=300, interval=15,
                       what="vote, worker and result to be healthy Prometheus targets", last=healthy)

        def loaded() -> set[str]:
            groups = httpx.get(f"{api}/rules", timeout=15).json()["data"]["groups"]
            return {r["name"] for g in groups for r in g["rules"]}

        ready.wait_for(lambda: ours <= loaded(), timeout=300, interval=15, what="Prometheus to load every rule",
                       last=lambda: sorted(ours - loaded()))


def test_grafana_picked_up_the_dashboard(ready):
    maps = ready.core.list_namespaced_config_map(NS, label_selector="grafana_dashboard=1").items
    dashboards = [m for m in maps if m.metadata.name.startswith("voting-app-dashboard")]
    assert dashboards, f"no ConfigMap voting-app-dashboard labelled grafana_dashboard=1 in {NS}"
    wanted = {json.loads(text)["uid"] for m in dashboards for key, text in m.data.items() if key.endswith(".json")}
    admin = ready.secret(GRAFANA[0], "kube-prometheus-stack-grafana")
    namespace, target, port = GRAFANA
    with ready.port_forward(target, port, namespace) as local:
        auth = (admin.get("admin-user", "admin"), admin["admin-password"])

        def found() -> set[str]:
            reply = httpx.get(f"http://127.0.0.1:{local}/api/search", params={"type": "dash-db"}, auth=auth, timeout=15)
            reply.raise_for_status()
            return {d["uid"] for d in reply.json()}

        ready.wait_for(lambda: wanted <= found(), timeout=300, interval=15, what="Grafana to list the dashboard",
                       last=found)
