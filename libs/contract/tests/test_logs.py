import io
import json
import logging
import logging.config
import re

import pytest
from opentelemetry.sdk.trace import TracerProvider

from voting_contract.logs import Formatter, Quieter, config_dict, event, fatal, text_line, voter_ref
from voting_contract.settings import LogSettings, SettingsError

VOTER = "0123456789abcdef" * 2  # a well-formed voter id (32 hex digits)


def record(message: str = "queued a vote", *args, level: int = logging.INFO, name: str = "vote",
           extra: dict | None = None, exc_info=None) -> logging.LogRecord:
    made = logging.LogRecord(name, level, __file__, 1, message, args, exc_info)
    for key, value in (extra or {}).items():
        setattr(made, key, value)
    return made


def test_a_line_has_the_shared_fields_and_the_events_own():
    line = json.loads(Formatter("vote").format(record("queued a vote for %s", "b",
                                                      extra=event("vote.queued", voter="abc", time="no"))))
    assert list(line)[:5] == ["time", "level", "service", "event", "message"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert (line["level"], line["service"], line["event"], line["message"]) == (
        "info", "vote", "vote.queued", "queued a vote for b")
    assert line["voter"] == "abc"
    assert "trace_id" not in line
    assert line["time"] != "no"  # an event's field never replaces a shared one


def test_lines_of_other_loggers_get_a_stable_event():
    fmt = Formatter("vote")
    assert json.loads(fmt.format(record(name="gunicorn.error")))["event"] == "http.server"
    assert json.loads(fmt.format(record(name="hypercorn.access")))["event"] == "http.access"
    assert json.loads(fmt.format(record(name="asyncio")))["event"] == "log.asyncio"


def test_the_trace_id_is_there_while_a_span_is_current():
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("POST /") as span:
        line = json.loads(Formatter("vote").format(record()))
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")


def test_a_traceback_stays_inside_one_json_line():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        text = Formatter("worker").format(record("failed", level=logging.ERROR, exc_info=sys.exc_info()))
    assert "\n" not in text
    assert "ValueError: boom" in json.loads(text)["error"]


def test_text_is_one_line_a_record_and_continues_indented():
    assert text_line({"time": "2026-12-01T10:02:03.456Z", "level": "info", "service": "worker",
                      "event": "worker.batch_committed", "message": "committed 3 messages", "votes": 3}) == (
        "10:02:03 info    worker worker.batch_committed: committed 3 messages")
    two = text_line({"time": "2026-12-01T10:02:03.456Z", "level": "error", "service": "vote", "event": "vote.x",
                     "message": "first\nsecond", "error": "Traceback\nValueError"})
    assert two.splitlines() == ["10:02:03 error   vote vote.x: first", "    second", "    Traceback", "    ValueError"]


def test_a_voter_reference_is_short_stable_and_not_the_id():
    ref = voter_ref(VOTER)
    assert re.fullmatch(r"[0-9a-f]{12}", ref) and ref == voter_ref(VOTER) and ref != voter_ref(VOTER[::-1])
    assert ref not in VOTER


def test_the_servers_access_lines_are_on_only_at_debug():
    at = {level: config_dict("vote", LogSettings("json", level)) for level in ("debug", "info")}
    assert at["debug"]["loggers"]["gunicorn.access"]["level"] == "INFO"
    assert at["info"]["loggers"]["gunicorn.access"]["level"] == "WARNING"
    assert at["info"]["root"]["level"] == "INFO"


def test_the_config_routes_every_logger_through_the_format():
    config = config_dict("result", LogSettings("json", "info"))
    out = io.StringIO()
    config["handlers"]["stderr"]["stream"] = out
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logging.config.dictConfig(config)
        logging.getLogger("hypercorn.error").info("Running on http://127.0.0.1:1")
        logging.getLogger("hypercorn.access").info("GET / 200")  # below its level at info
        logging.getLogger("result.feed").warning("lost PostgreSQL", extra=event("result.db_lost"))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["service"], line["event"]) for line in lines] == [("result", "http.server"),
                                                                   ("result", "result.db_lost")]


def test_a_fatal_line_follows_the_asked_format(capsys):
    fatal("vote", "configuration error: PORT must be a whole number", {})
    line = json.loads(capsys.readouterr().err)
    assert (line["level"], line["event"]) == ("critical", "vote.misconfigured")
    fatal("vote", "configuration error: PORT must be a whole number", {"LOG_FORMAT": "text"})
    assert re.fullmatch(r"\d\d:\d\d:\d\d critical vote vote\.misconfigured: configuration error: PORT .*\n",
                        capsys.readouterr().err)


@pytest.mark.parametrize(("env", "name"), [({"LOG_FORMAT": "yaml"}, "LOG_FORMAT"), ({"LOG_LEVEL": "loud"}, "LOG_LEVEL")])
def test_log_settings_name_a_bad_value(env, name):
    assert LogSettings.from_env({}) == LogSettings("json", "info")
    assert LogSettings.from_env({"LOG_FORMAT": "Text", "LOG_LEVEL": "DEBUG"}) == LogSettings("text", "debug")
    with pytest.raises(SettingsError, match=name):
        LogSettings.from_env(env)


def test_the_sdks_repeated_warnings_are_written_once_a_minute():
    quieter = Quieter()
    records = [record("Queue full, dropping %s.", "span", name="opentelemetry.sdk._shared_internal")
               for _ in range(3)]
    records[2].created = records[0].created + 61
    assert [quieter.filter(r) for r in records] == [True, False, True]
    ours = [record("redis stopped answering") for _ in range(3)]
    assert all(quieter.filter(r) for r in ours)  # only the SDK's lines are thinned
