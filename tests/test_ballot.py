"""Adding a fourth option is a change to one ConfigMap value and nothing else.

An overlay of each overlay merges a four-option BALLOT into the ConfigMap `ballot`; the rendered
objects differ from the overlay's own in that value (and the name hash that follows it) only.
Then vote, worker and result run with the environment the Deployments give them, and a vote for
the fourth option reaches the results.
"""

from __future__ import annotations

import copy
import os
import re
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from devstack import stack

# The one renderer of tests/manifests (the pinned kubectl), under --import-mode=importlib.
sys.path.insert(0, str(Path(__file__).resolve().parent / "manifests"))
from manifest_render import REPO, kustomize  # noqa: E402

FOUR = "a=Cats,b=Dogs,c=Birds,d=Fish"
SERVICES = ("vote", "worker", "result")


def render(folder: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(kustomize(folder)) if doc]


def with_ballot(tmp_path: Path, overlay: str, ballot: str) -> list[dict]:
    """The overlay rendered through a kustomization that only merges `BALLOT` into the ConfigMap."""
    wrapper = tmp_path / f"{overlay}-with-ballot"
    wrapper.mkdir()
    (wrapper / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(REPO / "overlays" / overlay, wrapper)],
        "configMapGenerator": [{"name": "ballot", "behavior": "merge", "literals": [f"BALLOT={ballot}"]}],
    }))
    return render(wrapper)


def without_ballot_hash(objects: list[dict]) -> str:
    """The objects as text with the ballot ConfigMap's generated name made plain."""
    return re.sub(r"\bballot-[a-z0-9]{10}\b", "ballot", yaml.safe_dump_all(objects, sort_keys=True))


def ballot_env(objects: list[dict], name: str) -> str:
    """BALLOT as the kubelet would resolve it for the Deployment `name` (env value or valueFrom, or envFrom)."""
    (deployment,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    config_maps = {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}
    for item in container.get("env", []):
        if item["name"] == "BALLOT":
            if "valueFrom" not in item:
                return item.get("value", "")
            ref = item["valueFrom"]["configMapKeyRef"]
            return config_maps[ref["name"]][ref["key"]]
    for source in container.get("envFrom", []):
        if "configMapRef" in source and "BALLOT" in config_maps[source["configMapRef"]["name"]]:
            return config_maps[source["configMapRef"]["name"]]["BALLOT"]
    return ""


def differences(plain: list[dict], changed: list[dict], ballot: str) -> list[str]:
    """How `changed` differs from `plain` beyond the ConfigMap `ballot` holding `ballot`."""
    problems = [f"{name} gets BALLOT={ballot_env(changed, name)!r}" for name in SERVICES
                if ballot_env(changed, name) != ballot]
    changed = copy.deepcopy(changed)
    for obj in changed:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"].startswith("ballot-"):
            obj["data"]["BALLOT"] = ballot_env(plain, "vote")
    if without_ballot_hash(changed) != without_ballot_hash(plain):
        problems.append("objects other than the ballot ConfigMap's value differ")
    return problems


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_a_new_ballot_changes_one_configmap_value_and_nothing_else(tmp_path, overlay):
    plain = render(REPO / "overlays" / overlay)
    assert {name: ballot_env(plain, name) for name in SERVICES} == dict.fromkeys(SERVICES, "a=Cats,b=Dogs")
    assert differences(plain, with_ballot(tmp_path, overlay, FOUR), FOUR) == []


def test_the_comparison_sees_a_service_that_does_not_follow_and_any_other_change(tmp_path):
    plain = render(REPO / "overlays" / "dev")
    four = with_ballot(tmp_path, "dev", FOUR)
    pinned = copy.deepcopy(four)
    (worker,) = [o for o in pinned if o["kind"] == "Deployment" and o["metadata"]["name"] == "worker"]
    env = worker["spec"]["template"]["spec"]["containers"][0]["env"]
    env[:] = [e for e in env if e["name"] != "BALLOT"] + [{"name": "BALLOT", "value": "a=Cats,b=Dogs"}]
    assert differences(plain, pinned, FOUR)[0] == "worker gets BALLOT='a=Cats,b=Dogs'"
    more = copy.deepcopy(four)
    (vote,) = [o for o in more if o["kind"] == "Deployment" and o["metadata"]["name"] == "vote"]
    vote["spec"]["replicas"] = 4
    assert differences(plain, more, FOUR) == ["objects other than the ballot ConfigMap's value differ"]


def test_a_vote_for_the_fourth_option_reaches_the_results(tmp_path, redis_server, postgres_server, redis_client,
                                                          pg_conn, launch):
    objects = with_ballot(tmp_path, "dev", FOUR)
    env = {name: {"BALLOT": ballot_env(objects, name)} for name in SERVICES}
    redis_env = stack.redis_env(redis_server.port)
    vote = launch(stack.vote(redis_env, extra=env["vote"]))
    launch(stack.worker(redis_env, postgres_server.env, extra=env["worker"]))
    result = launch(stack.result(postgres_server.env, extra=env["result"]))

    with httpx.Client(base_url=vote.url) as voter:
        page = voter.get("/").text
        assert re.findall(r'<button name="vote" value="(\w)"', page) == ["a", "b", "c", "d"]
        response = voter.post("/", data={"vote": "d"})
        assert response.status_code == 200 and "Your vote for Fish is in." in response.text

    deadline = time.monotonic() + 15
    while True:
        options = httpx.get(f"{result.url}/api/results").json()["options"]
        if options[3]["votes"] == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [(o["id"], o["label"], o["votes"], o["percent"]) for o in options] == [
        ("a", "Cats", 0, 0.0), ("b", "Dogs", 0, 0.0), ("c", "Birds", 0, 0.0), ("d", "Fish", 1, 100.0)]
    assert pg_conn.execute("SELECT vote, n FROM vote_tallies WHERE n > 0").fetchall() == [("d", 1)]
