"""The ballot: 2 to 8 options, ids `a`, `b`, `c`... in order, each with a label.

Read once from `BALLOT` (`a=Cats,b=Dogs,c=Birds`); without it, from the classic `OPTION_A` and
`OPTION_B`. vote, worker and result all read it here, so they agree on what a vote may be.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from .settings import SettingsError, env_str

IDS = "abcdefgh"
MIN_OPTIONS = 2
MAX_OPTIONS = len(IDS)
MAX_LABEL_LENGTH = 64
# An id no ballot can have: what tests and drills send when they mean "a vote that is not on the ballot".
NOT_ON_BALLOT = "z"


@dataclass(frozen=True, slots=True)
class Option:
    id: str
    label: str


@dataclass(frozen=True)
class Ballot:
    """The options in order; `"c" in ballot` says whether `c` is one of its ids."""

    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if not MIN_OPTIONS <= len(self.labels) <= MAX_OPTIONS:
            raise SettingsError(f"a ballot has {MIN_OPTIONS} to {MAX_OPTIONS} options, got {len(self.labels)}")

    @classmethod
    def of(cls, *labels: str) -> Ballot:
        return cls(tuple(labels))

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(IDS[: len(self.labels)])

    @property
    def options(self) -> tuple[Option, ...]:
        return tuple(Option(i, label) for i, label in zip(IDS, self.labels))

    def __iter__(self) -> Iterator[Option]:
        return iter(self.options)

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, option_id: object) -> bool:
        return type(option_id) is str and len(option_id) == 1 and option_id in IDS[: len(self.labels)]

    def label(self, option_id: str) -> str:
        if option_id not in self:
            raise KeyError(option_id)
        return self.labels[IDS.index(option_id)]

    @property
    def question(self) -> str:
        """`Cats or Dogs?`, `Cats, Dogs or Birds?`"""
        return f"{', '.join(self.labels[:-1])} or {self.labels[-1]}?"

    def text(self) -> str:
        """The ballot as `BALLOT` spells it."""
        return ",".join(f"{o.id}={o.label}" for o in self.options)

    @classmethod
    def parse(cls, text: str, name: str = "BALLOT") -> Ballot:
        """`a=Cats,b=Dogs,...`, or SettingsError naming `name` and what is wrong."""
        items = [item.strip() for item in text.split(",")]
        if not MIN_OPTIONS <= len(items) <= MAX_OPTIONS:
            raise SettingsError(f"{name} must list {MIN_OPTIONS} to {MAX_OPTIONS} options (a=Cats,b=Dogs,...), "
                                f"got {len(items)}")
        labels: list[str] = []
        seen: set[str] = set()
        for position, item in enumerate(items):
            option_id, equals, label = (part.strip() for part in item.partition("="))
            if not equals:
                raise SettingsError(f"{name}: option {position + 1} must be id=label, got {item!r}")
            if option_id in seen:
                raise SettingsError(f"{name}: option id {option_id!r} appears twice")
            if option_id != IDS[position]:
                raise SettingsError(f"{name}: option ids must be a, b, c, ... in order: option {position + 1} "
                                    f"must be {IDS[position]!r}, got {option_id!r}")
            if not label:
                raise SettingsError(f"{name}: option {option_id!r} has an empty label")
            if len(label) > MAX_LABEL_LENGTH or not label.isprintable():
                raise SettingsError(f"{name}: the label of option {option_id!r} must be printable text of at "
                                    f"most {MAX_LABEL_LENGTH} characters")
            seen.add(option_id)
            labels.append(label)
        return cls(tuple(labels))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Ballot:
        """`BALLOT` if set; else the classic `OPTION_A` and `OPTION_B` (Cats and Dogs by default)."""
        text = env.get("BALLOT")
        if text:
            both = [n for n in ("OPTION_A", "OPTION_B") if env.get(n)]
            if both:
                raise SettingsError(f"BALLOT and {' and '.join(both)} are both set: set BALLOT alone")
            if len(text) > 1024:
                raise SettingsError("BALLOT must be at most 1024 characters")
            return cls.parse(text)
        return cls.of(env_str(env, "OPTION_A", "Cats", max_length=MAX_LABEL_LENGTH),
                      env_str(env, "OPTION_B", "Dogs", max_length=MAX_LABEL_LENGTH))
