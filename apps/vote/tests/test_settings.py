import pytest

from voting_contract.settings import SettingsError
from vote.settings import Settings


def test_defaults():
    s = Settings.from_env({})
    assert (s.redis.host, s.redis.port, s.ballot.labels, s.port) == ("redis", 6379, ("Cats", "Dogs"), 8080)


@pytest.mark.parametrize(
    ("env", "name"),
    [({"PORT": "http"}, "PORT"), ({"HTTP_WORKERS": "0"}, "HTTP_WORKERS"), ({"REDIS_PORT": "1e3"}, "REDIS_PORT"),
     ({"BALLOT": "a=Cats"}, "BALLOT")],
)
def test_bad_settings_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)
