"""The worker's settings, read once from the environment."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from voting_contract.ballot import Ballot
from voting_contract.settings import PostgresSettings, RedisSettings, env_float, env_int, env_str


@dataclass(frozen=True)
class Settings:
    redis: RedisSettings
    postgres: PostgresSettings
    ballot: Ballot
    worker_id: str
    batch_size: int
    host: str
    metrics_port: int
    heartbeat_seconds: float
    block_seconds: float

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        heartbeat = env_float(env, "WORKER_HEARTBEAT_SECONDS", 10.0, low=1.0, high=600.0)
        return cls(
            redis=RedisSettings.from_env(env),
            postgres=PostgresSettings.from_env(env),
            ballot=Ballot.from_env(env),
            # In a pod the hostname is the pod name and the pid is 1, so a restarted container
            # takes its own unfinished batch back at once; elsewhere others reclaim it later.
            worker_id=env_str(env, "WORKER_ID", f"{socket.gethostname()}-{os.getpid()}", max_length=200),
            batch_size=env_int(env, "WORKER_BATCH_SIZE", 1000, low=1, high=5000),
            host=env_str(env, "HOST", "0.0.0.0"),
            metrics_port=env_int(env, "METRICS_PORT", 9102, low=1, high=65535),
            heartbeat_seconds=heartbeat,
            # Blocking waits stay well inside the heartbeat so it never lapses while idle.
            block_seconds=min(2.0, heartbeat / 3),
        )
