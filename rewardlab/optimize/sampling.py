"""Sampling completions from a causal-LM policy and scoring their tokens.

Notation: B sequences, P prompt tokens (left-padded), R completion tokens (right-padded), V vocabulary.

Layout of a rollout, one row per sample::

    prompt_ids    [pad pad x1 x2 x3]      left-padded, so every completion starts at column P
    response_ids  [y1 y2 EOS pad pad]     cut after the first EOS; everything later is padding
    response_mask [ 1  1  1   0   0 ]     1 on real completion tokens, the first EOS included

A completion ends at its first EOS (any id of ``eos_token_id``, which may be a list); ``generate``
keeps writing pad tokens for sequences that finished early, and a pad id may equal the EOS id —
the mask comes from the position of the first EOS, never from comparing with the pad id. The text
given to rewards is the decoded completion up to (not including) that EOS, so a reward never
reads a pad. A completion that hits ``max_new_tokens`` without EOS is ``ended = False``.

Log-probabilities are recomputed by a forward pass over ``[prompt | completion]`` with position ids
from the attention mask (cumsum − 1), the same positions ``generate`` used, so they match the
sampler's own scores on left-padded batches. With ``temperature`` τ the distribution is
softmax(logits / τ); top-k / top-p truncation is *not* reflected in the log-probs, so on-policy
methods (REINFORCE, RLOO, PPO) should sample with top_k = 0 and top_p = 1.
"""

from __future__ import annotations

import inspect
from typing import NamedTuple, Sequence

import torch


class Rollout(NamedTuple):
    """Sampled completions and the tensors to score them (see the module docstring)."""

    prompt_ids: torch.Tensor  # (B, P) left-padded
    prompt_mask: torch.Tensor  # (B, P)
    response_ids: torch.Tensor  # (B, R) pad after the first EOS
    response_mask: torch.Tensor  # (B, R) 1 on real tokens, first EOS included
    ended: torch.Tensor  # (B,) bool: the completion ended with EOS (not cut at max_new_tokens)
    prompts: list  # B prompt strings
    completions: list  # B completion strings (up to, not including, the first EOS)


def eos_ids(model, tokenizer) -> list[int]:
    """Every id that ends a completion: the tokenizer's EOS plus the generation config's (int or list)."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen = getattr(model, "generation_config", None)
    extra = getattr(gen, "eos_token_id", None) if gen is not None else None
    if isinstance(extra, int):
        ids.add(extra)
    elif extra is not None:
        ids.update(int(i) for i in extra)
    if not ids:
        raise ValueError("the tokenizer and the model's generation config define no EOS token; completions could never end")
    return sorted(ids)


def encode_prompts(tokenizer, prompts: Sequence, chat: bool = False, max_length: int | None = None,
                   device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (B, P) ids and mask for prompts (strings, or chat messages when ``chat``).

    ``chat=True`` renders each prompt with the tokenizer's chat template as a user turn plus the
    generation prompt (a list of messages is used as is). Long prompts keep their last ``max_length`` tokens.
    """
    if chat:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("chat=True needs a tokenizer with a chat template")
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}] if isinstance(p, str) else p,
                                               tokenize=False, add_generation_prompt=True) for p in prompts]
        seqs = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    else:
        if not all(isinstance(p, str) for p in prompts):
            raise ValueError("plain prompts must be strings; pass chat=True for lists of messages")
        seqs = [tokenizer(p)["input_ids"] for p in prompts]
    if max_length is not None:
        seqs = [s[-max_length:] for s in seqs]
    if any(len(s) == 0 for s in seqs):
        raise ValueError("a prompt encodes to no tokens; give the tokenizer a BOS token or a non-empty prompt")
    pad = pad_id(tokenizer)
    P = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), P), pad, dtype=torch.long)  # (B, P)
    mask = torch.zeros((len(seqs), P), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, P - len(s):] = torch.tensor(s, dtype=torch.long)
        mask[i, P - len(s):] = 1
    return ids.to(device), mask.to(device)


def pad_id(tokenizer) -> int:
    """The pad id; the EOS id when the tokenizer has no pad token (safe: masks never compare with it)."""
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    raise ValueError("the tokenizer has neither a pad nor an EOS token")


