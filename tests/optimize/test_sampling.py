"""Sampling and token scoring: EOS and padding handled so rewards and log-probs read the real completion."""

from __future__ import annotations

import pytest
import torch

from rewardlab.optimize.policy import encode_examples
from rewardlab.optimize.sampling import (
    PolicyWithValue, concat_rollouts, decode_completions, encode_prompts, eos_ids, forward_tokens, pad_id, sample,
    truncate_at_eos,
)
from rewardlab.rewards import GoldReward

PROMPTS = ["Question: What do you think of coffee?\nAnswer:", "Question: Tell me about jazz.\nAnswer:",
           "Question: What comes to mind when you think of travelling by train?\nAnswer:"]


def test_truncate_at_eos_by_hand():
    """EOS = 2, pad = 0. Row 1 ends at its first EOS (kept in the mask); later tokens, EOS included, become
    pad. Row 2 never ends (ended False, all real). Row 3 starts with EOS: an empty completion of one token."""
    ids = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8], [2, 9, 9, 9]])
    out, mask, ended = truncate_at_eos(ids, [2], pad=0)
    assert out.tolist() == [[5, 2, 0, 0], [5, 6, 7, 8], [2, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert ended.tolist() == [True, False, True]
    # several EOS ids (e.g. <|im_end|> and <|endoftext|>): the first of either ends the completion
    out, mask, _ = truncate_at_eos(torch.tensor([[5, 3, 2, 4]]), [2, 3], pad=0)
    assert mask.tolist() == [[1, 1, 0, 0]]


def test_padded_completion_gets_the_same_text_reward_and_logprobs(random_lm):
    """A completion [y…, EOS] and the same completion followed by pads — or by junk that generate wrote after
    EOS when pad ≠ EOS — decode to the same text, get the same gold reward, and the same per-token log-probs
    on the real tokens (padding contributes 0)."""
    model, tok = random_lm
    prompts = PROMPTS[:2]
    completions = ["I love the coffee. The espresso is great.", "The saxophone is awful."]
    p_ids, p_mask, r_ids, r_mask = encode_examples(tok, prompts, completions)  # right-padded to the longer one
    eos = eos_ids(model, tok)
    junk = torch.randint(10, 300, (2, 7))
    r_junk = torch.cat([r_ids, junk], 1)  # tokens after the EOS (and after pads) that must be ignored
    r_junk_ids, r_junk_mask, ended = truncate_at_eos(r_junk, eos, tok.pad_token_id)
    assert ended.all() and torch.equal(r_junk_mask[:, : r_ids.shape[1]], r_mask) and r_junk_mask[:, r_ids.shape[1]:].sum() == 0
    texts = decode_completions(tok, r_junk_ids, r_junk_mask, eos)
    assert texts == completions == decode_completions(tok, r_ids, r_mask, eos)
    gold = GoldReward()
    assert gold(prompts, texts) == gold(prompts, completions)
    # the shorter completion alone (no right padding at all) vs inside the padded batch
    alone = encode_examples(tok, prompts[1:], completions[1:])
    with torch.no_grad():
        batch_lp = forward_tokens(model, p_ids, p_mask, r_junk_ids, r_junk_mask).logprobs
        alone_lp = forward_tokens(model, *alone).logprobs
    n = int(alone[3].sum())
    assert torch.allclose(batch_lp[1, :n], alone_lp[0, :n], atol=1e-5)
    assert float(batch_lp[1, n:].abs().sum()) == 0.0
    assert torch.allclose(batch_lp[1].sum(), alone_lp[0].sum(), atol=1e-4)


def test_logprobs_match_generate_scores_with_left_padding(random_lm):
    """Prompts of different lengths are left-padded; recomputed log-probs of the sampled tokens equal the
    log-softmax of generate's own logits at every real position (same positions from the attention mask)."""
    model, tok = random_lm
    p_ids, p_mask = encode_prompts(tok, PROMPTS)
    assert (p_mask[:, 0] == 0).any() and (p_mask[:, -1] == 1).all()  # left padding
    torch.manual_seed(0)
    out = model.generate(input_ids=p_ids, attention_mask=p_mask, do_sample=True, max_new_tokens=12, top_k=0,
                         output_logits=True, return_dict_in_generate=True, pad_token_id=tok.pad_token_id,
                         eos_token_id=eos_ids(model, tok))
    gen = out.sequences[:, p_ids.shape[1]:]
    r_ids, r_mask, _ = truncate_at_eos(gen, eos_ids(model, tok), tok.pad_token_id)
    want = torch.stack([torch.log_softmax(l.float(), -1) for l in out.logits], 1)  # (B, R, V)
    want = want.gather(-1, r_ids[..., None]).squeeze(-1) * r_mask
    with torch.no_grad():
        got = forward_tokens(model, p_ids, p_mask, r_ids, r_mask).logprobs
    assert torch.allclose(got, want, atol=1e-4)
    wrapped = PolicyWithValue(model, value_head=True)
    with torch.no_grad():
        scores = forward_tokens(wrapped, p_ids, p_mask, r_ids, r_mask, entropy=True)
    assert torch.allclose(scores.logprobs, want, atol=1e-4)
    assert scores.values.shape == r_ids.shape and float(scores.values.abs().sum()) == 0.0  # zero-initialised head
    assert (scores.entropy[r_mask.bool()] > 0).all() and float(scores.entropy[~r_mask.bool()].abs().sum()) == 0.0


def test_sample_returns_completions_cut_at_eos_and_seeded(random_lm):
    model, tok = random_lm
    a = sample(model, tok, PROMPTS * 4, max_new_tokens=10, seed=3)
    b = sample(model, tok, PROMPTS * 4, max_new_tokens=10, seed=3)
    assert a.completions == b.completions and torch.equal(a.response_ids, b.response_ids)
    eos = set(eos_ids(model, tok))
    for ids, m, ended in zip(a.response_ids.tolist(), a.response_mask.tolist(), a.ended.tolist()):
        real = [t for t, k in zip(ids, m) if k]
        assert m == sorted(m, reverse=True)  # real tokens first, then padding
        assert sum(t in eos for t in real) == (1 if ended else 0) and (not ended or real[-1] in eos)
    with pytest.raises(ValueError, match="temperature"):
        sample(model, tok, PROMPTS, temperature=0.0)


def test_lm_likelihood_reward_is_the_mean_token_logprob(random_lm):
    """The LM-likelihood reward of (x, y) equals (1/|y|) Σ_t log p(y_t | x, y_<t) computed by the policy
    scorer on the same tokens — with right padding in the reward's batch and left padding in the scorer's."""
    from rewardlab.rewards.lm import LMLikelihoodReward

    model, tok = random_lm
    prompts, completions = PROMPTS[:2], [" I love the coffee.", " The melody is awful and the piano is dull."]
    got = LMLikelihoodReward(model, tok, batch_size=2)(prompts, completions)
    p_ids, p_mask = encode_prompts(tok, prompts)
    for i, c in enumerate(completions):
        r = torch.tensor([tok(c, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            lp = forward_tokens(model, p_ids[i:i + 1], p_mask[i:i + 1], r, torch.ones_like(r)).logprobs
        assert got[i] == pytest.approx(float(lp.mean()), abs=1e-4)


def test_lm_likelihood_reward_reads_a_stripped_completion_as_the_policy_wrote_it(random_lm):
    """Completions reach rewards stripped ("I love …" for the " I love …" a policy wrote after "Answer:"): the
    reward puts the space back, so both score the same and it reads the tokens the policy wrote; a completion that
    follows a prompt ending in whitespace gets no second space."""
    from rewardlab.rewards.lm import LMLikelihoodReward

    model, tok = random_lm
    reward = LMLikelihoodReward(model, tok, batch_size=2)
    written = [" I love the coffee.", " The melody is awful and the piano is dull."]
    stripped = [c.strip() for c in written]
    assert reward(PROMPTS[:2], stripped) == pytest.approx(reward(PROMPTS[:2], written), abs=1e-6)
    p, c = reward._encode(PROMPTS[0], stripped[0])
    assert c == tok(written[0], add_special_tokens=False)["input_ids"] and p == tok(PROMPTS[0])["input_ids"]
    assert reward._encode(PROMPTS[0] + " ", stripped[0])[1] == c
    glued = tok(stripped[0], add_special_tokens=False)["input_ids"]
    assert glued != c  # the old reading: the word without its space, other tokens


def test_concatenated_rollouts_score_as_each_part_alone(random_lm):
    """Two rollouts sampled apart (a short prompt, a long one; completions of other lengths) joined by
    ``concat_rollouts``: the rows keep their tokens, and ``forward_tokens`` on a slice of the padded whole gives each
    part's own log-probs bit for bit (columns that are padding in every row are cut), zeros beyond — what makes a
    minibatch's numbers independent of how its process's rollout was padded (tests/optimize/test_multiprocess.py)."""
    model, tok = random_lm
    a = sample(model, tok, PROMPTS[1:2] * 2, max_new_tokens=6, seed=1)
    b = sample(model, tok, PROMPTS[2:3] * 2, max_new_tokens=12, seed=2)
    whole = concat_rollouts([a, b], pad_id(tok))
    assert whole.completions == a.completions + b.completions and whole.prompts == a.prompts + b.prompts
    assert whole.prompt_ids.shape[1] == max(a.prompt_ids.shape[1], b.prompt_ids.shape[1])
    with torch.no_grad():
        for part, rows in ((a, slice(0, 2)), (b, slice(2, 4))):
            own = forward_tokens(model, *part[:4], entropy=True)
            cut = forward_tokens(model, *(t[rows] for t in whole[:4]), entropy=True)
            R = part.response_ids.shape[1]
            assert torch.equal(cut.logprobs[:, :R], own.logprobs) and torch.equal(cut.entropy[:, :R], own.entropy)
            assert float(cut.logprobs[:, R:].abs().sum()) == 0.0
