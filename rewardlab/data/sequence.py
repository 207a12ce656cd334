"""The sequence convention: which token ids a reward model reads for (prompt, response), and where.

One convention for every place a sequence is scored (``train``, ``eval``, ``score``, ``study``, the RM
rewards of ``optimize``), the one TRL's ``RewardTrainer`` and OpenRLHF train with:

* **plain text**: ``render(prompt, response)`` tokenised with the tokenizer's special tokens; with
  ``append_eos`` the EOS id is appended unless the sequence already ends with it (a tokenizer whose
  post-processor adds EOS itself is not doubled). TRL appends ``eos_token`` to text data, OpenRLHF too.
* **chat messages**: the chat template's text tokenised *without* adding special tokens, which is what
  ``apply_chat_template(..., tokenize=True)`` (and so TRL) does: a BOS the template writes is kept once,
  and nothing is appended, so a template that closes the turn with its own end-of-turn token is not
  doubled.
* **where the reward is read** (decoders): the rightmost token that is neither padding (attention mask 0)
  nor the pad token id: transformers' own rule for sequence classifiers
  (``models.reward_model.reward_positions``). With pad == EOS an appended EOS is skipped, as in TRL.

``append_eos`` is decided once per model (``resolve_append_eos``): the ``--append-eos/--no-append-eos``
flag; else what the checkpoint's ``rewardlab.json`` recorded at training; else, for a folder rewardlab
trained before the convention was recorded, False (how it was trained); else the ecosystem's default
(``default_append_eos``): decoders with an EOS token append it, encoders (pooled at [CLS], ending with
[SEP]) do not.
"""

from __future__ import annotations

from rewardlab.data.render import prompt_text, render


def is_chat(prompt, response) -> bool:
    """True when the pair is rendered by a chat template (either side is a list of messages)."""
    return not (isinstance(prompt, str) and isinstance(response, str))


def default_append_eos(tokenizer, pooling: str) -> bool:
    """The ecosystem's default: append EOS for a decoder (reward read at the last token) whose tokenizer has one."""
    return pooling == "last_token" and getattr(tokenizer, "eos_token_id", None) is not None


def resolve_append_eos(flag: bool | None, meta: dict, tokenizer, pooling: str) -> tuple[bool, str]:
    """(append_eos, where the choice came from): the flag, the checkpoint's record, or the default."""
    if flag is not None:
        choice, source = bool(flag), "flag"
    elif "append_eos" in meta.get("sequence", {}):
        choice, source = bool(meta["sequence"]["append_eos"]), "checkpoint"
    elif meta.get("format") == "rewardlab-reward-model":
        choice, source = False, "checkpoint (trained before the convention was recorded: no EOS)"
    else:
        choice, source = default_append_eos(tokenizer, pooling), "default"
    if choice and getattr(tokenizer, "eos_token_id", None) is None:
        raise ValueError("append_eos needs a tokenizer with an EOS token; this one has none (pass --no-append-eos)")
    return choice, source


def describe(append_eos: bool, tokenizer, pooling: str) -> dict:
    """What is recorded in ``rewardlab.json`` and printed: the choice and the tokens it involves."""
    return {"append_eos": bool(append_eos), "eos_token": getattr(tokenizer, "eos_token", None),
            "pad_token": getattr(tokenizer, "pad_token", None), "pooling": pooling,
            "chat": "template tokens as rendered, no special tokens added, nothing appended",
            "read_at": "last token that is not padding and not the pad token id" if pooling == "last_token"
            else "the model's own pooling"}


def encode_pairs(tokenizer, prompts: list, responses: list, append_eos: bool) -> list[list[int]]:
    """Token ids of each (prompt, response) under the convention (see the module docstring)."""
    eos = tokenizer.eos_token_id
    if append_eos and eos is None:
        raise ValueError("append_eos needs a tokenizer with an EOS token; this one has none")
    texts = [render(p, r, tokenizer) for p, r in zip(prompts, responses)]
    chat = [is_chat(p, r) for p, r in zip(prompts, responses)]
    out = _tokenize(tokenizer, texts, chat)
    if append_eos:
        for seq, c in zip(out, chat):
            if not c and (not seq or seq[-1] != eos):
                seq.append(eos)
    return out


def encode_prompts(tokenizer, prompts: list) -> list[list[int]]:
    """Token ids of each prompt alone, tokenised as its full sequence is (for finding where responses start)."""
    return _tokenize(tokenizer, [prompt_text(p, tokenizer) for p in prompts], [not isinstance(p, str) for p in prompts])


def _tokenize(tokenizer, texts: list[str], chat: list[bool]) -> list[list[int]]:
    out: list = [None] * len(texts)
    for special in (True, False):
        idx = [i for i, c in enumerate(chat) if c != special]
        if idx:
            ids = tokenizer([texts[i] for i in idx], add_special_tokens=special, truncation=False)["input_ids"]
            for i, s in zip(idx, ids):
                out[i] = list(s)
    return out
