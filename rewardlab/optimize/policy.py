"""A tiny causal-LM policy for the built-in task, trained by rewardlab itself on a CPU.

The policy is supervised fine-tuning (SFT) of a small random Llama on the built-in task's
(prompt, response) pairs whose response quality is drawn uniformly in [0, 1] — so the policy's
samples vary in gold reward (positive and negative words, on- and off-topic nouns, filler, many
lengths) and there is something for an optimiser to improve. It is saved as a plain Hugging Face
folder (``AutoModelForCausalLM.from_pretrained`` loads it) and serves as the initial policy and the
frozen reference of every optimiser.

SFT loss (also RWR's and RAFT's, with weights w_i): token-weighted negative log-likelihood of the
completions, L = −Σ_i w_i Σ_t log π(y_it | x_i, y_i,<t) / Σ_i w_i |y_i|.

Defaults (≈ 20 s on 2 CPU cores): size "micro" (2 layers, width 64), BPE vocabulary 1000,
3000 examples, 2 epochs, batch 32, AdamW lr 3e-3 with linear decay.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from rewardlab.config import PolicyConfig
from rewardlab.optimize.sampling import pad_id
from rewardlab.runtime import hf_progress_bars

POLICY_METADATA = "rewardlab_policy.json"


@functools.lru_cache(maxsize=8)
def gold_task(seed: int = 0):
    """The built-in task of ``seed`` (frozen, so shared): its gold calibration runs once per process."""
    from rewardlab.tasks.gold import GoldTask

    return GoldTask(seed=seed)


def encode_examples(tokenizer, prompts: Sequence, responses: Sequence[str], sep: str = " ",
                    max_response_tokens: int | None = None, chat: bool = False,
                    max_prompt_length: int | None = None) -> tuple[torch.Tensor, ...]:
    """(prompt_ids, prompt_mask) left-padded and (response_ids, response_mask) right-padded with EOS
    appended — the rollout layout of :mod:`rewardlab.optimize.sampling`, the prompts encoded as the sampler
    encodes them (``chat``, ``max_prompt_length``: :func:`~rewardlab.optimize.sampling.encode_prompts`).
    ``sep`` joins prompt and response."""
    from rewardlab.optimize.sampling import encode_prompts

    eos, pad = tokenizer.eos_token_id, pad_id(tokenizer)
    if eos is None:
        raise ValueError("SFT needs a tokenizer with an EOS token")
    p_ids, p_mask = encode_prompts(tokenizer, prompts, chat, max_prompt_length)  # (B, P)
    r_seqs = [tokenizer(sep + r, add_special_tokens=False)["input_ids"] for r in responses]
    if max_response_tokens is not None:
        r_seqs = [s[: max_response_tokens - 1] for s in r_seqs]
    r_seqs = [s + [eos] for s in r_seqs]
    B, R = len(r_seqs), max(map(len, r_seqs))
    r_ids, r_mask = torch.full((B, R), pad), torch.zeros((B, R), dtype=torch.long)  # (B, R)
    for i, r in enumerate(r_seqs):
        r_ids[i, : len(r)], r_mask[i, : len(r)] = torch.tensor(r), 1
    return p_ids, p_mask, r_ids, r_mask


def length_grouped(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, group: int = 16) -> list[np.ndarray]:
    """Batches of indices of similar length (less padding): shuffle, sort within windows of
    ``group`` batches, cut into batches, shuffle the batches. Every index appears once."""
    order = rng.permutation(len(lengths))
    window = batch_size * group
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start: start + window]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i: i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def sft_loss(model, prompt_ids, prompt_mask, response_ids, response_mask, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Token-weighted NLL of the completions (see the module docstring); ``weights`` (B,) default 1."""
    from rewardlab.optimize.sampling import forward_tokens

    logp = forward_tokens(model, prompt_ids, prompt_mask, response_ids, response_mask).logprobs  # (B, R)
    w = torch.ones(logp.shape[0], device=logp.device) if weights is None else weights.to(logp.device)  # (B,)
    n_tokens = response_mask.sum(-1).to(logp.dtype)  # (B,)
    return -(w * logp.sum(-1)).sum() / (w * n_tokens).sum().clamp(min=1e-8)


