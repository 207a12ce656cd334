"""Validated records: one row of data (a dict keyed by rewardlab's field names) → one record, or an error
that says exactly where and what is wrong.

The four data forms (DESIGN.md, "Data forms") and their fields:

    pairs     prompt?, chosen, rejected, margin?, tie?     → PairRecord
    rankings  prompt, responses, ranks?                    → RankRecord
    ratings   prompt, response, score? and/or scores?      → RatingRecord
    labels    prompt, response, label                      → LabelRecord

Text is a string or a list of chat messages ``[{"role": str, "content": str}, ...]``.

Pairs without a ``prompt`` have an *implicit prompt*: ``chosen`` and ``rejected`` each hold the whole
transcript and the prompt is what they share:

* HH-RLHF transcripts (``"\\n\\nHuman: … \\n\\nAssistant: …"``, Bai et al. 2022, "Training a Helpful and
  Harmless Assistant with RLHF"): split at the start of the LAST assistant turn, so the prompt ends with
  ``"\\n\\nAssistant:"`` and each response is the last assistant turn (its leading space kept, so that
  ``prompt + response`` is the original transcript). Both transcripts must agree on every earlier turn.
* other text: the longest common prefix, cut back to a whitespace boundary so no word is split.
* chat messages: the shared leading messages are the prompt; the remaining messages are the responses.

Bad records raise :class:`DataError` naming the source ("file:line"), the field and what was expected.
"""

from __future__ import annotations

import math

from rewardlab.types import LabelRecord, PairRecord, RankRecord, RatingRecord, Text

FORMS = ("pairs", "rankings", "ratings", "labels")
FIELDS = {
    "pairs": ("prompt", "chosen", "rejected", "margin", "tie"),
    "rankings": ("prompt", "responses", "ranks"),
    "ratings": ("prompt", "response", "score", "scores"),
    "labels": ("prompt", "response", "label"),
}
HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"
TEXT = "a string or a list of chat messages"
LABEL_WORDS = {"good": 1, "bad": 0, "true": 1, "false": 0, "1": 1, "0": 0}


class DataError(ValueError):
    """A bad record: ``"{where}: field '{field}': {problem}"``, e.g.
    ``data/x.jsonl:17: field 'chosen': expected a string or a list of chat messages, got int``."""

    def __init__(self, where: str, field: str | None, problem: str):
        self.where, self.field, self.problem = where, field, problem
        super().__init__(f"{where}: field '{field}': {problem}" if field else f"{where}: {problem}")


def check_form(form: str) -> str:
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; known: {', '.join(FORMS)}")
    return form


def describe(value) -> str:
    """A short name for what was found, for error messages: 'int', 'null', 'an empty string', …"""
    if value is None:
        return "null"
    if isinstance(value, str) and not value.strip():
        return "an empty string" if not value else "a blank string"
    if isinstance(value, (list, tuple)) and not value:
        return "an empty list"
    return type(value).__name__


def require(row: dict, field: str, where: str, expected: str):
    """``row[field]``, or a DataError listing the fields the row does have."""
    if row.get(field) is None:
        have = ", ".join(sorted(k for k, v in row.items() if v is not None)) or "none"
        raise DataError(where, field, f"missing; expected {expected} (fields present: {have}; "
                                      f"map other column names with columns={{'{field}': ...}})")
    return row[field]


def check_messages(value: list, where: str, field: str) -> list:
    """A non-empty list of ``{"role": str, "content": str}`` dicts (other keys are kept)."""
    if not value:
        raise DataError(where, field, f"expected {TEXT}, got an empty list")
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            raise DataError(where, f"{field}[{i}]", f"expected a chat message {{'role': str, 'content': str}}, "
                                                    f"got {describe(m)}")
        for key in ("role", "content"):
            if not isinstance(m.get(key), str):
                raise DataError(where, f"{field}[{i}].{key}", f"expected a string, got {describe(m.get(key))}")
        if not m["role"].strip():
            raise DataError(where, f"{field}[{i}].role", "expected a role such as 'user' or 'assistant', got "
                                                         "an empty string")
    return list(value)


def check_text(value, where: str, field: str, allow_empty: bool = False) -> Text:
    """A string (non-blank unless ``allow_empty``) or a list of chat messages."""
    if isinstance(value, str):
        if not allow_empty and not value.strip():
            raise DataError(where, field, f"expected a non-empty response, got {describe(value)}")
        return value
    if isinstance(value, (list, tuple)):
        if allow_empty and not value:
            return []
        return check_messages(list(value), where, field)
    raise DataError(where, field, f"expected {TEXT}, got {describe(value)}")


def check_nonempty_response(value: Text, where: str, field: str, what: str = "response") -> Text:
    """Reject a blank string, an empty message list, or messages whose contents are all blank."""
    if isinstance(value, str):
        got = None if value.strip() else describe(value)
    else:
        got = "no messages" if not value else (
            "only messages with blank content" if all(not m["content"].strip() for m in value) else None)
    if got:
        raise DataError(where, field, f"expected a non-empty {what}, got {got}")
    return value


