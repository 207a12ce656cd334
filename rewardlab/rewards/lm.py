"""LM-likelihood reward: how likely a scorer (teacher) LM finds the completion given the prompt.

    r(x, y) = (1/|y|) Σ_t log p_teacher(y_t | x, y_<t)          mean token log-likelihood (nats)

Used as the reward of sequence-level knowledge distillation read as RL (Kim & Rush 2016 distil
the teacher's sequence distribution; maximising the teacher's log-likelihood of the student's
samples is the reward form of it). An empty completion gets the log-probability of the teacher's
EOS right after the prompt, so "say nothing" is scored too.

Completions arrive as text, stripped (:func:`rewardlab.optimize.sampling.decode_completions`): a policy that wrote
" Paris" after "Answer:" hands over "Paris". Where neither side has whitespace at the boundary the space is put
back, and prompt + completion are tokenised as one text (a fast tokenizer's offsets tell which tokens are the
completion's), so the scorer reads the tokens a policy of that tokenizer produced, not a word glued to the prompt.
"""

from __future__ import annotations

from typing import Sequence

import torch

from rewardlab.rewards.base import check_inputs


class LMLikelihoodReward:
    """Mean token log-likelihood of each completion under a causal LM (see the module docstring)."""

    def __init__(self, model, tokenizer, batch_size: int = 16, max_length: int = 1024, name: str = "lm"):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.batch_size, self.max_length, self.name = batch_size, max_length, name

    @classmethod
    def load(cls, path: str, batch_size: int = 16, device: str | None = None, max_length: int = 1024, allow_pickle: bool = False):
        """The scorer LM at ``path``: safetensors weights only unless ``allow_pickle``, never its own code
        (:mod:`rewardlab.models.loading`)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from rewardlab.models.loading import load_pretrained

        model = load_pretrained(AutoModelForCausalLM, path, allow_pickle=bool(allow_pickle))
        if device is not None:
            model.to(device)
        return cls(model, load_pretrained(AutoTokenizer, path, weights=False), batch_size, max_length, name=f"lm:{path}")

    def _encode(self, prompt: str, completion: str) -> tuple[list[int], list[int]]:
        sep = " " if prompt and completion and not prompt[-1].isspace() and not completion[0].isspace() else ""
        if completion and getattr(self.tokenizer, "is_fast", False):
            enc = self.tokenizer(prompt + sep + completion, return_offsets_mapping=True)
            ids, spans = enc["input_ids"], enc["offset_mapping"]
            k = next((i for i, (a, b) in enumerate(spans) if b > len(prompt)), len(ids))  # first token past the prompt
            p, c = ids[:k], [t for t, (a, b) in zip(ids[k:], spans[k:]) if b > a]  # special tokens (0, 0) after it dropped
        else:
            p = self.tokenizer(prompt)["input_ids"]
            c = self.tokenizer(sep + completion, add_special_tokens=False)["input_ids"] if completion else []
        if not c:
            eos = self.tokenizer.eos_token_id
            if eos is None:
                raise ValueError("an empty completion needs the scorer tokenizer's eos_token_id")
            c = [eos]
        c = c[: self.max_length - 1]
        p = p[max(0, len(p) - (self.max_length - len(c))):]
        return p, c

    @torch.inference_mode()
    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns) -> list[float]:
        n = check_inputs(prompts, completions, columns)
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        out: list[float] = []
        for start in range(0, n, self.batch_size):
            enc = [self._encode(p, c) for p, c in zip(prompts[start: start + self.batch_size], completions[start: start + self.batch_size])]
            T = max(len(p) + len(c) for p, c in enc)
            ids = torch.full((len(enc), T), pad, dtype=torch.long)  # (b, T) right-padded
            mask = torch.zeros((len(enc), T), dtype=torch.long)
            target = torch.zeros((len(enc), T), dtype=torch.bool)  # (b, T) True at completion tokens
            for i, (p, c) in enumerate(enc):
                ids[i, : len(p) + len(c)] = torch.tensor(p + c)
                mask[i, : len(p) + len(c)] = 1
                target[i, len(p): len(p) + len(c)] = True
            ids, mask, target = ids.to(device), mask.to(device), target.to(device)
            logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()  # (b, T-1, V)
            logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # (b, T-1)
            tgt = target[:, 1:].float()  # (b, T-1)
            out += ((logp * tgt).sum(-1) / tgt.sum(-1)).tolist()
        return out
