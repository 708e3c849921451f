import pytest

from voting_contract.ballot import Ballot
from voting_contract.settings import PostgresSettings, RedisSettings, SettingsError, env_float, env_int

PG = {"POSTGRES_USER": "u", "POSTGRES_PASSWORD": "p", "POSTGRES_DB": "d"}


def test_defaults_match_the_classic_demo():
    assert RedisSettings.from_env({}) == RedisSettings("redis", 6379, None)
    assert Ballot.from_env({}) == Ballot.of("Cats", "Dogs")
    pg = PostgresSettings.from_env(PG)
    assert (pg.host, pg.port, pg.user, pg.database) == ("db", 5432, "u", "d")


def test_the_password_never_shows_in_a_repr():
    assert "secret-value" not in repr(PostgresSettings.from_env({**PG, "POSTGRES_PASSWORD": "secret-value"}))


@pytest.mark.parametrize("missing", ["POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"])
def test_a_missing_credential_is_named(missing):
    env = {k: v for k, v in PG.items() if k != missing}
    with pytest.raises(SettingsError, match=missing):
        PostgresSettings.from_env(env)


@pytest.mark.parametrize(
    ("parse", "env", "name"),
    [
        (RedisSettings.from_env, {"REDIS_PORT": "six"}, "REDIS_PORT"),
        (RedisSettings.from_env, {"REDIS_PORT": "0"}, "REDIS_PORT"),
        (RedisSettings.from_env, {"REDIS_PORT": "70000"}, "REDIS_PORT"),
        (Ballot.from_env, {"OPTION_A": "x" * 65}, "OPTION_A"),
        (Ballot.from_env, {"OPTION_B": "tab\there"}, "OPTION_B"),
    ],
)
def test_a_malformed_value_is_named(parse, env, name):
    """One parser a case: each raises by itself, naming the variable."""
    with pytest.raises(SettingsError, match=name):
        parse(env)


def test_numbers_are_checked_against_their_range():
    assert env_int({"N": " 7 "}, "N", 1, low=1, high=10) == 7
    assert env_float({}, "F", 2.5, low=0, high=3) == 2.5
    with pytest.raises(SettingsError, match="F must be a number"):
        env_float({"F": "fast"}, "F", 1, low=0, high=3)
