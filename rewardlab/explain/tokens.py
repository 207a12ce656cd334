"""A (prompt, response) as the reward model reads it, with the character span of each response token.

The token ids are those of scoring (:func:`rewardlab.data.sequence.encode_pairs`, then the same truncation
as :class:`rewardlab.data.batching.Encoder`), so an explained reward equals the reward ``rewardlab score``
gives. Spans come from the fast tokenizer's offset mapping of the rendered text; they are character
offsets into the response string (for chat responses: into the last message's content). A token merged
across the prompt/response boundary counts as a response token starting at 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from rewardlab.data.batching import TRUNCATION_SIDES, truncate
from rewardlab.data.render import render
from rewardlab.data.sequence import encode_pairs, is_chat


@dataclass
class ExplainedSequence:
    """ids: token ids read by the RM; response: the response text the spans index into;
    positions[j]: index into ``ids`` of the j-th response token; spans[j]: its (start, end) in ``response``."""

    ids: list[int]
    response: str
    positions: list[int]
    spans: list[tuple[int, int]]

    def token_texts(self) -> list[str]:
        return [self.response[s:e] for s, e in self.spans]


def response_string(response) -> str:
    """The text the character offsets index into: the string, or the content of a chat response's last message."""
    if isinstance(response, str):
        return response
    return str(response[-1].get("content", "")) if response else ""


def encode_explained(tokenizer, prompt, response, append_eos: bool, max_length: int = 512,
                     truncation_side: str = "left") -> ExplainedSequence:
    """The ids scoring reads for (prompt, response) and where the response's tokens are (see the module docstring)."""
    if truncation_side not in TRUNCATION_SIDES:
        raise ValueError(f"unknown truncation side {truncation_side!r}; known: {', '.join(TRUNCATION_SIDES)}")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"explain needs a fast tokenizer (character offsets of tokens); {type(tokenizer).__name__} is not one")
    seq = encode_pairs(tokenizer, [prompt], [response], append_eos)[0]
    text = render(prompt, response, tokenizer)
    chat = is_chat(prompt, response)
    enc = tokenizer(text, add_special_tokens=not chat, return_offsets_mapping=True, truncation=False)
    offsets = list(enc["offset_mapping"])
    if list(enc["input_ids"]) != seq[: len(offsets)]:
        raise ValueError("the tokenizer's offset mapping does not match the ids scoring uses; cannot place tokens in the text")
    offsets += [(0, 0)] * (len(seq) - len(offsets))  # an appended EOS has no text
    body = response_string(response)
    start = text.rfind(body) if body else len(text)
    if start < 0:
        raise ValueError("the response text was not found in the rendered sequence (a chat template that rewrites content?)")
    end = start + len(body)

    first = {tokenizer.bos_token_id, tokenizer.cls_token_id} - {None}
    last = {tokenizer.eos_token_id, tokenizer.sep_token_id} - {None}
    kept = list(range(len(seq)))
    if len(seq) > max_length:
        kept = truncate(kept, max_length, truncation_side, bool(seq) and seq[0] in first, bool(seq) and seq[-1] in last)
    ids, positions, spans = [], [], []
    for new, old in enumerate(kept):
        ids.append(seq[old])
        s, e = offsets[old]
        if e > s and e > start and s < end:
            positions.append(new)
            spans.append((max(s, start) - start, min(e, end) - start))
    return ExplainedSequence(ids, body, positions, spans)
