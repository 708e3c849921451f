"""Every metric the alerts and the dashboard read is one our services really expose, scraped live."""

from __future__ import annotations

import time

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

import monitoring as mon
from devstack import stack
from promql_names import metric_names
from voting_contract.wire import QUEUE

pytestmark = pytest.mark.services

# kube-state-metrics series about our pods: no process here can expose them.
KUBE_STATE_METRICS = {
    "kube_pod_container_status_restarts_total": "restarts of each container (WorkerRestartingOften, the dashboard)",
    "kube_deployment_status_replicas_ready": "ready pods of each Deployment (NoWorkerReadyWithVotesWaiting)",
}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "summary": ("", "_count", "_sum", "_created"), "gauge": ("",), "untyped": ("",)}


def exposed_names(text: str) -> set[str]:
    """The series names a /metrics page has, and those its declared families will have once they count."""
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples}
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def wait_for(service: stack.Service, needle: str, timeout: float = 30.0) -> str:
    """The service's /metrics page, once it mentions needle."""
    deadline = time.monotonic() + timeout
    while True:
        text = httpx.get(service.url + "/metrics").text
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


@pytest.fixture(scope="module")
def exposed(redis_server, postgres_server, tmp_path_factory) -> set[str]:
    """Everything vote, worker and result expose after a vote and a malformed message went through."""
    logs = tmp_path_factory.mktemp("services")
    redis_env = stack.redis_env(redis_server.port)
    started = []
    try:
        for service in (stack.vote(redis_env), stack.worker(redis_env, postgres_server.env),
                        stack.result(postgres_server.env)):
            service.log_path = logs / f"{service.name}.log"
            started.append(service.start().wait_ready())
        vote, worker, result = started
        assert httpx.post(vote.url + "/", data={"vote": "a"}).status_code == 200
        redis.Redis.from_url(redis_server.url).rpush(QUEUE, b"not json")
        pages = [wait_for(vote, "vote_request_duration_seconds_bucket"),
                 wait_for(worker, "worker_votes_dead_lettered_total{"),
                 wait_for(result, "result_db_queries_total")]
        return {name for page in pages for name in exposed_names(page)}
    finally:
        for service in reversed(started):
            service.kill()


def queried_names() -> dict[str, set[str]]:
    """The metric names each alert (its expression and its annotations' queries), panel and variable reads."""
    rule = next(o for o in mon.render_component_cached() if o["kind"] == "PrometheusRule")
    found = {f"alert {a['alert']}": metric_names(a["expr"]) for a in mon.alerts(rule)}
    found |= {f"alert {a['alert']} annotations": set().union(*map(metric_names, mon.annotation_queries(a)))
              for a in mon.alerts(rule) if mon.annotation_queries(a)}
    found |= {f"panel {key}": metric_names(expr) for key, expr in mon.panel_queries(mon.dashboard()).items()}
    found |= {key: {name} for key, name in mon.variable_metrics(mon.dashboard()).items()}
    return found


def unknown(queried: dict[str, set[str]], exposed: set[str]) -> list[str]:
    return [f"{where}: {name}" for where, names in queried.items()
            for name in sorted(names - exposed - KUBE_STATE_METRICS.keys())]


def test_the_scrape_sees_each_service(exposed):
    assert {"vote_votes_cast_total", "worker_queue_depth", "result_db_connected"} <= exposed


def test_alerts_and_panels_name_only_exposed_metrics(exposed):
    assert unknown(queried_names(), exposed) == []


def test_every_kube_state_metric_allowed_is_used():
    used = set().union(*queried_names().values())
    assert KUBE_STATE_METRICS.keys() <= used


@pytest.mark.parametrize("typo", ["worker_queue_depths", "vote_votes_cast", "result_db_queries_total_sum"])
def test_a_panel_naming_a_metric_that_does_not_exist_is_caught(exposed, typo):
    board = mon.dashboard()
    mon.panels(board)[1]["targets"][0]["expr"] = f"max({typo})"
    queried = {f"panel {k}": metric_names(e) for k, e in mon.panel_queries(board).items()}
    assert unknown(queried, exposed) == [f"panel {mon.panels(board)[1]['title']}/A: {typo}"]


def test_an_alert_naming_a_metric_that_does_not_exist_is_caught(exposed):
    queried = {"alert Broken": metric_names("sum(rate(worker_retry_total[5m])) > 0")}
    assert unknown(queried, exposed) == ["alert Broken: worker_retry_total"]
