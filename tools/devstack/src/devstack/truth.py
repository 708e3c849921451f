"""The ground-truth comparison: PostgreSQL's rows and tallies against every voter's last acknowledged vote."""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field

import psycopg

from voting_contract.ballot import Ballot

# The ballot of the services this process starts: they inherit its environment (BALLOT, or the
# classic OPTION_A/OPTION_B) and read it with the same parser. Load, drills and bench vote on its ids.
BALLOT = Ballot.from_env(os.environ)


@dataclass
class Comparison:
    """How the rows differ from the truth, counted; with the voter ids behind each count."""

    expected: int
    lost: int
    extra: int
    wrong: int
    refused_counted: int = 0  # rows holding a vote answered 503 "could not confirm"
    verdicts: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.lost == self.extra == self.wrong == 0

    def __str__(self) -> str:
        return f"{self.expected} voters expected: {self.lost} lost, {self.extra} extra, {self.wrong} with an older vote"


def classify(rows: dict[str, str], truth: dict[str, str],
             refused: dict[str, set[str]] | None = None) -> dict[str, list[str]]:
    """Voter ids by verdict: lost, extra, wrong (an older vote won) and refused_counted.

    `refused` holds, per voter, choices left unconfirmed since their last acknowledged vote: a
    row holding one of those is counted apart, not as an older vote winning or an extra row.
    """
    refused = refused or {}
    verdicts: dict[str, list[str]] = {"lost": [], "extra": [], "wrong": [], "refused_counted": []}
    for voter, choice in truth.items():
        if voter not in rows:
            verdicts["lost"].append(voter)
        elif rows[voter] != choice:
            verdicts["refused_counted" if rows[voter] in refused.get(voter, ()) else "wrong"].append(voter)
    for voter, choice in rows.items():
        if voter not in truth:
            verdicts["refused_counted" if choice in refused.get(voter, ()) else "extra"].append(voter)
    return verdicts


def compare_rows(rows: dict[str, str], truth: dict[str, str],
                 refused: dict[str, set[str]] | None = None) -> Comparison:
    """The rows (voter id to vote) against the truth, as counts."""
    verdicts = classify(rows, truth, refused)
    return Comparison(len(truth), len(verdicts["lost"]), len(verdicts["extra"]), len(verdicts["wrong"]),
                      len(verdicts["refused_counted"]), verdicts)


def compare(conn: psycopg.Connection, truth: dict[str, str],
            refused: dict[str, set[str]] | None = None) -> Comparison:
    """The votes table against the truth."""
    rows = dict(conn.execute("SELECT id, vote FROM votes").fetchall())
    return compare_rows(rows, truth, refused)


def expected_tallies(truth: dict[str, str]) -> dict[str, int]:
    """The totals per option that the truth adds up to."""
    return dict(collections.Counter(truth.values()))


@dataclass
class Audit:
    """A drill's verdict on the database: the rows against the truth, and the tallies against the rows."""

    outcome: Comparison
    rows: dict[str, str]
    truth: dict[str, str]
    tallies: dict[str, int]  # as the triggers keep them in vote_tallies

    @property
    def rows_tallied(self) -> dict[str, int]:
        return dict(collections.Counter(self.rows.values()))

    @property
    def off_ballot(self) -> int:
        return sum(1 for vote in self.rows.values() if vote not in BALLOT)

    def _lost(self) -> str | None:
        lost = sorted(self.outcome.verdicts["lost"])
        return f"{len(lost)} acknowledged voters missing (e.g. {', '.join(lost[:5])})" if lost else None

    def _extra(self) -> str | None:
        extra = sorted(self.outcome.verdicts["extra"])
        return f"{len(extra)} rows nobody acknowledged (e.g. {', '.join(extra[:5])})" if extra else None

    def _wrong(self) -> str | None:
        wrong = sorted(self.outcome.verdicts["wrong"])
        sample = [f"{v}={self.rows[v]}, acked {self.truth[v]}" for v in wrong[:3]]
        return f"{len(wrong)} voters with an older vote winning (e.g. {'; '.join(sample)})" if wrong else None

    def _miscounted(self) -> str | None:
        if self.tallies == self.rows_tallied:
            return None
        return f"tallies {self.tallies} != the rows' own count {self.rows_tallied}"

    def _off(self) -> str | None:
        return f"{self.off_ballot} rows not on the ballot ({', '.join(BALLOT.ids)})" if self.off_ballot else None

    def losses(self) -> list[str]:
        """Acknowledged votes missing, or overtaken by an older one."""
        return [p for p in (self._lost(), self._wrong()) if p]

    def corruption(self) -> list[str]:
        """Rows nobody acknowledged, tallies that disagree with the rows, votes off the ballot."""
        return [p for p in (self._extra(), self._miscounted(), self._off()) if p]

    def problems(self) -> list[str]:
        """Every way the database differs from the truth."""
        return [p for p in (self._lost(), self._extra(), self._wrong(), self._miscounted(), self._off()) if p]

    def counts(self) -> dict:
        """The comparison as a row's counts."""
        o = self.outcome
        return {"voters": o.expected, "lost": o.lost, "extra": o.extra, "wrong": o.wrong,
                "refused_counted": o.refused_counted, "tallies": self.tallies}

    def text(self) -> str:
        """The comparison for the table."""
        o, counted = self.outcome, self.tallies
        text = (f"{o.expected} voters' last acked vote vs PostgreSQL: {o.lost} lost, {o.extra} extra, "
                f"{o.wrong} older-vote-won; tallies a={counted.get('a', 0)} b={counted.get('b', 0)}")
        if o.refused_counted:
            text += f"; {o.refused_counted} unconfirmed votes (503 'could not confirm') counted"
        return text


def audit(dsn: str, truth: dict[str, str], uncertain: set[str] = frozenset(),
          refused: dict[str, set[str]] | None = None) -> Audit:
    """Rows and trigger-kept tallies of the database at `dsn` against the truth.

    `uncertain` voters (whose only votes were neither acknowledged nor refused) are left out.
    `refused` holds, per voter, the choices left unconfirmed after their last acknowledged vote.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        if uncertain:
            conn.execute("DELETE FROM votes WHERE id = ANY(%s)", (list(uncertain),))
        rows = dict(conn.execute("SELECT id, vote FROM votes").fetchall())
        counted = {vote: n for vote, n in conn.execute("SELECT vote, n FROM vote_tallies WHERE n <> 0").fetchall()}
    return Audit(compare_rows(rows, truth, refused), rows, truth, counted)