def check_number(value, where: str, field: str) -> float:
    """A finite int or float (bools are rejected: True is not a score)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(where, field, f"expected a number, got {describe(value)}"
                        + (f" {value!r}" if isinstance(value, str) else ""))
    if not math.isfinite(value):
        raise DataError(where, field, f"expected a finite number, got {value!r}")
    return float(value)


def check_bool(value, where: str, field: str) -> bool:
    if not isinstance(value, bool):
        raise DataError(where, field, f"expected true or false, got {describe(value)}")
    return value


def check_label(value, where: str, field: str = "label") -> int:
    """good/bad, true/false, 1/0 (bool, int, float 0.0/1.0, or those words in any case) → 1 or 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in LABEL_WORDS:
        return LABEL_WORDS[value.strip().lower()]
    shown = repr(value) if isinstance(value, (str, int, float)) else describe(value)
    raise DataError(where, field, f"expected good/bad, true/false or 1/0, got {shown}")


# ---------------------------------------------------------------------------------------------- implicit prompts

def common_prefix_length(a, b) -> int:
    """Number of leading items (characters or messages) that ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def split_hh(chosen: str, rejected: str, where: str) -> tuple[str, str, str]:
    """Split two HH-RLHF transcripts at the start of their last assistant turn → (prompt, chosen, rejected).

    The prompt ends with ``"\\n\\nAssistant:"``; the responses are the last assistant turns.
    """
    parts = []
    for field, text in (("chosen", chosen), ("rejected", rejected)):
        cut = text.rfind(ASSISTANT)
        if cut < 0:
            raise DataError(where, field, "expected an HH-RLHF transcript with a '\\n\\nAssistant:' turn")
        cut += len(ASSISTANT)
        response = text[cut:]
        if HUMAN in response:
            raise DataError(where, field, "expected the transcript to end with an assistant turn, "
                                          "but a Human turn follows the last one")
        parts.append((text[:cut], response))
    (p_chosen, r_chosen), (p_rejected, r_rejected) = parts
    if p_chosen != p_rejected:
        k = common_prefix_length(chosen, rejected)
        raise DataError(where, "rejected", f"expected chosen and rejected to share every turn but the last; their "
                                           f"last assistant turns start at characters {len(p_chosen)} and "
                                           f"{len(p_rejected)}, and they first differ at character {k} "
                                           f"({chosen[k:k + 30]!r} vs {rejected[k:k + 30]!r})")
    check_nonempty_response(r_chosen, where, "chosen", "last assistant turn")
    check_nonempty_response(r_rejected, where, "rejected", "last assistant turn")
    return p_chosen, r_chosen, r_rejected


def split_text(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Common prefix of two texts, cut back to a whitespace boundary → (prompt, chosen, rejected).

    The prompt keeps its trailing whitespace, so ``prompt + chosen`` is the original text.
    """
    cut = common_prefix_length(chosen, rejected)
    while cut > 0 and not chosen[cut - 1].isspace():
        cut -= 1
    return chosen[:cut], chosen[cut:], rejected[cut:]


def split_messages(chosen: list, rejected: list) -> tuple[list, list, list]:
    """Shared leading messages are the prompt; the rest of each conversation is its response."""
    k = common_prefix_length(chosen, rejected)
    return chosen[:k], chosen[k:], rejected[k:]


def strip_prompt_messages(prompt: list, response: list) -> list:
    """Drop the prompt's messages from the start of a response that repeats them (a common layout, where
    ``chosen`` holds the whole conversation beside a separate ``prompt``)."""
    return response[len(prompt):] if prompt and response[: len(prompt)] == prompt else response


# ---------------------------------------------------------------------------------------------- the four forms

def pair_from_row(row: dict, where: str) -> tuple[PairRecord, str]:
    """A row of the pairs form → (PairRecord, layout name for the load report).

    Layouts: "explicit prompt", "conversational", "hh-rlhf transcripts", "implicit prompt (common prefix)",
    "conversational (implicit prompt)". A string prompt beside chat-message responses becomes one user
    message; responses that start with the prompt's messages have them removed.
    """
    chosen = check_text(require(row, "chosen", where, TEXT), where, "chosen", allow_empty=True)
    rejected = check_text(require(row, "rejected", where, TEXT), where, "rejected", allow_empty=True)
    if isinstance(chosen, str) != isinstance(rejected, str):
        raise DataError(where, "rejected", f"expected the same kind of text as 'chosen' ({describe(chosen)}), "
                                           f"got {describe(rejected)}")
    if chosen == rejected:
        raise DataError(where, "rejected", "identical to 'chosen': a pair needs two different responses")
    prompt = row.get("prompt")
    if prompt is None:
        if isinstance(chosen, list):
            prompt, chosen, rejected = split_messages(chosen, rejected)
            layout = "conversational (implicit prompt)"
        elif ASSISTANT in chosen and ASSISTANT in rejected:
            prompt, chosen, rejected = split_hh(chosen, rejected, where)
            layout = "hh-rlhf transcripts"
        else:
            prompt, chosen, rejected = split_text(chosen, rejected)
            layout = "implicit prompt (common prefix)"
    else:
        prompt = check_text(prompt, where, "prompt", allow_empty=True)
        layout = "explicit prompt"
        if isinstance(chosen, list):
            layout = "conversational"
            if isinstance(prompt, str):
                prompt = [{"role": "user", "content": prompt}] if prompt else []
            chosen, rejected = strip_prompt_messages(prompt, chosen), strip_prompt_messages(prompt, rejected)
    check_nonempty_response(chosen, where, "chosen")
    check_nonempty_response(rejected, where, "rejected")
    if chosen == rejected:
        raise DataError(where, "rejected", "identical to 'chosen' after removing the prompt: "
                                           "a pair needs two different responses")
    margin = row.get("margin")
    margin = None if margin is None else check_number(margin, where, "margin")
    tie = row.get("tie")
    tie = False if tie is None else check_bool(tie, where, "tie")
    return PairRecord(prompt, chosen, rejected, margin=margin, tie=tie, source=where), layout