def truncate_at_eos(response_ids: torch.Tensor, eos: Sequence[int], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut each row after its first EOS: (ids with pad after it, mask with the EOS kept, ended).

    >>> ids, mask, ended = truncate_at_eos(torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8]]), [2], pad=0)
    >>> ids.tolist(), mask.tolist(), ended.tolist()
    ([[5, 2, 0, 0], [5, 6, 7, 8]], [[1, 1, 0, 0], [1, 1, 1, 1]], [True, False])
    """
    is_eos = torch.isin(response_ids, torch.tensor(list(eos), device=response_ids.device))  # (B, R)
    seen_before = (is_eos.long().cumsum(-1) - is_eos.long()) > 0  # (B, R) an EOS strictly earlier in the row
    mask = (~seen_before).long()  # (B, R)
    ids = response_ids.masked_fill(seen_before, pad)
    return ids, mask, is_eos.any(-1)


def decode_completions(tokenizer, response_ids: torch.Tensor, response_mask: torch.Tensor, eos: Sequence[int]) -> list[str]:
    """Text of each completion: its real tokens without the closing EOS, special tokens skipped, stripped."""
    out = []
    eos = set(eos)
    for ids, m in zip(response_ids.tolist(), response_mask.tolist()):
        real = [t for t, keep in zip(ids, m) if keep]
        if real and real[-1] in eos:
            real = real[:-1]
        out.append(tokenizer.decode(real, skip_special_tokens=True).strip())
    return out


@torch.no_grad()
def sample(model, tokenizer, prompts: Sequence, *, max_new_tokens: int = 64, temperature: float = 1.0, top_k: int = 0,
           top_p: float = 1.0, chat: bool = False, max_prompt_length: int | None = None, seed: int | None = None,
           greedy: bool = False) -> Rollout:
    """One sampled completion per prompt with ``model.generate`` (repeat prompts for k samples each); ``greedy``: the
    argmax token at every step instead (temperature, top-k and top-p unused)."""
    if temperature <= 0 and not greedy:
        raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
    if seed is not None:
        torch.manual_seed(seed)
    device = next(model.parameters()).device
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, chat, max_prompt_length, device)
    eos, pad = eos_ids(model, tokenizer), pad_id(tokenizer)
    was_training = model.training
    model.eval()
    how = {"do_sample": False} if greedy else {"do_sample": True, "temperature": temperature, "top_k": top_k, "top_p": top_p}
    out = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, max_new_tokens=max_new_tokens, eos_token_id=eos,
                         pad_token_id=pad, **how)
    model.train(was_training)
    response_ids, response_mask, ended = truncate_at_eos(out[:, prompt_ids.shape[1]:], eos, pad)  # (B, R)
    completions = decode_completions(tokenizer, response_ids, response_mask, eos)
    return Rollout(prompt_ids, prompt_mask, response_ids, response_mask, ended, list(prompts), completions)


def concat_rollouts(parts: Sequence[Rollout], pad: int) -> Rollout:
    """One rollout of several, rows in order: prompts left-padded to the longest (P), completions right-padded (R)."""
    P = max(r.prompt_ids.shape[1] for r in parts)
    R = max(r.response_ids.shape[1] for r in parts)
    left = lambda t, v: torch.nn.functional.pad(t, (P - t.shape[1], 0), value=v)  # noqa: E731
    right = lambda t, v: torch.nn.functional.pad(t, (0, R - t.shape[1]), value=v)  # noqa: E731
    return Rollout(torch.cat([left(r.prompt_ids, pad) for r in parts]), torch.cat([left(r.prompt_mask, 0) for r in parts]),
                   torch.cat([right(r.response_ids, pad) for r in parts]), torch.cat([right(r.response_mask, 0) for r in parts]),
                   torch.cat([r.ended for r in parts]), [p for r in parts for p in r.prompts],
                   [c for r in parts for c in r.completions])


class TokenScores(NamedTuple):
    logprobs: torch.Tensor  # (B, R) log π(y_t | x, y_<t), 0 at padding
    entropy: torch.Tensor | None  # (B, R) H(π(· | x, y_<t)), 0 at padding
    values: torch.Tensor | None  # (B, R) value-head output at the position that predicts y_t (PolicyWithValue only)


class PolicyOutput(NamedTuple):
    """What :class:`PolicyWithValue` returns (a plain tuple, so DDP can wrap it)."""

    logits: torch.Tensor  # (B, T', V) T' = T, or the last ``logits_to_keep`` positions
    values: torch.Tensor | None  # (B, T) or None without a value head


class PolicyWithValue(torch.nn.Module):
    """A causal LM plus an optional scalar value head on its last hidden state (PPO's critic,
    sharing the policy's trunk). One module, so Accelerate / DDP see every trained parameter."""

    def __init__(self, lm, value_head: bool = False):
        super().__init__()
        self.lm = lm
        self.value_head = None
        if value_head:
            self.value_head = torch.nn.Linear(lm.config.get_text_config().hidden_size, 1)
            torch.nn.init.zeros_(self.value_head.weight)
            torch.nn.init.zeros_(self.value_head.bias)
        self._keep = "logits_to_keep" in inspect.signature(lm.forward).parameters

    def forward(self, input_ids, attention_mask, position_ids, logits_to_keep: int = 0) -> PolicyOutput:
        kwargs = {"logits_to_keep": logits_to_keep} if self._keep and logits_to_keep else {}
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                      output_hidden_states=self.value_head is not None, **kwargs)
        logits = out.logits if self._keep or not logits_to_keep else out.logits[:, -logits_to_keep:]
        values = None
        if self.value_head is not None:
            values = self.value_head(out.hidden_states[-1]).squeeze(-1).float()  # (B, T)
        return PolicyOutput(logits, values)


