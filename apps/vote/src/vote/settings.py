"""The vote service's settings, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from voting_contract.ballot import Ballot
from voting_contract.settings import RedisSettings, env_int, env_str


@dataclass(frozen=True)
class Settings:
    redis: RedisSettings
    ballot: Ballot
    host: str
    port: int
    workers: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            redis=RedisSettings.from_env(env),
            ballot=Ballot.from_env(env),
            host=env_str(env, "HOST", "0.0.0.0"),
            port=env_int(env, "PORT", 8080, low=1, high=65535),
            workers=env_int(env, "HTTP_WORKERS", 1, low=1, high=4 * (os.cpu_count() or 1) + 1),
        )
