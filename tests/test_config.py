"""A misconfigured service refuses to start and names the variable."""

import subprocess

import pytest

from devstack import stack

PG = {"POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": "1", "POSTGRES_USER": "u", "POSTGRES_PASSWORD": "p",
      "POSTGRES_DB": "d"}
REDIS = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": "1"}


@pytest.mark.parametrize(
    ("service", "bad", "name"),
    [
        (lambda env: stack.vote(REDIS, extra=env), {"REDIS_PORT": "sixty"}, "REDIS_PORT"),
        (lambda env: stack.vote(REDIS, extra=env), {"OPTION_A": "x" * 100}, "OPTION_A"),
        (lambda env: stack.vote(REDIS, extra=env), {"HTTP_WORKERS": "-2"}, "HTTP_WORKERS"),
        (lambda env: stack.worker(REDIS, PG, extra=env), {"POSTGRES_PASSWORD": ""}, "POSTGRES_PASSWORD"),
        (lambda env: stack.worker(REDIS, PG, extra=env), {"WORKER_BATCH_SIZE": "many"}, "WORKER_BATCH_SIZE"),
        (lambda env: stack.worker(REDIS, PG, extra=env), {"BALLOT": "a=Cats"}, "BALLOT"),
        (lambda env: stack.result(PG, extra=env), {"BALLOT": "a=Cats,c=Birds"}, "BALLOT"),
        (lambda env: stack.result(PG, extra=env), {"POSTGRES_DB": ""}, "POSTGRES_DB"),
        (lambda env: stack.result(PG, extra=env), {"PORT": "80x"}, "PORT"),
    ],
    ids=["vote-port", "vote-label", "vote-workers", "worker-password", "worker-batch", "worker-ballot", "result-ballot",
         "result-db", "result-port"],
)
def test_a_bad_variable_stops_the_service_with_its_name(service, bad, name, tmp_path):
    svc = service(bad)
    done = subprocess.run(svc.argv, env={**_base_env(), **svc.env}, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert name in done.stderr
    assert "Traceback" not in done.stderr


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "REDIS_", "OPTION_", "BALLOT"))}
