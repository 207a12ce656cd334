"""Adversarial reward: a discriminator trained online to tell reference responses from policy samples.

Notation: x a prompt, y_ref a reference response (the ``reference`` column), y a policy sample,
d = D(x, y) the discriminator's logit (a 1-label sequence classifier, i.e. a reward model), σ the
logistic function, so σ(d) is the probability that (x, y) is real (a reference) rather than a sample.

Each call with training on: ``steps`` AdamW steps on the discriminator loss over the whole call
(R unique (prompt, reference) pairs = real, N samples = fake; optionally the last ``replay`` samples
too), then the N samples are scored by the updated discriminator in eval mode.

Discriminator losses (``loss=``):

    bce   L = (1/R) Σ_r −log σ(d_r) + (1/N) Σ_i −log(1 − σ(d_i))        real = 1, sample = 0 (GAIL, SeqGAN)
    bt    L = (1/P) Σ_(r,i) −log σ(d_r − d_i)   over pairs of a sample and a reference of its prompt
                                                (the reference is preferred: Bradley–Terry)

Rewards (``form=``), from the logit d of a sample after the update:

    logsigmoid          r = log σ(d) = log D                    (default; ≤ 0)
    neg_log_one_minus   r = −log(1 − σ(d)) = −log(1 − D)        (GAIL's cost log D with D = P(sample), negated; ≥ 0)
    logit               r = d = log D − log(1 − D)              (AIRL's reward form)
    sigmoid             r = σ(d) = D                            (SeqGAN's reward: the probability of being real)

Papers: Ho & Ermon 2016, "Generative Adversarial Imitation Learning" (arXiv 1606.03476); Yu, Zhang,
Wang & Yu 2017, "SeqGAN: Sequence Generative Adversarial Nets with Policy Gradient" (arXiv 1609.05473);
Fu, Luo & Levine 2018, "Learning Robust Rewards with Adversarial Inverse Reinforcement Learning"
(arXiv 1710.11248).

The discriminator is stateful: its weights, optimiser state and replay buffer travel through
``state_dict`` / ``load_state_dict`` (optimisation checkpoints) and ``save`` / ``load`` (a folder
that ``rm:PATH`` also loads). Session code switches training off for evaluation by setting
``update = False``; ``steps=0`` makes a pure scorer.
"""

from __future__ import annotations

import copy
from collections import deque
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from rewardlab.losses.pairwise import bt
from rewardlab.losses.pointwise import bce
from rewardlab.rewards.base import check_inputs

Tensor = torch.Tensor


# ---------------------------------------------------------------------------- pure functions


def bce_disc_loss(d_real: Tensor, d_fake: Tensor, pairs: Tensor) -> Tensor:
    """L = mean_r −log σ(d_r) + mean_i −log σ(−d_i); d_real (R,), d_fake (N,); ``pairs`` unused.

    >>> float(bce_disc_loss(torch.zeros(2), torch.zeros(3), None))  # 2 log 2
    1.3862943649291992
    """
    return bce(d_real, torch.ones_like(d_real)).mean() + bce(d_fake, torch.zeros_like(d_fake)).mean()


def bt_disc_loss(d_real: Tensor, d_fake: Tensor, pairs: Tensor) -> Tensor:
    """L = mean_p −log σ(d_real[pairs[p, 0]] − d_fake[pairs[p, 1]]); pairs (P, 2) = (reference, sample) indices."""
    return bt(d_real[pairs[:, 0]], d_fake[pairs[:, 1]]).mean()


DISC_LOSSES = {"bce": bce_disc_loss, "bt": bt_disc_loss}
"""Discriminator loss name → fn(d_real (R,), d_fake (N,), pairs (P, 2)) -> scalar."""

FORMS = {
    "logsigmoid": lambda d: F.logsigmoid(d),  # log σ(d)
    "neg_log_one_minus": lambda d: -F.logsigmoid(-d),  # −log(1 − σ(d)) = −log σ(−d)
    "logit": lambda d: d,
    "sigmoid": lambda d: torch.sigmoid(d),
}
"""Reward form name → fn(logits) -> rewards (see the module docstring)."""


def disc_accuracy(d_real: Tensor, d_fake: Tensor, pairs: Tensor, loss: str) -> float:
    """bce: ½ (share of references with d > 0 + share of samples with d < 0); bt: share of pairs with d_ref > d_sample."""
    if loss == "bt":
        return float((d_real[pairs[:, 0]] > d_fake[pairs[:, 1]]).float().mean())
    return 0.5 * float((d_real > 0).float().mean() + (d_fake < 0).float().mean())


