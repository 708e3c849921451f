"""What each environment promises: replicas, storage, persistence, the way in, autoscaling, images."""

from __future__ import annotations

import re
import warnings

import pytest
import yaml

import manifest_checks as mc
from manifest_render import REPO, rendered_objects


def workload(objects, name):
    return next(o for o in objects if o["kind"] in mc.WORKLOAD_KINDS and o["metadata"]["name"] == name)


def storage(claim_spec) -> float:
    return mc.mebibytes(claim_spec["resources"]["requests"]["storage"])


def db_storage(objects) -> float:
    return storage(workload(objects, "db")["spec"]["volumeClaimTemplates"][0]["spec"])


def redis_args(objects) -> list[str]:
    return workload(objects, "redis")["spec"]["template"]["spec"]["containers"][0]["args"]


def redis_data_volume(objects) -> dict:
    return next(v for v in workload(objects, "redis")["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")


# --- dev -----------------------------------------------------------------------------------------

def test_dev_runs_one_replica_of_everything(dev_objects):
    replicas = {o["metadata"]["name"]: o["spec"].get("replicas", 1) for o in dev_objects if o["kind"] in mc.WORKLOAD_KINDS}
    assert replicas == {"vote": 1, "result": 1, "worker": 1, "redis": 1, "db": 1}


def test_dev_redis_is_ephemeral(dev_objects):
    args = redis_args(dev_objects)
    assert args[args.index("--appendonly") + 1] == "no"
    assert "emptyDir" in redis_data_volume(dev_objects)


def test_dev_services_can_be_port_forwarded(dev_objects):
    services = {o["metadata"]["name"]: o for o in dev_objects if o["kind"] == "Service"}
    assert set(services) == {"vote", "result", "redis", "db", "db-headless"}
    assert all(p.get("name") for s in services.values() for p in s["spec"]["ports"])


# kind maps 127.0.0.1:8080 and :8081 on the host to these node ports.
DEV_NODE_PORTS = {"vote": 30080, "result": 30081}


def node_ports(objects) -> dict[str, list[int]]:
    """The node ports each Service opens."""
    return {o["metadata"]["name"]: [p["nodePort"] for p in o["spec"]["ports"] if "nodePort" in p]
            for o in objects if o["kind"] == "Service" and o["spec"].get("type") in ("NodePort", "LoadBalancer")}


def test_dev_opens_vote_and_result_on_their_node_ports_only(dev_objects):
    assert node_ports(dev_objects) == {name: [port] for name, port in DEV_NODE_PORTS.items()}


def test_the_node_ports_stay_in_dev(prod_objects, dev_objects):
    assert node_ports(prod_objects) == {}
    leaked = [o for o in prod_objects if not (o["kind"] == "Service" and o["metadata"]["name"] == "vote")]
    leaked.append(mc.find(dev_objects, "Service", "vote"))
    assert node_ports(leaked) == {"vote": [30080]}, "the check must see a node port that leaks into prod"


def test_dev_has_no_prod_only_objects(dev_objects):
    kinds = {o["kind"] for o in dev_objects}
    assert not kinds & {"Gateway", "HTTPRoute", "ClientTrafficPolicy", "BackendTrafficPolicy", "HorizontalPodAutoscaler",
                        "ScaledObject", "ExternalSecret", "CronJob"}


# --- prod ----------------------------------------------------------------------------------------

def test_prod_replicas_pdbs_and_hpas(prod_objects):
    """A node drain or a rollout always leaves a frontend pod serving, and the autoscaler starts from the replicas."""
    for name in ("vote", "result"):
        deploy = workload(prod_objects, name)
        replicas = deploy["spec"]["replicas"]
        assert deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        pdb = mc.find(prod_objects, "PodDisruptionBudget", name)
        assert pdb is not None, f"no PodDisruptionBudget for {name}"
        budget = int(pdb["spec"].get("maxUnavailable", 0))
        assert 1 <= budget < replicas, f"{name}: {replicas} replicas, {pdb['spec']}: a drain never proceeds or empties it"
        assert mc.labels_match(pdb["spec"]["selector"], deploy["spec"]["template"]["metadata"]["labels"])
        hpa = mc.find(prod_objects, "HorizontalPodAutoscaler", name)
        assert hpa is not None, f"no HPA for {name}"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert hpa["spec"]["minReplicas"] == replicas < hpa["spec"]["maxReplicas"]
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]


