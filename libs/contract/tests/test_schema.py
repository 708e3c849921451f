import threading

import psycopg
import pytest

from voting_contract.schema import TALLIES_SQL, TALLY_CHANNEL, ensure_schema


def tallies(conn) -> dict[str, int]:
    return {vote: n for vote, n in conn.execute(TALLIES_SQL).fetchall() if n}


def counted(conn) -> dict[str, int]:
    return dict(conn.execute("SELECT vote, count(id) FROM votes GROUP BY vote").fetchall())


def test_the_contract_table_accepts_the_classic_columns(pg_conn):
    pg_conn.execute("INSERT INTO votes (id, vote) VALUES ('classic', 'a')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        pg_conn.execute("INSERT INTO votes (id, vote) VALUES ('classic', 'b')")
    with pytest.raises(psycopg.errors.NotNullViolation):
        pg_conn.execute("INSERT INTO votes (id) VALUES ('novote')")


def test_tallies_follow_every_kind_of_write(pg_conn):
    pg_conn.execute("INSERT INTO votes (id, vote) SELECT 'v' || i, CASE WHEN i % 3 = 0 THEN 'b' ELSE 'a' END "
                    "FROM generate_series(1, 300) i")
    assert tallies(pg_conn) == counted(pg_conn) == {"a": 200, "b": 100}
    # The classic worker's way: insert, and on a unique violation update, one row at a time.
    pg_conn.execute("UPDATE votes SET vote = 'b' WHERE id = 'v1'")
    pg_conn.execute("UPDATE votes SET vote = vote WHERE id = 'v2'")
    pg_conn.execute(
        "INSERT INTO votes AS v (id, vote) VALUES ('v4', 'b'), ('new', 'a') "
        "ON CONFLICT (id) DO UPDATE SET vote = EXCLUDED.vote"
    )
    pg_conn.execute("DELETE FROM votes WHERE id IN ('v5', 'v6')")  # v5 'a', v6 'b'
    assert tallies(pg_conn) == counted(pg_conn) == {"a": 198, "b": 101}
    pg_conn.execute("TRUNCATE votes")
    assert tallies(pg_conn) == {}


def test_a_rolled_back_write_leaves_the_tallies_alone(pg_conn):
    pg_conn.execute("INSERT INTO votes (id, vote) VALUES ('kept', 'a')")
    with pytest.raises(RuntimeError), pg_conn.transaction():
        pg_conn.execute("INSERT INTO votes (id, vote) VALUES ('gone', 'b')")
        raise RuntimeError("abort")
    assert tallies(pg_conn) == {"a": 1}


def test_rows_written_before_the_triggers_are_counted_once(pg_conn):
    for trigger in ("insert", "update", "delete", "truncate"):
        pg_conn.execute(f"DROP TRIGGER votes_tally_{trigger} ON votes")
    pg_conn.execute("INSERT INTO votes (id, vote) VALUES ('old1', 'a'), ('old2', 'b'), ('old3', 'b')")
    assert ensure_schema(pg_conn) is True
    assert tallies(pg_conn) == {"a": 1, "b": 2}
    assert ensure_schema(pg_conn) is False  # already there: no recount
    assert tallies(pg_conn) == {"a": 1, "b": 2}


def test_services_starting_together_do_not_race_on_the_schema(postgres_server, pg_conn):
    pg_conn.execute("DROP TABLE votes, vote_tallies")
    errors: list[BaseException] = []

    def setup() -> None:
        try:
            with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
                ensure_schema(conn)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=setup) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    pg_conn.execute("INSERT INTO votes (id, vote) VALUES ('after', 'a')")
    assert tallies(pg_conn) == {"a": 1}


def test_each_committed_change_notifies_listeners(postgres_server, pg_conn):
    with psycopg.connect(postgres_server.dsn, autocommit=True) as listener:
        listener.execute(f"LISTEN {TALLY_CHANNEL}")
        pg_conn.execute("INSERT INTO votes (id, vote) VALUES ('n1', 'a')")
        got = list(listener.notifies(timeout=5, stop_after=1))
        assert [n.channel for n in got] == [TALLY_CHANNEL]
        # A write that changes no tally (same vote again) sends nothing.
        pg_conn.execute("UPDATE votes SET vote = 'a' WHERE id = 'n1'")
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []
