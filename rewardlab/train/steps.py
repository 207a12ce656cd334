"""One training step: forward, objective, backward. Three ways to run it, chosen once before the loop.

    plain_step           one forward of the whole batch, one backward
    chunked_step         the forward as length-sorted chunks, each padded to its own longest row; one backward
    split_backward_step  groups of pairs, each forwarded and back-propagated alone (pair losses only)

All three give the same loss and gradient (float tolerance; tests/train/test_steps.py). With ``packed`` each forward
is one padding-free row (``RewardModel.forward(packed=True)``, :func:`resolve_packing`): same loss and gradient again
(tests/train/test_packing.py). The objective is
:func:`rewardlab.losses.objective.objective` plus the regularisers, whatever the step; a run with several data
sources steps on a ``MixedBatch`` (one batch per source, forwarded together) and minimises
:func:`rewardlab.losses.objective.mixed_objective` plus the regularisers (plain or chunked step).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from rewardlab.losses.objective import (
    batch_accuracy,
    loss_terms,
    mixed_objective,
    objective,
    regularization,
    regularizer_inputs,
)
from rewardlab.models.reward_model import RewardModel, packing_problem
from rewardlab.types import RewardOutput


@dataclass
class LossSetup:
    """The catalogue loss of a run with its hyperparameters, regularisers [(spec, coef, hp)] and data form.

    A run with several data sources has ``terms``, one ``objective.Term(spec, hp, weight)`` per source in --data
    order, form "mixed" and no ``spec`` of its own (None); its batches are ``MixedBatch``es."""

    spec: object
    hp: dict
    regs: list
    form: str
    length_head: torch.nn.Module | None = None  # ODIN: a second head during training; the reward is the quality head
    terms: tuple = ()

    @property
    def need_hidden(self) -> bool:
        return any("hidden" in r.inputs for r, _, _ in self.regs)

    @property
    def wants_length_head(self) -> bool:
        return any("length_rewards" in r.inputs for r, _, _ in self.regs)


@dataclass
class StepOutput:
    """Tensors on the model's device: reading them waits for the device, so the loop reads them only when it logs."""

    loss: torch.Tensor  # scalar, what is back-propagated
    n: torch.Tensor  # scalar: examples that counted
    correct: torch.Tensor  # scalar: pairwise, chosen scored above rejected (ties in data excluded)


def chunked_forward(model: RewardModel, input_ids, attention_mask, chunks: int, return_hidden: bool,
                    packed: bool = False) -> RewardOutput:
    """Score N right-padded rows as ``chunks`` forwards of similar length, each cut to its own longest row.

    Chosen and rejected rows of a pair often differ in length; sorting all rows by length and padding
    each chunk separately skips most of the remaining padding. Rewards come back in row order.
    ``packed``: each forward is one padding-free row of its chunk's sequences (no padding at all; with
    sdpa/eager a chunk's attention is still computed over its whole packed row, so chunks keep that small).
    """
    if chunks <= 1 or input_ids.shape[0] < 2 * chunks:
        return model(input_ids, attention_mask, return_hidden=return_hidden, packed=packed)
    lengths = attention_mask.sum(-1)  # (N,)
    order = torch.argsort(lengths)
    rewards, hidden, attributes = [], [], []
    for idx in order.chunk(chunks):
        T = int(lengths[idx].max())
        out = model(input_ids[idx, :T], attention_mask[idx, :T], return_hidden=return_hidden, packed=packed)
        rewards.append(out.rewards)
        hidden.append(out.hidden)
        attributes.append(out.attributes)
    inverse = torch.argsort(order)
    rewards = torch.cat(rewards)[inverse]
    return RewardOutput(rewards, torch.cat(hidden)[inverse] if return_hidden else None,
                        None if attributes[0] is None else torch.cat(attributes)[inverse])  # (N, A) of a multi-attribute RM


def batch_loss(model, batch, setup: LossSetup, chunks: int = 1, packed: bool = False) -> StepOutput:
    """Objective + regularisers of a batch, and its accuracy counts.

    With ODIN's length head the preference loss sees r_Q + r_L; the regularisers and the accuracy see r_Q
    (the saved head, the reward)."""
    head = setup.length_head
    out = chunked_forward(model, batch.input_ids, batch.attention_mask, chunks, setup.need_hidden or head is not None, packed)
    quality = out.rewards.float()  # (N,)
    r_length = None if head is None else head(out.hidden.to(head.weight.dtype)).squeeze(-1).float()  # (N,)
    rewards = quality if r_length is None else quality + r_length
    if out.attributes is not None:  # a multi-attribute RM fits each output to its attribute: (N, A) against (B, A)
        rewards = out.attributes.float()
    loss = mixed_objective(setup.terms, rewards, batch) if setup.terms else objective(setup.spec, rewards, batch, setup.hp)
    loss = loss + regularization(setup.regs, regularizer_inputs(batch, quality, out.hidden, r_length))
    correct, n = batch_accuracy(quality, batch)
    return StepOutput(loss, n, correct)


