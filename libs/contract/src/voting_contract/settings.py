"""Reading settings from the environment, once, with errors that name the variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field


class SettingsError(ValueError):
    """A missing or malformed environment variable."""


def env_str(env: Mapping[str, str], name: str, default: str | None = None, *, max_length: int = 255) -> str:
    value = env.get(name)
    if value is None or value == "":
        if default is None:
            raise SettingsError(f"{name} is required but not set")
        return default
    if len(value) > max_length or not value.isprintable():
        raise SettingsError(f"{name} must be printable text of at most {max_length} characters")
    return value


def env_int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def env_float(env: Mapping[str, str], name: str, default: float, *, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def environ() -> Mapping[str, str]:
    """The process environment; the one place services read it."""
    return os.environ


def load(settings_type, service: str):
    """`settings_type.from_env` on the process environment, or exit naming the bad variable."""
    env = environ()
    try:
        return settings_type.from_env(env)
    except SettingsError as exc:
        from .logs import fatal

        fatal(service, f"configuration error: {exc}", env)
        raise SystemExit(1) from None


@dataclass(frozen=True)
class RedisSettings:
    host: str
    port: int
    password: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RedisSettings:
        return cls(
            host=env_str(env, "REDIS_HOST", "redis"),
            port=env_int(env, "REDIS_PORT", 6379, low=1, high=65535),
            password=env.get("REDIS_PASSWORD") or None,
        )


@dataclass(frozen=True)
class PostgresSettings:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PostgresSettings:
        return cls(
            host=env_str(env, "POSTGRES_HOST", "db"),
            port=env_int(env, "POSTGRES_PORT", 5432, low=1, high=65535),
            user=env_str(env, "POSTGRES_USER"),
            password=env_str(env, "POSTGRES_PASSWORD", max_length=1024),
            database=env_str(env, "POSTGRES_DB"),
        )

    def conninfo(self, *, connect_timeout: int = 3, application_name: str = "voting-app") -> str:
        """A libpq connection string; values are passed as keywords, never spliced into SQL."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=self.database,
            connect_timeout=connect_timeout, application_name=application_name,
        )


LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("debug", "info", "warning", "error")


def env_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or default).strip().lower()
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {env.get(name)!r}")
    return value


@dataclass(frozen=True)
class LogSettings:
    """How a service writes its log: one JSON object a line (the default) or short text lines."""

    format: str = "json"
    level: str = "info"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LogSettings:
        return cls(format=env_choice(env, "LOG_FORMAT", "json", LOG_FORMATS),
                   level=env_choice(env, "LOG_LEVEL", "info", LOG_LEVELS))


@dataclass(frozen=True)
class TracingSettings:
    """OpenTelemetry tracing: on only when OTEL_EXPORTER_OTLP_ENDPOINT names a collector."""

    service_name: str
    traces_url: str | None = None  # where spans are sent (OTLP over HTTP); None: tracing is off
    max_links: int = 5000  # a batch span links every vote in it; the largest batch is 5000

    @property
    def enabled(self) -> bool:
        return self.traces_url is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str], service: str) -> TracingSettings:
        name = env_str(env, "OTEL_SERVICE_NAME", service)
        max_links = env_int(env, "OTEL_SPAN_LINK_COUNT_LIMIT", 5000, low=0, high=100_000)
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or ""
        if not base or (env.get("OTEL_SDK_DISABLED") or "").strip().lower() == "true":
            return cls(name, None, max_links)
        # As the OpenTelemetry SDKs read these: the signal's own variable is a full URL, the
        # shared one a base to which /v1/traces is added.
        url = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or base.rstrip("/") + "/v1/traces"
        source = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") else \
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        if not url.startswith(("http://", "https://")) or len(url) > 1024 or not url.isprintable():
            raise SettingsError(f"{source} must be an http:// or https:// URL, got {env.get(source)!r}")
        return cls(name, url, max_links)
