"""Validated records: the four forms, implicit prompts, chat messages and every kind of bad record."""

import pytest

from rewardlab.data.formats import hh_to_messages
from rewardlab.data.records import (
    DataError,
    check_form,
    label_from_row,
    pair_from_row,
    ranking_from_row,
    rating_from_row,
    split_text,
)
from rewardlab.types import LabelRecord, PairRecord, RankRecord, RatingRecord

HH_CHOSEN = ("\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: Name a fruit."
             "\n\nAssistant: An apple.")
HH_REJECTED = ("\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: Name a fruit."
               "\n\nAssistant: A carrot, which is a vegetable.")
U = {"role": "user", "content": "Name a fruit."}
A1 = {"role": "assistant", "content": "An apple."}
A2 = {"role": "assistant", "content": "A carrot."}


def test_explicit_prompt_pair_with_margin_and_tie():
    rec, layout = pair_from_row({"prompt": "Q?", "chosen": "yes", "rejected": "no", "margin": 2, "tie": True}, "f:3")
    assert rec == PairRecord("Q?", "yes", "no", margin=2.0, tie=True, source="f:3")
    assert layout == "explicit prompt"


def test_hh_transcript_split_at_last_assistant_turn():
    """Both transcripts share everything up to the last "\\n\\nAssistant:" (3 earlier turns), so the prompt is
    that shared text including the marker, and the responses are the last turns with their leading space."""
    rec, layout = pair_from_row({"chosen": HH_CHOSEN, "rejected": HH_REJECTED}, "f:1")
    assert layout == "hh-rlhf transcripts"
    assert rec.prompt == ("\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: Name a fruit."
                          "\n\nAssistant:")
    assert rec.chosen == " An apple."
    assert rec.rejected == " A carrot, which is a vegetable."
    assert rec.prompt + rec.chosen == HH_CHOSEN and rec.prompt + rec.rejected == HH_REJECTED


def test_hh_split_does_not_cut_inside_a_shared_word_of_the_last_turn():
    """Both last turns start with " A": the common prefix runs into them, but the split is at the turn marker."""
    row = {"chosen": "\n\nHuman: q\n\nAssistant: A b", "rejected": "\n\nHuman: q\n\nAssistant: A c"}
    rec, _ = pair_from_row(row, "w")
    assert (rec.prompt, rec.chosen, rec.rejected) == ("\n\nHuman: q\n\nAssistant:", " A b", " A c")


def test_generic_implicit_prompt_cut_back_to_whitespace():
    """Common prefix of "The answer is 42." and "The answer is 41." is "The answer is 4"; cut back to the
    last whitespace → prompt "The answer is " (space kept so prompt + response is the original)."""
    rec, layout = pair_from_row({"chosen": "The answer is 42.", "rejected": "The answer is 41."}, "w")
    assert layout == "implicit prompt (common prefix)"
    assert (rec.prompt, rec.chosen, rec.rejected) == ("The answer is ", "42.", "41.")
    assert split_text("Hello", "Hello world") == ("", "Hello", "Hello world")  # no whitespace in "Hello"
    assert split_text("a b\nc d", "a b\nc e") == ("a b\nc ", "d", "e")


def test_conversational_implicit_prompt_is_the_shared_leading_messages():
    rec, layout = pair_from_row({"chosen": [U, A1], "rejected": [U, A2]}, "w")
    assert layout == "conversational (implicit prompt)"
    assert (rec.prompt, rec.chosen, rec.rejected) == ([U], [A1], [A2])


def test_conversational_explicit_prompt_repeated_in_responses_is_removed():
    """ultrafeedback_binarized layout: prompt is a string, chosen/rejected repeat it as the first user message."""
    rec, layout = pair_from_row({"prompt": "Name a fruit.", "chosen": [U, A1], "rejected": [U, A2]}, "w")
    assert layout == "conversational"
    assert (rec.prompt, rec.chosen, rec.rejected) == ([U], [A1], [A2])
    rec, _ = pair_from_row({"prompt": [U], "chosen": "An apple.", "rejected": "A carrot."}, "w")
    assert (rec.prompt, rec.chosen) == ([U], "An apple.")


