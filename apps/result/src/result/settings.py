"""The result service's settings, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from voting_contract.ballot import Ballot
from voting_contract.settings import PostgresSettings, env_float, env_int, env_str


@dataclass(frozen=True)
class Settings:
    postgres: PostgresSettings
    ballot: Ballot
    host: str
    port: int
    recheck_seconds: float

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            postgres=PostgresSettings.from_env(env),
            ballot=Ballot.from_env(env),
            host=env_str(env, "HOST", "0.0.0.0"),
            port=env_int(env, "PORT", 8080, low=1, high=65535),
            # Without a notification for this long, read anyway: it proves the connection is alive.
            recheck_seconds=env_float(env, "RESULT_RECHECK_SECONDS", 30.0, low=0.5, high=3600.0),
        )
