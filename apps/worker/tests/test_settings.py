import pytest

from voting_contract.settings import SettingsError
from worker.settings import Settings

BASE = {"POSTGRES_USER": "u", "POSTGRES_PASSWORD": "p", "POSTGRES_DB": "d"}


def test_defaults():
    s = Settings.from_env(BASE)
    assert (s.redis.host, s.postgres.host, s.batch_size, s.metrics_port) == ("redis", "db", 1000, 9102)
    assert s.block_seconds < s.heartbeat_seconds


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"POSTGRES_USER": ""}, "POSTGRES_USER"),
        ({"WORKER_BATCH_SIZE": "0"}, "WORKER_BATCH_SIZE"),
        ({"WORKER_BATCH_SIZE": "lots"}, "WORKER_BATCH_SIZE"),
        ({"METRICS_PORT": "-1"}, "METRICS_PORT"),
        ({"POSTGRES_PORT": "5432x"}, "POSTGRES_PORT"),
        ({"BALLOT": "a=Cats,a=Dogs"}, "BALLOT"),
    ],
)
def test_bad_settings_name_the_variable(change, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({**BASE, **change})
