import pytest

from voting_contract.ballot import NOT_ON_BALLOT, Ballot
from voting_contract.settings import SettingsError


def test_ballot_lists_ids_in_order_with_their_labels():
    ballot = Ballot.from_env({"BALLOT": "a=Cats, b=Dogs ,c=Birds"})
    assert ballot.ids == ("a", "b", "c")
    assert [(o.id, o.label) for o in ballot] == [("a", "Cats"), ("b", "Dogs"), ("c", "Birds")]
    assert ballot.label("c") == "Birds"
    assert ballot.question == "Cats, Dogs or Birds?"
    assert Ballot.parse(ballot.text()) == ballot
    assert "c" in ballot and "d" not in ballot and NOT_ON_BALLOT not in ballot and "ab" not in ballot


def test_eight_options_and_labels_with_equals_signs():
    text = ",".join(f"{i}=Option {i}" for i in "abcdefgh")
    assert len(Ballot.parse(text)) == 8
    assert Ballot.parse("a=x=1,b=y").labels == ("x=1", "y")


def test_without_ballot_the_classic_variables_work():
    assert Ballot.from_env({}) == Ballot.of("Cats", "Dogs")
    classic = Ballot.from_env({"OPTION_A": "Tabs", "OPTION_B": "Spaces"})
    assert (classic.ids, classic.question) == (("a", "b"), "Tabs or Spaces?")
    assert Ballot.from_env({"BALLOT": ""}) == Ballot.of("Cats", "Dogs")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a=Cats", "BALLOT must list 2 to 8 options"),
        (",".join(f"{i}=x" for i in "abcdefghi"), "BALLOT must list 2 to 8 options .* got 9"),
        ("a=Cats,a=Dogs", "BALLOT: option id 'a' appears twice"),
        ("a=Cats,b=", "BALLOT: option 'b' has an empty label"),
        ("a=Cats,b=  ", "BALLOT: option 'b' has an empty label"),
        ("b=Dogs,a=Cats", "BALLOT: option ids must be a, b, c, ... in order: option 1 must be 'a', got 'b'"),
        ("a=Cats,c=Birds", "option 2 must be 'b', got 'c'"),
        ("a=Cats,B=Dogs", "option 2 must be 'b', got 'B'"),
        ("a=Cats,Dogs", "BALLOT: option 2 must be id=label, got 'Dogs'"),
        ("a=Cats,b=" + "x" * 65, "BALLOT: the label of option 'b' must be printable"),
        ("a=Cats,b=tab\there", "BALLOT: the label of option 'b' must be printable"),
        ("a=Cats,,b=Dogs", "BALLOT: option 2 must be id=label"),
    ],
)
def test_a_malformed_ballot_is_refused_naming_the_variable(text, message):
    with pytest.raises(SettingsError, match=message):
        Ballot.from_env({"BALLOT": text})


def test_ballot_and_the_classic_variables_together_are_refused():
    with pytest.raises(SettingsError, match="BALLOT and OPTION_A are both set"):
        Ballot.from_env({"BALLOT": "a=Cats,b=Dogs", "OPTION_A": "Cats"})


def test_a_ballot_built_in_code_is_checked_too():
    with pytest.raises(SettingsError, match="2 to 8 options, got 1"):
        Ballot.of("alone")
