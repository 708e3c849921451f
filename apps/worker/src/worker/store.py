"""Writing a batch to PostgreSQL: one statement, one transaction."""

from __future__ import annotations

import psycopg

from voting_contract.schema import TRACE_SETTING, ensure_schema
from voting_contract.settings import PostgresSettings

from .batch import Plan

# Each voter's row changes only for a newer vote: a batch applied twice (after a crash) or
# out of order (several workers) can never bring back an older choice.
UPSERT_SQL = """
INSERT INTO votes AS v (id, vote, seq)
SELECT id, vote, seq FROM json_to_recordset(%s::json) AS r(id VARCHAR, vote VARCHAR, seq BIGINT)
ON CONFLICT (id) DO UPDATE SET vote = EXCLUDED.vote, seq = EXCLUDED.seq
WHERE v.seq IS NULL OR EXCLUDED.seq IS NULL OR v.seq < EXCLUDED.seq
"""


class Store:
    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self.conn: psycopg.Connection | None = None

    def connect(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.settings.conninfo(application_name="vote-worker"), autocommit=True)
            ensure_schema(self.conn)
        return self.conn

    def write(self, plan: Plan, traceparent: str | None = None) -> int:
        """Upsert the batch; the number of rows it changed (an older vote changes none)."""
        if not plan.votes:
            return 0
        conn = self.connect()
        try:
            with conn.transaction():
                if traceparent is not None:
                    # Sent by the tally trigger as its NOTIFY payload: result links to this commit.
                    conn.execute("SELECT set_config(%s, %s, true)", (TRACE_SETTING, traceparent))
                return conn.execute(UPSERT_SQL, (plan.rows,)).rowcount
        except psycopg.OperationalError:
            self.close()
            raise

    def ping(self) -> None:
        self.connect().execute("SELECT 1")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
