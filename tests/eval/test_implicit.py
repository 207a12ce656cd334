"""Implicit rewards of a causal LM, checked against log-probabilities computed by a plain forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardlab.config import EvalConfig
from rewardlab.data.render import prompt_text, render
from rewardlab.models.scoring import score_dataset
from rewardlab.eval.implicit import ImplicitRewardModel, load_implicit_reward_model
from rewardlab.eval.run import run_eval
from rewardlab.types import PairRecord

BETA = 0.1


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    """Two tiny random LlamaForCausalLM (policy seed 1, reference seed 2) sharing rewardlab's tiny tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from conftest import toy_corpus
    from rewardlab.models.tiny import train_tokenizer

    tok = train_tokenizer(toy_corpus(), vocab_size=400)
    root = tmp_path_factory.mktemp("lms")
    paths = {"tokenizer": tok}
    for name, seed in (("policy", 1), ("ref", 2)):
        torch.manual_seed(seed)
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                          pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
        model = LlamaForCausalLM(cfg).eval()
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        paths[name] = root / name
        paths[name + "_model"] = model
    return paths


def plain_logprob(lm, tok, prompt: str, response: str) -> tuple[float, int]:
    """Σ_t log p(x_t | x_<t) over the response tokens of one unpadded sequence, by a plain forward:
    logits[t − 1] predicts token t; the response is what follows the tokenised prompt."""
    ids = tok(render(prompt, response, tok))["input_ids"]
    p = tok(prompt_text(prompt, tok))["input_ids"]
    n_prompt = next(i for i, (a, b) in enumerate(zip(ids + [None], p + [None])) if a != b)
    with torch.no_grad():
        logp = torch.log_softmax(lm(torch.tensor([ids])).logits[0].double(), -1)  # (T, V)
    total = sum(float(logp[t - 1, ids[t]]) for t in range(max(n_prompt, 1), len(ids)))
    return total, len(ids) - max(n_prompt, 1)


RECORDS = [PairRecord("What do you think of rain?", "it seems quite great and kind.", "the answer is rude."),
           PairRecord("What do you think of chess?", "so.", "it is really about the topic and quite wrong and bad."),
           PairRecord("", "coffee is delightful.", "coffee is horrible.")]  # empty prompt: first token unscored


def test_dpo_and_avg_logprob_match_a_plain_forward(lms):
    """dpo: r = β(log π(y|x) − log π_ref(y|x)); avg_logprob: r = log π(y|x)/|y| — both equal the plain
    forward's numbers within 1e-4, one sequence at a time and in padded batches, right and left."""
    tok, policy, ref = lms["tokenizer"], lms["policy_model"], lms["ref_model"]
    dpo = ImplicitRewardModel(policy, "dpo", ref, BETA)
    avg = ImplicitRewardModel(policy, "avg_logprob")
    want_dpo, want_avg = [], []
    for rec in RECORDS:
        for resp in (rec.chosen, rec.rejected):
            lp, n = plain_logprob(policy, tok, rec.prompt, resp)
            lp_ref, _ = plain_logprob(ref, tok, rec.prompt, resp)
            want_dpo.append(BETA * (lp - lp_ref))
            want_avg.append(lp / n)
    for model, want, bs, side in ((dpo, want_dpo, 1, "right"), (dpo, want_dpo, 4, "left"), (avg, want_avg, 4, "right"),
                                  (avg, want_avg, 6, "left")):
        got = np.concatenate(score_dataset(model, tok, RECORDS, batch_size=bs, padding_side=side).rewards)
        assert np.max(np.abs(got - want)) < 1e-4, (model.kind, bs, side)


def test_policy_equal_to_reference_gives_zero_dpo_reward(lms):
    """π = π_ref → log-ratio 0 for every response → every pair a reward tie → accuracy 0 (ties are wrong)."""
    out = run_eval(EvalConfig(model=str(lms["policy"]), data=_write(lms), implicit="dpo", ref_model=str(lms["policy"]),
                              progress=False, bootstrap=0))
    assert out["reward_ties"] == out["n_pairs"] == 3 and out["accuracy"] == 0.0
    assert out["implicit"] == {"implicit": "dpo", "beta": 0.1, "ref_model": str(lms["policy"])}


def test_run_eval_implicit_dpo_accuracy_by_hand(lms):
    """Through run_eval: the accuracy equals the share of pairs whose plain-forward DPO reward is higher
    for the chosen response."""
    dpo, tok, meta = load_implicit_reward_model(str(lms["policy"]), "dpo", str(lms["ref"]), BETA)
    assert meta == {"implicit": "dpo", "beta": BETA, "ref_model": str(lms["ref"])}
    correct = []
    for rec in RECORDS:
        r = [plain_logprob(dpo.policy, tok, rec.prompt, y)[0] - plain_logprob(dpo.reference, tok, rec.prompt, y)[0]
             for y in (rec.chosen, rec.rejected)]
        correct.append(r[0] > r[1])
    out = run_eval(EvalConfig(model=str(lms["policy"]), data=_write(lms), implicit="dpo", ref_model=str(lms["ref"]),
                              beta=BETA, progress=False, bootstrap=0))
    assert out["accuracy"] == pytest.approx(np.mean(correct))


def test_implicit_argument_errors(lms):
    with pytest.raises(ValueError, match="reference"):
        ImplicitRewardModel(torch.nn.Linear(1, 1), "dpo")
    with pytest.raises(ValueError, match="known: dpo, avg_logprob"):
        ImplicitRewardModel(torch.nn.Linear(1, 1), "simpo")
    with pytest.raises(ValueError, match="no reference"):
        load_implicit_reward_model(str(lms["policy"]), "avg_logprob", str(lms["ref"]))
    with pytest.raises(ValueError, match="needs --ref-model"):
        EvalConfig(implicit="dpo")


def _write(lms) -> str:
    import json

    path = lms["policy"].parent / "pairs.jsonl"
    path.write_text("".join(json.dumps({"prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected}) + "\n"
                            for r in RECORDS))
    return str(path)