def plain_step(model, batch, backward, setup: LossSetup, packed: bool = False) -> StepOutput:
    """One forward of the whole batch and one backward (``backward(loss, last=True)``)."""
    out = batch_loss(model, batch, setup, packed=packed)
    backward(out.loss, True)
    return out


def chunked_step(model, batch, backward, setup: LossSetup, chunks: int, packed: bool = False) -> StepOutput:
    """The forward as ``chunks`` length-sorted chunks (:func:`chunked_forward`), one backward."""
    out = batch_loss(model, batch, setup, chunks, packed)
    backward(out.loss, True)
    return out


# Regularisers that are sums of per-pair or per-row terms: a batch split into groups gives the same gradient.
SPLITTABLE_REGULARIZERS = {"center": "pairs", "l2_reward": "rows"}


def can_split_pairs(spec, regs: list, need_hidden: bool, length_head) -> bool:
    """True when the pair loss of a batch is a sum over its pairs, so groups of pairs can go backward one by one."""
    return (spec is not None and spec.family == "pairwise" and not need_hidden and length_head is None
            and all(r.name in SPLITTABLE_REGULARIZERS for r, _, _ in regs))


def split_backward_step(model, batch, backward, setup: LossSetup, groups: int, chunks: int, packed: bool = False,
                        group_cells: int = 0) -> StepOutput:
    """The pair step with its backward pass run per group of pairs: the same gradient as one backward of the
    whole batch (the loss and the splittable regularisers are sums, normalised by the whole batch's counts),
    with the activations of one group alive at a time. Pairs are grouped by length so each group pads little;
    each group is forwarded as ``chunks // groups`` length-sorted chunks. ``group_cells`` > 0 raises the number
    of groups of a batch of long rows until a group's attention cells (Σ length² over its rows) are about that many
    (at most one pair a group).
    ``backward(loss, last)`` is called once per group (``last`` for the final one: under DDP only that one may
    synchronise). Returns the loss detached."""
    B = batch.margin.shape[0]
    lengths = batch.attention_mask.sum(-1)  # (2B,)
    if group_cells:
        groups = min(B, max(groups, -(-int((lengths.long() ** 2).sum()) // group_cells)))
    order = torch.argsort(lengths[:B] + lengths[B:])  # pairs by total length
    keep_all = None if setup.spec.handles_ties else ~batch.tie  # what the whole batch's mean divides by
    n_kept = (keep_all.sum() if keep_all is not None else batch.tie.new_tensor(B, dtype=torch.long)).clamp(min=1)
    total_loss, correct = 0.0, 0
    parts = order.tensor_split(groups)  # exactly `groups` parts (chunk gives fewer when sizes round up)
    for i, idx in enumerate(parts):
        rows = torch.cat([idx, idx + B])
        T = int(lengths[rows].max())
        group = type(batch)(batch.input_ids[rows, :T], batch.attention_mask[rows, :T], batch.margin[idx], batch.tie[idx])
        rewards = chunked_forward(model, group.input_ids, group.attention_mask, max(1, chunks // groups), False, packed).rewards.float()
        per, keep = loss_terms(setup.spec, rewards, group, setup.hp)  # (b,)
        loss = (per if keep is None else torch.where(keep, per, torch.zeros_like(per))).sum() / n_kept
        b = idx.shape[0]
        for reg, coef, rhp in setup.regs:
            avail = {"rewards": rewards, "r_chosen": rewards[:b], "r_rejected": rewards[b:]}
            value = reg.fn(**{k: avail[k] for k in reg.inputs}, **rhp)
            loss = loss + coef * value.sum() / (B if SPLITTABLE_REGULARIZERS[reg.name] == "pairs" else 2 * B)
        backward(loss, i == len(parts) - 1)
        total_loss = total_loss + loss.detach()
        correct = correct + batch_accuracy(rewards, group)[0]
    return StepOutput(total_loss, (~batch.tie).sum(), correct)


def resolve_length_chunks(chunks: int, device: torch.device) -> int:
    """``0`` (auto) → 4 on a CPU, 1 elsewhere. Measured: on the 2-core CPU 4 length-sorted chunks train 1.24× a
    plain loop (bench/results/train.md); on an H200 with the 0.5B config, 4 chunks ran at 0.34× one forward
    (35 vs 104 pairs/s, bench/results/gpu.md): a GPU wants one big forward, and each chunk waits for the host."""
    return chunks if chunks > 0 else (4 if device.type == "cpu" else 1)


# auto on a CPU, one process: a batch whose rows' attention cells (Σ length²) exceed 2 groups of this many goes backward
# in more groups. A long row's memory grows with its length squared (attention), so this bites on long rows only: 4 rows
# of 512 tokens a group; batches of 16 pairs up to 256 tokens keep 2 groups. Measured (bench/results/memory_minilm.md:
# all-MiniLM-L6-v2, batch 16, the 160 longest HH-RLHF pairs, 345-511 tokens): see the table there.
GROUP_CELLS = 2**20


def resolve_backward_groups(groups: int, device: torch.device, splittable: bool) -> int:
    """``0`` (auto) → 2 on a CPU where the objective splits, else 1. ``> 1`` needs a pair loss whose
    regularisers are all splittable. Measured on the 2-core CPU (bench/results/train_groups_ab.json, 3 × 60
    steps each, alternating): 2 groups ran at 18.7 pairs/s against 18.9 for 1 (noise) with peak RSS 774–780
    vs 998–1010 MB. Not measured on a GPU, where one large backward is the safer default. On a CPU, auto also
    gives a batch of long rows more groups (:data:`GROUP_CELLS`, :func:`choose_step`)."""
    if groups > 1 and not splittable:
        raise ValueError(f"backward_groups={groups} needs a pairwise loss whose regularisers are among "
                         f"{', '.join(SPLITTABLE_REGULARIZERS)} (the others couple the whole batch); use 1")
    if groups > 0:
        return groups
    return 2 if device.type == "cpu" and splittable else 1


VARLEN_ATTENTION = ("flash_attention_2", "flash_attention_3")  # kernels that attend within each packed sequence only


def resolve_packing(mode: str, device: torch.device, model: RewardModel) -> bool:
    """Whether the forwards are packed (``--packing``): "on", "off", or "auto" → on only on CUDA with a flash-attention
    (varlen) implementation, whose cost then follows the real tokens. Elsewhere auto stays off: sdpa and eager attend
    over a packed row's whole length under a block-diagonal mask, and packing turns off the pooled-last-layer shortcut;
    on the 2-core CPU (fp32, the bench's mini Llama, 10 length-grouped batches of 16 pairs, one thread, interleaved, CPU
    seconds per step) the default path took 1.03 s, packed 4 chunks × 2 groups 1.55 s (0.66×), one packed row 3.03 s
    (0.34×), with 12% of the padded cells padding. "on" where packing cannot give the padded rewards (an encoder,
    an attention implementation without packed sequences) is a ValueError saying why."""
    problem = packing_problem(model.model, model.pooling)
    if mode == "on" and problem:
        raise ValueError(f"--packing on: {problem}")
    if mode == "auto":
        return problem is None and device.type == "cuda" and model.config._attn_implementation in VARLEN_ATTENTION
    return mode == "on"


def choose_step(setup: LossSetup, length_chunks: int, backward_groups: int, device: torch.device, packed: bool = False,
                processes: int = 1):
    """(step(model, batch, backward) → StepOutput, chunks, groups): the speed path for this run, chosen once.
    ``packed`` (:func:`resolve_packing`) makes every forward of that path a packed one. With ``backward_groups``
    auto on a CPU and one process, a batch of over 2 × :data:`GROUP_CELLS` attention cells goes backward in more
    groups than ``groups`` (under several processes every process must run as many forwards: FSDP gathers
    parameters in each)."""
    chunks = resolve_length_chunks(length_chunks, device)
    splittable = can_split_pairs(setup.spec, setup.regs, setup.need_hidden, setup.length_head)
    groups = resolve_backward_groups(backward_groups, device, splittable)
    if groups > 1:
        cells = GROUP_CELLS if backward_groups == 0 and processes == 1 else 0
        return (partial(split_backward_step, setup=setup, groups=groups, chunks=chunks, packed=packed, group_cells=cells),
                chunks, groups)
    if chunks > 1:
        return partial(chunked_step, setup=setup, chunks=chunks, packed=packed), chunks, groups
    return partial(plain_step, setup=setup, packed=packed), chunks, groups