@pytest.mark.parametrize("row, field, expected", [
    ({"prompt": "q", "chosen": 3, "rejected": "b"}, "chosen", "expected a string or a list of chat messages, got int"),
    ({"prompt": "q", "rejected": "b"}, "chosen", "missing; expected a string or a list of chat messages"),
    ({"prompt": "q", "chosen": "a", "rejected": "a"}, "rejected", "identical to 'chosen'"),
    ({"chosen": HH_CHOSEN, "rejected": HH_CHOSEN}, "rejected", "identical to 'chosen'"),
    ({"prompt": "q", "chosen": "  ", "rejected": "b"}, "chosen", "expected a non-empty response, got a blank string"),
    ({"chosen": "\n\nHuman: q\n\nAssistant: ", "rejected": "\n\nHuman: q\n\nAssistant: b"}, "chosen",
     "expected a non-empty last assistant turn"),
    ({"chosen": "\n\nHuman: x\n\nAssistant: a", "rejected": "\n\nHuman: y\n\nAssistant: b"}, "rejected",
     "share every turn but the last"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "margin": "big"}, "margin", "expected a number, got str 'big'"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "margin": float("nan")}, "margin", "expected a finite number"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "tie": "yes"}, "tie", "expected true or false, got str"),
    ({"prompt": "q", "chosen": [{"role": "assistant"}], "rejected": [A2]}, "chosen[0].content",
     "expected a string, got null"),
    ({"prompt": "q", "chosen": [A1], "rejected": "b"}, "rejected", "expected the same kind of text as 'chosen'"),
    ({"chosen": [U, A1], "rejected": [U]}, "rejected", "expected a non-empty response, got no messages"),
])
def test_bad_pairs_name_source_field_and_expectation(row, field, expected):
    with pytest.raises(DataError) as e:
        pair_from_row(row, "data/x.jsonl:17")
    assert e.value.field == field
    assert str(e.value).startswith(f"data/x.jsonl:17: field '{field}': ")
    assert expected in str(e.value)


def test_rankings_best_first_or_with_ranks():
    rec, layout = ranking_from_row({"prompt": "p", "responses": ["a", "b", "c"]}, "w")
    assert rec == RankRecord("p", ("a", "b", "c"), (1.0, 2.0, 3.0), source="w") and layout == "responses best first"
    rec, layout = ranking_from_row({"prompt": "p", "responses": ["a", "b", "c"], "ranks": [2, 1, 2]}, "w")
    assert rec.ranks == (2.0, 1.0, 2.0) and layout == "responses + ranks"


@pytest.mark.parametrize("row, field, expected", [
    ({"prompt": "p", "responses": ["a"]}, "responses", "expected a list of at least 2 responses, got 1"),
    ({"prompt": "p", "responses": "a b"}, "responses", "got str"),
    ({"prompt": "p", "responses": ["a", "b"], "ranks": [1]}, "ranks", "expected one rank per response (2), got 1"),
    ({"prompt": "p", "responses": ["a", "b"], "ranks": [1, None]}, "ranks[1]", "expected a number, got null"),
    ({"prompt": "p", "responses": ["a", "a"]}, "responses[1]", "identical to responses[0]"),
    ({"responses": ["a", "b"]}, "prompt", "missing"),
])
def test_bad_rankings(row, field, expected):
    with pytest.raises(DataError, match="^w: field") as e:
        ranking_from_row(row, "w")
    assert e.value.field == field and expected in str(e.value)


def test_ratings_score_and_scores():
    rec, layout = rating_from_row({"prompt": "p", "response": "r", "score": 3}, "w")
    assert rec == RatingRecord("p", "r", score=3.0, source="w") and layout == "score"
    rec, layout = rating_from_row({"prompt": "p", "response": "r", "scores": {"help": 1, "safe": 0.5}}, "w")
    assert rec.scores == {"help": 1.0, "safe": 0.5} and rec.score is None and layout == "scores"
    for row, field in [({"prompt": "p", "response": "r"}, "score"),
                       ({"prompt": "p", "response": "r", "scores": {"help": "x"}}, "scores.help"),
                       ({"prompt": "p", "response": "r", "score": True}, "score"),
                       ({"prompt": "p", "response": "r", "scores": {}}, "scores")]:
        with pytest.raises(DataError) as e:
            rating_from_row(row, "w")
        assert e.value.field == field


@pytest.mark.parametrize("value, label", [("good", 1), ("Bad", 0), (True, 1), (False, 0), (1, 1), (0, 0),
                                          ("true", 1), ("FALSE", 0), ("1", 1), ("0", 0), (1.0, 1)])
def test_labels(value, label):
    rec, _ = label_from_row({"prompt": "p", "response": "r", "label": value}, "w")
    assert rec == LabelRecord("p", "r", label, source="w")


@pytest.mark.parametrize("value", ["maybe", 2, 0.5, None, [1]])
def test_bad_labels(value):
    with pytest.raises(DataError, match="field 'label'") as e:
        label_from_row({"prompt": "p", "response": "r", "label": value}, "w")
    assert "good/bad, true/false or 1/0" in str(e.value)


def test_unknown_form_lists_known():
    with pytest.raises(ValueError, match="pairs, rankings, ratings, labels"):
        check_form("triples")


def test_hh_to_messages():
    assert hh_to_messages(HH_CHOSEN) == [
        {"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Name a fruit."}, {"role": "assistant", "content": "An apple."}]
    prompt = pair_from_row({"chosen": HH_CHOSEN, "rejected": HH_REJECTED}, "w")[0].prompt
    assert hh_to_messages(prompt)[-1] == {"role": "assistant", "content": ""}  # the open last turn
    with pytest.raises(ValueError, match="start with"):
        hh_to_messages("hello\n\nHuman: hi")
    with pytest.raises(ValueError, match="no '"):
        hh_to_messages("  ")
