"""Implicit rewards of a causal language model, so DPO-trained policies can be evaluated as reward models.

Notation: x the prompt, y = (y_1 … y_|y|) the response, π the policy, π_ref the reference model,
log π(y|x) = Σ_t log π(y_t | x, y_<t), summed over the response tokens only.

    dpo          r(x, y) = β · (log π(y|x) − log π_ref(y|x))
                 The reward a DPO policy implicitly defines (Rafailov et al., 2023, "Direct Preference
                 Optimization: Your Language Model is Secretly a Reward Model", eq. 5, up to the
                 prompt-only term β log Z(x), which cancels in any comparison of responses to one prompt).
                 β is the β the policy was trained with (DPO's default and the paper's value: 0.1).
                 RewardBench scores DPO models this way.
    avg_logprob  r(x, y) = (1/|y|) · log π(y|x)
                 The reference-free, length-normalised log-likelihood; SimPO's implicit reward up to its
                 scale β (Meng et al., 2024, "SimPO: Simple Preference Optimization with a
                 Reference-Free Reward"). Scale does not change accuracy or rankings.

Which tokens count as the response is decided when encoding (``models.scoring.encode_sequences``):
the tokens after the longest prefix shared with the tokenised prompt. The first real token of a row
has no prediction and never counts. Position ids come from the attention mask, so rewards do not
depend on the padding side or the batch (as ``RewardModel``'s last-token pooling).
"""

from __future__ import annotations

import torch
from torch import nn

from rewardlab.types import RewardOutput

IMPLICIT_KINDS = ("dpo", "avg_logprob")


def sequence_logprobs(lm: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      response_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ_t log p(x_t | x_<t) over response tokens (N,), number of those tokens (N,)).

    input_ids, attention_mask, response_mask: (N, T); response_mask marks the response tokens.
    A token counts when it is a response token, real, and its predecessor is real (so the first real
    token of a row, which nothing predicts, never counts, for left or right padding).
    """
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (N, T)
    logits = lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions).logits  # (N, T, V)
    logits = logits[:, :-1].float()  # (N, T-1, V): position t-1 predicts token t
    target = input_ids[:, 1:]  # (N, T-1)
    token_logp = logits.gather(-1, target.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)  # (N, T-1)
    real = attention_mask.bool()
    counted = response_mask[:, 1:].bool() & real[:, 1:] & real[:, :-1]  # (N, T-1)
    return (token_logp * counted).sum(-1), counted.sum(-1)


class ImplicitRewardModel(nn.Module):
    """A causal LM (and, for "dpo", a reference LM) seen as a reward model: ``forward`` returns rewards (N,).

    ``models.scoring.score_ids`` passes the response mask because ``needs_response_mask`` is True.
    """

    needs_response_mask = True
    pooling = "last_token"  # position ids come from the mask: left and right padding give the same rewards

    def __init__(self, policy: nn.Module, kind: str = "dpo", reference: nn.Module | None = None, beta: float = 0.1):
        super().__init__()
        if kind not in IMPLICIT_KINDS:
            raise ValueError(f"unknown implicit reward {kind!r}; known: {', '.join(IMPLICIT_KINDS)}")
        if kind == "dpo" and reference is None:
            raise ValueError("the DPO implicit reward needs a reference model (--ref-model)")
        if kind != "dpo" and reference is not None:
            raise ValueError(f"implicit reward {kind!r} uses no reference model; drop --ref-model or use 'dpo'")
        if kind == "dpo" and not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.policy, self.reference, self.kind, self.beta = policy, reference, kind, float(beta)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_mask: torch.Tensor) -> RewardOutput:
        logp, n = sequence_logprobs(self.policy, input_ids, attention_mask, response_mask)  # (N,), (N,)
        if self.kind == "dpo":
            ref_logp, _ = sequence_logprobs(self.reference, input_ids, attention_mask, response_mask)
            return RewardOutput(self.beta * (logp - ref_logp))
        return RewardOutput(logp / n.clamp(min=1))


def _load_lm(path: str, dtype, trust_remote_code: bool, allow_pickle: bool = False):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewardlab.models.loading import load_pretrained

    tokenizer = load_pretrained(AutoTokenizer, path, trust_remote_code=trust_remote_code, weights=False)
    model = load_pretrained(AutoModelForCausalLM, path, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle, dtype=dtype)
    if tokenizer.pad_token is None:  # padding is masked out; any id will do
        if tokenizer.eos_token is None:
            raise ValueError(f"{path}: the tokenizer has neither a pad nor an EOS token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return model.eval(), tokenizer


def load_implicit_reward_model(path: str, kind: str = "dpo", ref_path: str | None = None, beta: float = 0.1, *,
                               dtype: torch.dtype | None = None, trust_remote_code: bool = False, allow_pickle: bool = False):
    """(ImplicitRewardModel, tokenizer, meta) from a causal-LM folder or hub id (and a reference for "dpo"); safetensors
    weights only unless ``allow_pickle`` (:mod:`rewardlab.models.loading`).

    The reference must share the policy's tokenizer (same vocabulary): the log-ratio compares the
    two models' probabilities of the same token ids.
    """
    if kind not in IMPLICIT_KINDS:
        raise ValueError(f"unknown implicit reward {kind!r}; known: {', '.join(IMPLICIT_KINDS)}")
    if kind == "dpo" and not ref_path:
        raise ValueError("the DPO implicit reward needs a reference model (--ref-model)")
    if kind != "dpo" and ref_path:
        raise ValueError(f"implicit reward {kind!r} uses no reference model; drop --ref-model or use 'dpo'")
    policy, tokenizer = _load_lm(path, dtype, trust_remote_code, allow_pickle)
    reference = None
    if kind == "dpo":
        reference, ref_tok = _load_lm(ref_path, dtype, trust_remote_code, allow_pickle)
        if ref_tok.get_vocab() != tokenizer.get_vocab():
            raise ValueError(f"reference {ref_path} has a different vocabulary from {path}; the DPO reward compares "
                             f"log-probabilities of the same tokens, so both need the same tokenizer")
    meta = {"implicit": kind, "beta": beta if kind == "dpo" else None, "ref_model": ref_path}
    return ImplicitRewardModel(policy, kind, reference, beta), tokenizer, meta
