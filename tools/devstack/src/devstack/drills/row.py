"""One line of the drills' table: what a drill did, what it compared, and the verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Row:
    """One line of the table: what a drill did, the counts it compared, and whether they held."""

    name: str
    did: str
    compared: str
    ok: bool
    measured: bool = False  # a figure reported, not a promise checked
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if not self.ok:
            return "FAIL"
        return "MEASURED" if self.measured else "PASS"

    def to_json(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


def judge(name: str, did: str, compared: str, problems: list[str], counts: dict, *, measured: bool = False) -> Row:
    """A row that holds when there are no problems."""
    return Row(name, did, compared, ok=not problems, measured=measured, counts=counts, problems=problems)
