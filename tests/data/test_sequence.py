"""The sequence convention (rewardlab/data/sequence.py): which ids are built, and how the choice is resolved."""

from __future__ import annotations

import pytest
import torch

from rewardlab.data.sequence import default_append_eos, encode_pairs, resolve_append_eos


@pytest.fixture(scope="module")
def tok(tiny_llama):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama)


def test_plain_text_gets_one_eos_chat_gets_none(tok):
    eos = tok.eos_token_id
    plain = encode_pairs(tok, ["q", "q"], [" a b", " a b</s>"], append_eos=True)
    assert plain[0][-1] == eos and plain[0][:-1] == tok("q a b")["input_ids"]
    assert plain[1] == plain[0]  # a text that already ends with EOS is not doubled
    assert encode_pairs(tok, ["q"], [" a b"], append_eos=False)[0] == tok("q a b")["input_ids"]
    chat = encode_pairs(tok, [[{"role": "user", "content": "q"}]], ["a b"], append_eos=True)[0]
    rendered = tok.apply_chat_template([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a b"}], tokenize=False)
    assert chat == tok(rendered, add_special_tokens=False)["input_ids"] and chat[-1] != eos


def test_resolution_order(tok):
    rl_new = {"format": "rewardlab-reward-model", "sequence": {"append_eos": False}}
    rl_old = {"format": "rewardlab-reward-model"}  # trained before the convention was recorded: without EOS
    assert resolve_append_eos(True, rl_new, tok, "last_token") == (True, "flag")
    assert resolve_append_eos(None, rl_new, tok, "last_token") == (False, "checkpoint")
    assert resolve_append_eos(None, rl_old, tok, "last_token")[0] is False
    assert resolve_append_eos(None, {}, tok, "last_token") == (True, "default")  # TRL / OpenRLHF / any HF decoder
    assert resolve_append_eos(None, {}, tok, "model") == (False, "default")  # encoders: [CLS] … [SEP] as they are
    assert default_append_eos(tok, "last_token") and not default_append_eos(tok, "model")


def test_append_eos_without_an_eos_token_is_refused(tok):
    import copy

    no_eos = copy.deepcopy(tok)
    no_eos.eos_token = None
    assert resolve_append_eos(None, {}, no_eos, "last_token") == (False, "default")
    with pytest.raises(ValueError, match="needs a tokenizer with an EOS token"):
        resolve_append_eos(True, {}, no_eos, "last_token")


def test_reward_read_at_last_non_pad_token():
    """transformers' rule: the rightmost token with mask 1 that is not the pad id (pad == EOS: the EOS is skipped)."""
    from rewardlab.models.reward_model import reward_positions

    ids = torch.tensor([[5, 6, 2, 0], [0, 5, 6, 7], [2, 2, 2, 2]])
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1], [1, 0, 0, 0]])
    assert reward_positions(ids, mask, pad_id=2).tolist() == [1, 3, 0]
    assert reward_positions(ids, mask, pad_id=None).tolist() == [2, 3, 0]
