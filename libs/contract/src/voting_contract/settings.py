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
    try:
        return settings_type.from_env(environ())
    except SettingsError as exc:
        raise SystemExit(f"{service}: configuration error: {exc}") from None


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
