"""The stylesheet both web services serve: a colour for every id a ballot can have."""

from __future__ import annotations

import re

from voting_contract.ballot import IDS
from voting_contract.web import ballot_stylesheet


def colour_problems(css: str, ids: str = IDS) -> list[str]:
    """Ids a ballot may use that the stylesheet gives no palette entry or no --option."""
    problems = []
    for option in ids:
        if not re.search(rf"--{option}:\s*#[0-9a-f]{{6}};", css):
            problems.append(f"no colour --{option}")
        if not re.search(rf"\.{option}\s*\{{\s*--option:\s*var\(--{option}\);\s*\}}", css):
            problems.append(f".{option} does not set --option")
    return problems


def test_every_id_a_ballot_can_have_has_a_colour():
    assert colour_problems(ballot_stylesheet().decode()) == []


def test_a_missing_colour_is_named():
    css = ballot_stylesheet().decode().replace(".h { --option: var(--h); }", "")
    assert colour_problems(css) == [".h does not set --option"]