def ranking_from_row(row: dict, where: str) -> tuple[RankRecord, str]:
    """``responses`` best first (ranks 1..K), or ``responses`` + ``ranks`` (lower = better, ties allowed); K ≥ 2."""
    prompt = check_text(require(row, "prompt", where, TEXT), where, "prompt", allow_empty=True)
    responses = require(row, "responses", where, "a list of at least 2 responses")
    if not isinstance(responses, (list, tuple)):
        raise DataError(where, "responses", f"expected a list of at least 2 responses, got {describe(responses)}")
    if len(responses) < 2:
        raise DataError(where, "responses", f"expected a list of at least 2 responses, got {len(responses)}")
    responses = [check_text(r, where, f"responses[{i}]") for i, r in enumerate(responses)]
    for i in range(len(responses)):
        for j in range(i):
            if responses[i] == responses[j]:
                raise DataError(where, f"responses[{i}]", f"identical to responses[{j}]: a ranking needs "
                                                          f"different responses")
    ranks = row.get("ranks")
    if ranks is None:
        return RankRecord(prompt, tuple(responses), tuple(float(i + 1) for i in range(len(responses))),
                          source=where), "responses best first"
    if not isinstance(ranks, (list, tuple)):
        raise DataError(where, "ranks", f"expected a list of numbers, got {describe(ranks)}")
    if len(ranks) != len(responses):
        raise DataError(where, "ranks", f"expected one rank per response ({len(responses)}), got {len(ranks)}")
    ranks = tuple(check_number(r, where, f"ranks[{i}]") for i, r in enumerate(ranks))
    return RankRecord(prompt, tuple(responses), ranks, source=where), "responses + ranks"


def rating_from_row(row: dict, where: str) -> tuple[RatingRecord, str]:
    """``score`` (a number) and/or ``scores`` (a non-empty dict attribute → number; an attribute whose value is
    null was not rated and is left out of the dict, so a multi-attribute RM learns nothing about it from this record)."""
    prompt = check_text(require(row, "prompt", where, TEXT), where, "prompt", allow_empty=True)
    response = check_text(require(row, "response", where, TEXT), where, "response")
    score, scores = row.get("score"), row.get("scores")
    if score is None and scores is None:
        raise DataError(where, "score", "missing; expected a number in 'score' or a dict of numbers in 'scores'")
    score = None if score is None else check_number(score, where, "score")
    if scores is not None:
        if not isinstance(scores, dict) or not scores:
            raise DataError(where, "scores", f"expected a non-empty dict of attribute → number, got "
                                             f"{'an empty dict' if scores == {} else describe(scores)}")
        scores = {str(k): check_number(v, where, f"scores.{k}") for k, v in scores.items() if v is not None}
        if not scores and score is None:
            raise DataError(where, "scores", "every attribute is null (not rated) and there is no 'score'")
        scores = scores or None
    layout = "score + scores" if score is not None and scores else ("score" if score is not None else "scores")
    return RatingRecord(prompt, response, score=score, scores=scores, source=where), layout


def label_from_row(row: dict, where: str) -> tuple[LabelRecord, str]:
    """``label``: good/bad, true/false or 1/0 → 1/0."""
    prompt = check_text(require(row, "prompt", where, TEXT), where, "prompt", allow_empty=True)
    response = check_text(require(row, "response", where, TEXT), where, "response")
    label = check_label(require(row, "label", where, "good/bad, true/false or 1/0"), where)
    return LabelRecord(prompt, response, label, source=where), "labels"


BUILDERS = {"pairs": pair_from_row, "rankings": ranking_from_row, "ratings": rating_from_row,
            "labels": label_from_row}


def record_from_row(row: dict, where: str, form: str):
    """The record of ``form`` built from ``row`` → (record, layout); DataError when the row is bad."""
    return BUILDERS[check_form(form)](row, where)
