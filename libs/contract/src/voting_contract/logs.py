"""Logs: one JSON object a line in every service, or one short text line for a person.

Every line has `time` (RFC 3339, UTC), `level`, `service`, `event` (a short stable name such
as `vote.queued`), `message`, and `trace_id` while a span is current; an event may add a few
fields of its own (`extra=event("worker.batch_committed", votes=12)`). A voter id is never
written: `voter_ref` gives a short keyed hash that tells one voter's lines apart.

The servers' own loggers (gunicorn, hypercorn) go through the same handler; their lines get
the events `http.server` and `http.access`, and any other library's the event `log.<logger>`.
"""

from __future__ import annotations

import hmac
import logging
import logging.config
import secrets
import sys
import threading
import time
import traceback
from collections.abc import Mapping

import orjson
from opentelemetry import trace

from .settings import LOG_FORMATS, LogSettings

# Lines from loggers that are not ours get a stable event from the logger's name.
SERVER_EVENTS = {
    "gunicorn.error": "http.server",
    "gunicorn.access": "http.access",
    "hypercorn.error": "http.server",
    "hypercorn.access": "http.access",
    "py.warnings": "python.warning",
}
FIELDS = ("time", "level", "service", "event", "message", "trace_id", "error")
# Drawn once per process (before gunicorn forks, so its workers share it): a reference links
# one voter's lines in one service's log and cannot be turned back into the id.
_VOTER_KEY = secrets.token_bytes(16)


def event(name: str, **fields: object) -> dict[str, object]:
    """The `extra` of a log call: its event name and the fields it adds."""
    return {"event": name, "fields": fields}


def voter_ref(voter_id: str) -> str:
    """A short keyed hash of a voter id, the only form in which a voter appears in a log."""
    return hmac.new(_VOTER_KEY, voter_id.encode("utf-8", "surrogatepass"), "sha256").hexdigest()[:12]


def rfc3339(created: float) -> str:
    millis = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


def current_trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


class Formatter(logging.Formatter):
    """Writes a record as one JSON object (`style="json"`) or one short line (`style="text"`)."""

    def __init__(self, service: str, style: str = "json") -> None:
        super().__init__()
        if style not in LOG_FORMATS:
            raise ValueError(f"log format must be one of {LOG_FORMATS}, got {style!r}")
        self.service = service
        self.text = style == "text"

    def fields(self, record: logging.LogRecord) -> dict[str, object]:
        line: dict[str, object] = {
            "time": rfc3339(record.created),
            "level": record.levelname.lower(),
            "service": self.service,
            "event": getattr(record, "event", None) or SERVER_EVENTS.get(record.name) or f"log.{record.name}",
            "message": record.getMessage(),
        }
        trace_id = current_trace_id()
        if trace_id:
            line["trace_id"] = trace_id
        if record.exc_info:
            line["error"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.stack_info:
            line["error"] = record.stack_info
        extra = getattr(record, "fields", None)
        if isinstance(extra, Mapping):
            for key, value in extra.items():
                if key not in FIELDS:
                    line[key] = value
        return line

    def format(self, record: logging.LogRecord) -> str:
        line = self.fields(record)
        if self.text:
            return text_line(line)
        return orjson.dumps(line, default=str).decode()


def text_line(line: Mapping[str, object]) -> str:
    """`12:04:05 info    worker worker.batch_committed: committed 3 messages...`: one line a record.

    The message says what a person needs; an event's own fields are for machines (JSON) only.
    What does not fit on one line (a traceback, gunicorn's configuration at level debug) follows
    it indented, so every line that starts a record starts with its time.
    """
    clock = str(line["time"])[11:19]
    first, *more = str(line["message"]).splitlines() or [""]
    text = f"{clock} {line['level']:<7} {line['service']} {line['event']}: {first}"
    if "error" in line:
        more += str(line["error"]).splitlines()
    return "\n".join([text, *("    " + m for m in more)])


class Quieter(logging.Filter):
    """At most one line a minute for each message of the OpenTelemetry SDK.

    With the collector away, the SDK warns once per span it drops: one line per vote.
    """

    def __init__(self, prefix: str = "opentelemetry", interval: float = 60.0) -> None:
        super().__init__()
        self.prefix, self.interval = prefix, interval
        self._last: dict[tuple[str, object], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            return True
        key = (record.name, record.msg)
        last = self._last.get(key)
        if last is not None and record.created - last < self.interval:
            return False
        self._last[key] = record.created
        return True


def config_dict(service: str, settings: LogSettings) -> dict:
    """A `logging.config.dictConfig` mapping: one handler on stderr, and the servers' loggers sent to it.

    gunicorn takes it as `logconfig_dict`. Access lines are written only at level debug: at
    info a busy ballot would write one line per vote, which the proxy in front logs already.
    """
    level = settings.level.upper()
    server = {"level": level, "handlers": [], "propagate": True}
    access = {"level": "INFO" if settings.level == "debug" else "WARNING", "handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"voting": {"()": Formatter, "service": service, "style": settings.format}},
        "filters": {"quieter": {"()": Quieter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "voting",
                                "filters": ["quieter"]}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": server, "gunicorn.access": access,
            "hypercorn.error": server, "hypercorn.access": access,
        },
    }


def configure(service: str, settings: LogSettings) -> None:
    """Send every log line of this process, warnings and uncaught exceptions through the format."""
    logging.config.dictConfig(config_dict(service, settings))
    logging.captureWarnings(True)
    crash = logging.getLogger(service)

    def uncaught(exc_type, exc, tb) -> None:
        crash.critical("uncaught exception", exc_info=(exc_type, exc, tb), extra=event(f"{service}.crashed"))

    def uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not SystemExit:
            crash.critical("uncaught exception in thread %s", getattr(args.thread, "name", "?"),
                           exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
                           extra=event(f"{service}.crashed"))

    sys.excepthook = uncaught
    threading.excepthook = uncaught_in_thread


def fatal(service: str, message: str, env: Mapping[str, str]) -> None:
    """One error line on stderr before logging is set up (a bad setting), in the format asked for."""
    style = "text" if (env.get("LOG_FORMAT") or "").strip().lower() == "text" else "json"
    record = logging.LogRecord(service, logging.CRITICAL, __file__, 0, message, None, None)
    record.event = f"{service}.misconfigured"
    print(Formatter(service, style).format(record), file=sys.stderr, flush=True)