# ---------------------------------------------------------------------------- the reward


class DiscriminatorReward:
    """Reward = form(D(x, y)) of a discriminator D trained online on references vs samples (module docstring).

    ``model``: a :class:`~rewardlab.models.reward_model.RewardModel` (or a 1-label HF sequence
    classifier, wrapped); ``tokenizer`` its tokenizer. Build from a folder with ``DiscriminatorReward.load``.

    Arguments: ``lr`` AdamW learning rate (1e-5; ~1e-3 for tiny models); ``steps`` optimiser steps per
    call (1; 0 = never train); ``loss`` in DISC_LOSSES; ``form`` in FORMS; ``column`` the reference
    column; ``replay`` how many past samples (with their references) join each update (0 = off);
    ``batch_size`` sequences per forward pass (training keeps one graph over the whole call);
    ``max_length`` tokens per (prompt, response), cut from the left; ``max_grad_norm`` gradient clipping.

    ``stats`` after a training call: loss and accuracy of the last step's forward (before that step's
    update; accuracy per :func:`disc_accuracy`), p_ref and p_sample = mean σ(d) over references and
    samples in that forward.
    """

    def __init__(self, model, tokenizer, *, lr: float = 1e-5, steps: int = 1, loss: str = "bce",
                 form: str = "logsigmoid", column: str = "reference", replay: int = 0, batch_size: int = 32,
                 max_length: int = 512, max_grad_norm: float | None = 1.0, name: str = "adversarial"):
        from rewardlab.models.reward_model import RewardModel

        if loss not in DISC_LOSSES:
            raise ValueError(f"unknown discriminator loss {loss!r}; known: {', '.join(DISC_LOSSES)}")
        if form not in FORMS:
            raise ValueError(f"unknown reward form {form!r}; known: {', '.join(FORMS)}")
        if int(steps) < 0 or int(replay) < 0 or int(batch_size) < 1 or float(lr) <= 0:
            raise ValueError(f"need steps >= 0, replay >= 0, batch_size >= 1, lr > 0; got {steps}, {replay}, {batch_size}, {lr}")
        self.model = model if isinstance(model, RewardModel) else RewardModel(model)
        self.tokenizer = tokenizer
        self.lr, self.steps, self.loss, self.form = float(lr), int(steps), loss, form  # lr: YAML reads "1e-3" as text
        self.column, self.batch_size, self.max_length = column, int(batch_size), int(max_length)
        self.max_grad_norm, self.name = max_grad_norm, name
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=0.0)
        self.buffer: deque = deque(maxlen=int(replay))  # (prompt, completion, references) of past calls
        self.update = True
        self.updates = 0
        self.stats: dict[str, float] = {}
        self.truncation: dict = {}

    @classmethod
    def load(cls, path: str, *, device: str | None = None, max_length: int | None = None, allow_pickle: bool = False,
             **kwargs) -> "DiscriminatorReward":
        """From a reward-model folder (rewardlab checkpoint or 1-label HF classifier; a causal LM gets a fresh
        head); a folder written by :meth:`save` also restores the optimiser, replay buffer and update count."""
        from rewardlab.models.reward_model import load_reward_model
        from rewardlab.checkpoint import STATE

        model, tokenizer, meta = load_reward_model(str(path), allow_pickle=bool(allow_pickle))
        if device is not None:
            model.to(device)
        kwargs.setdefault("name", f"adversarial:{path}")
        reward = cls(model, tokenizer, max_length=max_length or meta.get("max_length", 512), **kwargs)
        state = Path(path) / STATE
        if meta.get("format") == "rewardlab-discriminator" and state.is_file():
            reward.load_state_dict({"model": None, **torch.load(state, map_location="cpu", weights_only=True)})
        return reward

    # -------------------------------------------------- state
    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "buffer": list(self.buffer), "updates": self.updates, "stats": dict(self.stats)}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output (``model: None`` keeps the current weights); the lr stays this object's."""
        if state.get("model") is not None:
            self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))  # torch would share the moment tensors
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        self.buffer.clear()
        self.buffer.extend(tuple(b) for b in state["buffer"])
        self.updates, self.stats = int(state["updates"]), dict(state["stats"])

    def save(self, path) -> Path:
        """A reward-model folder (``rm:PATH`` loads it) + the optimiser state, buffer and update count."""
        from rewardlab.checkpoint import save_model_folder

        meta = {"format": "rewardlab-discriminator", "pooling": self.model.pooling, "max_length": self.max_length,
                "loss": self.loss, "form": self.form, "updates": self.updates, "sequence": {"append_eos": self.model.append_eos}}
        state = {k: v for k, v in self.state_dict().items() if k != "model"}
        return save_model_folder(Path(path), self.model, self.tokenizer, meta, state)

    # -------------------------------------------------- forward passes
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _encode(self, prompts: Sequence, responses: Sequence) -> list[list[int]]:
        from rewardlab.data.batching import Encoder

        encoder = Encoder(self.tokenizer, self.max_length, "left", self.model.append_eos)  # the encoding of score_texts
        return [encoder.encode_example(p, [r], ["response"])[0] for p, r in zip(prompts, responses)]

    def _logits(self, seqs: list[list[int]]) -> Tensor:
        """(len(seqs),) logits with gradients, ``batch_size`` length-sorted sequences per forward."""
        from rewardlab.data.batching import pad

        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        parts = []
        for start in range(0, len(seqs), self.batch_size):
            ids, mask = pad([seqs[i] for i in order[start: start + self.batch_size]], self.tokenizer.pad_token_id)  # (b, T)
            parts.append(self.model(ids.to(self.device), mask.to(self.device)).rewards)  # (b,)
        inverse = torch.argsort(torch.as_tensor(order, device=self.device))
        return torch.cat(parts)[inverse]  # (n,)

    def logits(self, prompts: Sequence, completions: Sequence) -> list[float]:
        """Discriminator logits d = D(x, y), eval mode, through ``score_texts`` (as ``rm:PATH`` scores)."""
        from rewardlab.models.scoring import score_texts

        if not completions:
            return []
        d, self.truncation = score_texts(self.model, self.tokenizer, list(prompts), list(completions),
                                         self.batch_size, self.max_length)
        return d.astype(float).tolist()

    # -------------------------------------------------- training
    def train_on(self, prompts: Sequence, completions: Sequence, references: Sequence) -> dict:
        """``steps`` optimiser steps on the discriminator loss; references[i] (a string or a list of them)
        are the real responses to prompts[i]; returns ``stats``."""
        if self.steps == 0:
            return self.stats
        rows = [(p, c, tuple([r] if isinstance(r, str) else (r or ()))) for p, c, r in zip(prompts, completions, references)]
        rows_all = rows + list(self.buffer)
        real: dict[tuple[str, str], int] = {}  # unique (prompt, reference) → index
        pairs = []
        for i, (p, _, refs) in enumerate(rows_all):
            for ref in refs:
                pairs.append((real.setdefault((p, ref), len(real)), i))
        if not real:
            raise ValueError(f"adversarial reward: the {self.column!r} column holds no reference text")
        seqs = self._encode([p for p, _ in real] + [p for p, _, _ in rows_all], [r for _, r in real] + [c for _, c, _ in rows_all])
        pairs_t = torch.as_tensor(pairs, dtype=torch.long, device=self.device)  # (P, 2)
        R = len(real)
        self.model.train()
        for _ in range(self.steps):
            d = self._logits(seqs)  # (R + N,)
            d_real, d_fake = d[:R], d[R:]
            loss = DISC_LOSSES[self.loss](d_real, d_fake, pairs_t)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
            self.optimizer.step()
            self.updates += 1
        self.model.eval()
        d_real, d_fake = d_real.detach(), d_fake.detach()
        self.stats = {"loss": float(loss.detach()), "accuracy": disc_accuracy(d_real, d_fake, pairs_t, self.loss),
                      "p_ref": float(torch.sigmoid(d_real).mean()), "p_sample": float(torch.sigmoid(d_fake).mean())}
        self.buffer.extend(rows)
        return self.stats

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns) -> list[float]:
        n = check_inputs(prompts, completions, columns)
        if n == 0:
            return []
        if self.update and self.steps > 0:
            if columns.get(self.column) is None:
                raise ValueError(f"adversarial reward: training needs the {self.column!r} column (reference responses); "
                                 f"columns given: {', '.join(columns) or 'none'}. Pass prompts with a {self.column!r} "
                                 "field (--prompts FILE.jsonl), name another column with column=NAME, or score only with steps=0")
            self.train_on(prompts, completions, columns[self.column])
        d = torch.as_tensor(self.logits(prompts, completions), dtype=torch.float64)  # (N,)
        return FORMS[self.form](d).tolist()