def forward_tokens(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, response_ids: torch.Tensor,
                   response_mask: torch.Tensor, temperature: float = 1.0, entropy: bool = False) -> TokenScores:
    """Per-token log-probs (and entropies, values) of the completion tokens under ``model`` — a Hugging
    Face causal LM or a :class:`PolicyWithValue` (possibly wrapped by Accelerate).

    Columns that are padding in every row (leading prompt columns, trailing completion columns) are cut before the
    forward pass and the outputs padded back with zeros to (B, R): the numbers of a row depend on the rows of this
    call, not on how far a larger rollout was padded (so N processes reproduce one process's forward passes)."""
    R_in = response_ids.shape[1]
    p0 = int((prompt_mask.sum(0) > 0).long().argmax())  # first prompt column that is real in some row
    r1 = max(1, int((response_mask.sum(0) > 0).nonzero().max()) + 1) if bool(response_mask.any()) else 1
    prompt_ids, prompt_mask = prompt_ids[:, p0:], prompt_mask[:, p0:]
    response_ids, response_mask = response_ids[:, :r1], response_mask[:, :r1]
    ids = torch.cat([prompt_ids, response_ids], 1)  # (B, P+R)
    mask = torch.cat([prompt_mask, response_mask], 1)  # (B, P+R)
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, P+R)
    P, R = prompt_ids.shape[1], response_ids.shape[1]
    inner = getattr(model, "module", model)  # DDP / Accelerate wrapper
    values = None
    if isinstance(inner, PolicyWithValue):
        out = model(ids, mask, positions, R + 1)
        logits = out.logits[:, -(R + 1): -1]  # (B, R, V) position t predicts y_t
        if out.values is not None:
            values = out.values[:, P - 1: -1]  # (B, R)
    else:
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, P - 1: -1]  # (B, R, V)
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, -1)  # (B, R, V)
    m = response_mask.to(logits.dtype)  # (B, R)
    logp = logp_all.gather(-1, response_ids[..., None]).squeeze(-1) * m  # (B, R)
    ent = -(logp_all.exp() * logp_all).sum(-1) * m if entropy else None  # (B, R)
    back = lambda t: None if t is None else torch.nn.functional.pad(t, (0, R_in - R))  # noqa: E731  (B, R_in)
    return TokenScores(back(logp), back(ent), None if values is None else back(values * m))


def completion_logprobs(model, rollout: Rollout, temperature: float = 1.0) -> torch.Tensor:
    """(B, R) per-token log-probs of a rollout's completions under ``model`` (no gradient)."""
    with torch.no_grad():
        return forward_tokens(model, rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids,
                              rollout.response_mask, temperature).logprobs
