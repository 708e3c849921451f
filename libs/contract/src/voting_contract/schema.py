"""The PostgreSQL schema: the contract's `votes` table and the tallies kept beside it.

`votes` is the classic demo's table plus a nullable `seq` column, which the classic writers
and readers never name. `vote_tallies` holds one exact count per option, maintained by
statement-level triggers on `votes`, so reading the results costs the same at ten rows or
ten million and stays right whoever writes `votes` (our worker, the classic worker, psql).
Each change also sends a NOTIFY on TALLY_CHANNEL so the result service reads only on change;
its payload is the writer's TRACE_SETTING (a W3C traceparent, set only while tracing is on) or
empty, so result's span can link to the commit that caused it.
"""

from __future__ import annotations

TALLY_CHANNEL = "vote_tallies"
# Any fixed number: serialises schema setup between services that start together.
SCHEMA_LOCK_KEY = 0x766F7465
# A transaction-local setting the worker fills with its commit span's traceparent.
TRACE_SETTING = "voting.traceparent"

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS votes (
    id VARCHAR(255) NOT NULL UNIQUE,
    vote VARCHAR(255) NOT NULL
);
ALTER TABLE votes ADD COLUMN IF NOT EXISTS seq BIGINT;
CREATE TABLE IF NOT EXISTS vote_tallies (
    vote VARCHAR(255) PRIMARY KEY,
    n BIGINT NOT NULL
);

-- Rows are applied in the order of `vote`, so two writers always lock tally rows in the
-- same order and cannot deadlock each other.
CREATE OR REPLACE FUNCTION vote_tallies_apply(deltas JSONB) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    changed BIGINT;
BEGIN
    INSERT INTO vote_tallies AS t (vote, n)
    SELECT key, value::BIGINT FROM jsonb_each_text(deltas) ORDER BY key
    ON CONFLICT (vote) DO UPDATE SET n = t.n + EXCLUDED.n;
    GET DIAGNOSTICS changed = ROW_COUNT;
    IF changed > 0 THEN
        PERFORM pg_notify('{channel}', coalesce(current_setting('{trace_setting}', true), ''));
    END IF;
END $$;

CREATE OR REPLACE FUNCTION votes_tally_insert() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vote_tallies_apply(
        (SELECT jsonb_object_agg(vote, n) FROM (SELECT vote, count(*) AS n FROM new_rows GROUP BY vote) c));
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION votes_tally_update() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vote_tallies_apply(
        (SELECT jsonb_object_agg(vote, n) FROM (
            SELECT vote, sum(d) AS n FROM (
                SELECT vote, 1 AS d FROM new_rows
                UNION ALL
                SELECT vote, -1 AS d FROM old_rows
            ) moves GROUP BY vote HAVING sum(d) <> 0
        ) c));
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION votes_tally_delete() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vote_tallies_apply(
        (SELECT jsonb_object_agg(vote, -n) FROM (SELECT vote, count(*) AS n FROM old_rows GROUP BY vote) c));
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION votes_tally_truncate() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE vote_tallies SET n = 0 WHERE n <> 0;
    PERFORM pg_notify('{channel}', '');
    RETURN NULL;
END $$;
"""

TRIGGERS_SQL = """
CREATE OR REPLACE TRIGGER votes_tally_insert AFTER INSERT ON votes
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION votes_tally_insert();
CREATE OR REPLACE TRIGGER votes_tally_update AFTER UPDATE ON votes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION votes_tally_update();
CREATE OR REPLACE TRIGGER votes_tally_delete AFTER DELETE ON votes
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION votes_tally_delete();
CREATE OR REPLACE TRIGGER votes_tally_truncate AFTER TRUNCATE ON votes
    FOR EACH STATEMENT EXECUTE FUNCTION votes_tally_truncate();
"""

# Run only when the triggers are new: counts the rows written before they existed, once,
# while writers wait on the lock so that no change slips between the count and the triggers.
RECOUNT_SQL = """
LOCK TABLE votes IN SHARE ROW EXCLUSIVE MODE;
DELETE FROM vote_tallies;
INSERT INTO vote_tallies (vote, n) SELECT vote, count(*) FROM votes GROUP BY vote;
"""

SCHEMA_SQL = SCHEMA_SQL.replace("{channel}", TALLY_CHANNEL).replace("{trace_setting}", TRACE_SETTING)
TALLIES_SQL = "SELECT vote, n FROM vote_tallies"


def ensure_schema(conn) -> bool:
    """Create or update the schema idempotently; True when the tallies were recounted.

    `conn` is a psycopg (sync) connection; the work is one transaction under an advisory lock,
    so services starting together never race on CREATE.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        conn.execute(SCHEMA_SQL)
        missing = conn.execute(
            "SELECT count(*) < 4 FROM pg_trigger WHERE tgrelid = 'votes'::regclass AND tgname LIKE 'votes_tally_%%'"
        ).fetchone()[0]
        conn.execute(TRIGGERS_SQL)
        if missing:
            conn.execute(RECOUNT_SQL)
        return bool(missing)