def build_policy(tokenizer, size: str = "micro", seed: int = 0, max_positions: int = 256):
    """A random LlamaForCausalLM of a named size (``rewardlab.models.tiny.SIZES``) for ``tokenizer``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from rewardlab.models.tiny import SIZES

    layers, width, heads, inter = SIZES[size]
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=inter, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=max_positions,
                         tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def train_policy(cfg: PolicyConfig, log=print) -> dict:
    """Train the tiny policy of ``cfg`` and save it to ``cfg.output``; returns its metadata."""
    from tqdm.auto import tqdm

    from rewardlab.models.tiny import train_tokenizer

    t0 = time.time()
    task = gold_task(cfg.task_seed)
    records, info = task.make_ratings(cfg.n_examples, seed=cfg.seed)
    prompts, responses = [r.prompt for r in records], [r.response for r in records]
    tokenizer = train_tokenizer(prompts + responses, vocab_size=cfg.vocab_size)
    model = build_policy(tokenizer, cfg.size, cfg.seed)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    window = cfg.batch_size * 16
    n_steps = cfg.epochs * sum((min(window, len(records) - s) + cfg.batch_size - 1) // cfg.batch_size
                               for s in range(0, len(records), window))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 - s / max(n_steps, 1))
    rng = np.random.default_rng(cfg.seed)
    lengths = np.array([len(r.split()) for r in responses])  # (N,) words, a proxy for tokens
    step, losses = 0, []
    bar = tqdm(total=n_steps, desc="policy sft", dynamic_ncols=True, disable=not cfg.progress)
    for epoch in range(cfg.epochs):
        for idx in length_grouped(lengths, cfg.batch_size, rng):
            batch = encode_examples(tokenizer, [prompts[i] for i in idx], [responses[i] for i in idx])
            loss = sft_loss(model, *batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            step += 1
            bar.update(1)
            if step % 50 == 0 or step == n_steps:
                log(f"policy sft step {step}/{n_steps} loss {np.mean(losses[-50:]):.3f}")
    bar.close()
    model.eval()
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    with hf_progress_bars(cfg.progress):
        model.save_pretrained(out, safe_serialization=True)
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(out)
    meta = {"kind": "rewardlab tiny policy", "config": asdict(cfg), "steps": step, "final_loss": float(np.mean(losses[-20:])),
            "data_gold_mean": float(info["gold"].mean()), "data_gold_std": float(info["gold"].std()),
            "parameters": sum(p.numel() for p in model.parameters()), "seconds": round(time.time() - t0, 2)}
    (out / POLICY_METADATA).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def load_policy(path: str, dtype: torch.dtype | None = None, device: str | None = None, trust_remote_code: bool = False,
                gguf_file: str | None = None, allow_pickle: bool = False):
    """(causal LM, tokenizer) from a folder or hub id; the tokenizer pads on the left, with EOS as pad if it has none.

    GGUF: ``gguf_file`` names the file inside ``path``; ``FOLDER/NAME.gguf`` and packaged names such as
    ``smollm2`` work too (:func:`rewardlab.models.gguf.resolve_gguf`). The weights are dequantised to dense tensors.
    Safetensors weights only unless ``allow_pickle`` (:mod:`rewardlab.models.loading`).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewardlab.models.gguf import model_kwargs, resolve_gguf
    from rewardlab.models.loading import load_pretrained

    path, gguf_file = resolve_gguf(path, gguf_file)
    tokenizer = load_pretrained(AutoTokenizer, path, trust_remote_code=trust_remote_code, weights=False, gguf_file=gguf_file)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"{path}: the tokenizer has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model = load_pretrained(AutoModelForCausalLM, path, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle, dtype=dtype,
                            **model_kwargs(gguf_file))
    if device is not None:
        model.to(device)
    return model, tokenizer