def test_prod_spreads_frontends_across_nodes_and_zones(prod_objects):
    for name in ("vote", "result"):
        spread = workload(prod_objects, name)["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in spread} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
        assert all(c["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": name} for c in spread)


def test_prod_volumes_are_larger_than_dev(prod_objects, dev_objects):
    assert db_storage(prod_objects) > db_storage(dev_objects)
    claims = {o["metadata"]["name"]: o for o in prod_objects if o["kind"] == "PersistentVolumeClaim"}
    assert set(claims) == {"redis-data", "db-backup"}
    assert storage(claims["db-backup"]["spec"]) >= 2 * db_storage(prod_objects)


def test_prod_redis_persists_every_acknowledged_write(prod_objects):
    args = redis_args(prod_objects)
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "always"
    assert redis_data_volume(prod_objects) == {"name": "data", "persistentVolumeClaim": {"claimName": "redis-data"}}
    assert workload(prod_objects, "redis")["spec"]["strategy"] == {"type": "Recreate"}


def test_prod_is_reached_through_the_gateway(prod_objects):
    """vote and result each have an HTTPS listener of Gateway/voting-app; its checks are in test_gateway.py."""
    gateway = mc.find(prod_objects, "Gateway", "voting-app")
    assert gateway["spec"]["gatewayClassName"] == "envoy-gateway"
    https = {x["name"] for x in gateway["spec"]["listeners"] if x["protocol"] == "HTTPS"}
    assert https == {"vote", "result"}
    assert all(s["spec"].get("type", "ClusterIP") == "ClusterIP" for s in prod_objects if s["kind"] == "Service")


def test_prod_backup_runs_nightly_with_the_custom_format(prod_objects):
    cron = mc.find(prod_objects, "CronJob", "db-backup")
    minute, hour, day, month, weekday = cron["spec"]["schedule"].split()
    assert (day, month, weekday) == ("*", "*", "*") and hour.isdigit()
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    script = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "pg_dump --format=custom" in script
    restore = mc.find(prod_objects, "CronJob", "db-restore")
    assert restore["spec"]["suspend"] is True


# --- both ----------------------------------------------------------------------------------------

def kustomization(overlay: str) -> dict:
    return yaml.safe_load((REPO / "overlays" / overlay / "kustomization.yaml").read_text())


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_overlay_sets_our_images_by_digest(overlay):
    images = {i["name"]: i for i in kustomization(overlay).get("images", [])}
    assert set(images) == {"vote", "worker", "result"}
    for name, image in images.items():
        assert re.fullmatch(rf"ghcr\.io/[a-z0-9._-]+/[a-z0-9._-]+/{name}", image["newName"]), image  # <owner>/<repo>
        assert mc.DIGEST_RE.match(f"{image['newName']}@{image['digest']}"), image
        assert "newTag" not in image
        if image["digest"] == mc.PLACEHOLDER_DIGEST:
            warnings.warn(f"overlays/{overlay}: {name} still has the unreleased placeholder digest", stacklevel=1)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_overlay_repeats_no_base_manifest(overlay):
    base = {(o["kind"], o["metadata"]["name"]) for o in rendered_objects("base")}
    folder = REPO / "overlays" / overlay
    spec = kustomization(overlay)
    assert spec.get("resources", [])[0] == "../../base"
    for resource in spec["resources"][1:]:
        assert (folder / resource).is_file(), f"{resource}: overlays add plain files, not other trees"
        for doc in yaml.safe_load_all((folder / resource).read_text()):
            assert (doc["kind"], doc["metadata"]["name"]) not in base, f"{resource} repeats base {doc['kind']}"
    for patch in spec.get("patches", []):
        assert patch["path"].startswith("patch-"), f"patch {patch['path']} is not named patch-<what it changes>"
    listed = {*spec["resources"][1:], *(p["path"] for p in spec.get("patches", [])),
              *(r["path"] for r in spec.get("replacements", [])), "kustomization.yaml"}
    stray = {p.name for p in folder.glob("*.yaml")} - listed
    assert not stray, f"YAML files nobody renders: {stray}"


def service_env(objects, name) -> set[str]:
    """Every variable a service's pods get: env entries and the keys of ConfigMaps and Secrets they load."""
    spec = workload(objects, name)["spec"]["template"]["spec"]
    names = set()
    for c in spec["containers"]:
        names |= {e["name"] for e in c.get("env", [])}
        for source in c.get("envFrom", []):
            if "configMapRef" in source:
                names |= set(mc.find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
            if "secretRef" in source:
                names |= {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}
    return names


@pytest.mark.parametrize("name", ["vote", "worker", "result"])
def test_every_variable_we_set_is_one_the_service_reads(objects, name):
    sources = "".join(
        p.read_text() for folder in (REPO / "apps" / name / "src", REPO / "libs" / "contract" / "src")
        for p in folder.rglob("*.py")
    )
    unread = sorted(var for var in service_env(objects, name) if f'"{var}"' not in sources)
    assert unread == [], f"{name} never reads {unread}"
