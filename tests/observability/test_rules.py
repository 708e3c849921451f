"""The PrometheusRule: promtool parses it, its unit tests pass, every alert is tested and has a runbook."""

from __future__ import annotations

import pytest

import monitoring as mon


def test_promtool_parses_the_rules(rule, tmp_path):
    done = mon.promtool("check", "rules", str(mon.rule_file(rule, tmp_path)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(mon.alerts(rule))} rules found" in done.stdout


def test_unit_tests_pass(rule, tmp_path):
    done = mon.run_unit_tests(mon.rule_file(rule, tmp_path), mon.unit_tests())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_fires_in_a_unit_test_and_stays_silent_in_another(rule):
    assert mon.untested_alerts(rule, mon.unit_tests()) == []


def test_every_alert_has_severity_summary_description_and_runbook(rule):
    assert mon.annotation_problems(rule, mon.RUNBOOKS.read_text()) == []


def test_every_runbook_section_belongs_to_an_alert(rule):
    sections = mon.anchors(mon.RUNBOOKS.read_text()) - {"runbooks"}
    assert sections == {a["alert"].lower() for a in mon.alerts(rule)}


def test_unit_tests_fail_when_a_rule_changes(rule, tmp_path):
    alert = next(a for a in mon.alerts(rule) if a["alert"] == "VoteQueueBacklog")
    alert["expr"] = alert["expr"].replace("> 1000", "> 2000")
    done = mon.run_unit_tests(mon.rule_file(rule, tmp_path), mon.unit_tests())
    assert done.returncode != 0
    assert "alertname: VoteQueueBacklog" in done.stdout + done.stderr


def test_an_alert_without_a_unit_test_is_reported(rule):
    tests = mon.unit_tests()
    tests["tests"] = [t for t in tests["tests"]
                      if all(c["alertname"] != "DeadLettersGrowing" for c in t["alert_rule_test"])]
    assert mon.untested_alerts(rule, tests) == [
        "DeadLettersGrowing: no unit test fires it",
        "DeadLettersGrowing: no unit test keeps it silent on healthy series",
    ]


def test_broken_promql_is_reported(rule, tmp_path):
    mon.alerts(rule)[0]["expr"] = "sum by (namespace (worker_queue_depth)"
    done = mon.promtool("check", "rules", str(mon.rule_file(rule, tmp_path)))
    assert done.returncode != 0
    assert "parse error" in done.stdout + done.stderr


ANNOTATION_BREAKAGES = [
    ("labels", "severity", None, "VoteQueueBacklog: no severity label"),
    ("annotations", "summary", None, "VoteQueueBacklog: no summary"),
    ("annotations", "description", None, "VoteQueueBacklog: no description"),
    ("annotations", "description", "The queue is long.", "VoteQueueBacklog: the description shows no number"),
    ("annotations", "runbook_url", None, "VoteQueueBacklog: no runbook_url"),
    ("annotations", "runbook_url", "docs/runbooks.md#votequeuebacklog", "is not https://github.com/"),
    ("annotations", "runbook_url", f"{mon.runbook_base()}#queue-is-long",
     "VoteQueueBacklog: docs/runbooks.md has no section #queue-is-long"),
]


@pytest.mark.parametrize(("part", "key", "value", "expected"), ANNOTATION_BREAKAGES,
                         ids=[f"{key}={value}" for _, key, value, _ in ANNOTATION_BREAKAGES])
def test_annotation_check_catches(rule, part, key, value, expected):
    alert = next(a for a in mon.alerts(rule) if a["alert"] == "VoteQueueBacklog")
    if value is None:
        del alert[part][key]
    else:
        alert[part][key] = value
    problems = mon.annotation_problems(rule, mon.RUNBOOKS.read_text())
    assert any(expected in p for p in problems), problems


def test_a_runbook_section_removed_is_reported(rule):
    text = mon.RUNBOOKS.read_text().replace("## DeadLettersGrowing", "## Dead letters")
    assert mon.annotation_problems(rule, text) == ["DeadLettersGrowing: docs/runbooks.md has no section #deadlettersgrowing"]
