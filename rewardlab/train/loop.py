"""The training loop: one function, top to bottom.

    records ─► tokenise (truncation reported) ─► length-grouped batches ─► model ─► rewards
            ─► catalogue loss (+ regularisers) ─► AdamW (warmup, schedule, clipping, accumulation)
            ─► eval every N steps ─► atomic checkpoints ─► final HF folder + rewardlab.json

Runs on Accelerate: devices, mixed precision and multi-process (DDP/FSDP/DeepSpeed via
``accelerate launch``). Same seed → identical runs on CPU, and a killed run resumed with
``resume=True`` ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from rewardlab.config import TrainConfig, save_config, to_dict
from rewardlab.data.batching import COLLATORS, Encoder, encode_records, length_grouped_batches
from rewardlab.data.sequence import describe as describe_sequence
from rewardlab.data.sequence import resolve_append_eos
from rewardlab.losses.catalogue import get_loss, get_regularizer, resolve_hparams
from rewardlab.models.gguf import resolve_gguf
from rewardlab.models.pooled import disable_dropout
from rewardlab.models.reward_model import RewardModel, load_backbone
from rewardlab import checkpoint as ckpt
from rewardlab.runtime import reset_accelerator_state, resolve_precision
from rewardlab.types import PairBatch, PointBatch, RankBatch, RewardOutput

# The data form each loss family trains on, unless the loss names one.
FAMILY_FORM = {"pairwise": "pairs", "listwise": "rankings", "pointwise": "ratings"}


@dataclass
class StepOutput:
    """Tensors on the model's device: reading them waits for the device, so the loop reads them only when it logs."""

    loss: torch.Tensor  # scalar, what is back-propagated
    n: torch.Tensor  # scalar: examples that counted
    correct: torch.Tensor  # scalar: pairwise, chosen scored above rejected (ties in data excluded)


def _mean(per_example: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over ``keep`` (all if None); 0 with a gradient for an empty selection. A masked sum, not boolean
    indexing, so the device never waits for the host to learn how many rows were kept."""
    if keep is None:
        return per_example.mean() if per_example.numel() else per_example.sum()
    kept = torch.where(keep, per_example, torch.zeros_like(per_example))
    return kept.sum() / keep.sum().clamp(min=1)


def _regularize(regs: list, available: dict) -> torch.Tensor:
    """Σ coef · mean(regulariser); each regulariser gets the inputs its catalogue entry names."""
    total = next(iter(available.values())).new_zeros(())
    for spec, coef, hp in regs:
        missing = [k for k in spec.inputs if available.get(k) is None]
        if missing:
            raise ValueError(f"regulariser {spec.name!r} needs {', '.join(missing)}, which {spec.data_form} data of this loss does not provide")
        total = total + coef * spec.fn(**{k: available[k] for k in spec.inputs}, **hp).mean()
    return total


def chunked_forward(model: RewardModel, input_ids, attention_mask, chunks: int, return_hidden: bool) -> RewardOutput:
    """Score N right-padded rows as ``chunks`` forwards of similar length, each cut to its own longest row.

    Chosen and rejected rows of a pair often differ in length; sorting all rows by length and padding
    each chunk separately skips most of the remaining padding. Rewards come back in row order.
    """
    if chunks <= 1 or input_ids.shape[0] < 2 * chunks:
        return model(input_ids, attention_mask, return_hidden=return_hidden)
    lengths = attention_mask.sum(-1)  # (N,)
    order = torch.argsort(lengths)
    rewards, hidden = [], []
    for idx in order.chunk(chunks):
        T = int(lengths[idx].max())
        out = model(input_ids[idx, :T], attention_mask[idx, :T], return_hidden=return_hidden)
        rewards.append(out.rewards)
        hidden.append(out.hidden)
    inverse = torch.argsort(order)
    rewards = torch.cat(rewards)[inverse]
    return RewardOutput(rewards, torch.cat(hidden)[inverse] if return_hidden else None)


def _forward(model: RewardModel, input_ids, attention_mask, need_hidden: bool, length_head, chunks: int = 1):
    """(rewards used by the loss (N,), quality rewards (N,), length-head rewards or None, hidden or None).

    With ODIN's length head the preference loss sees r_Q + r_L; only r_Q (the saved head) is the reward.
    """
    out = chunked_forward(model, input_ids, attention_mask, chunks, need_hidden or length_head is not None)
    quality = out.rewards.float()
    if length_head is None:
        return quality, quality, None, out.hidden
    r_length = length_head(out.hidden.to(length_head.weight.dtype)).squeeze(-1).float()  # (N,)
    return quality + r_length, quality, r_length, out.hidden


def _pair_loss(spec, r_chosen, r_rejected, margin, tie, hp: dict) -> torch.Tensor:
    """Per-pair loss (B,), given the margin and tie columns only if the loss takes them."""
    extra = {k: v for k, v in (("margin", margin), ("tie", tie)) if k in spec.inputs}
    return spec.fn(r_chosen, r_rejected, **extra, **hp)


def pairwise_step(model, batch: PairBatch, spec, hp: dict, regs: list, need_hidden: bool, length_head=None, chunks: int = 1) -> StepOutput:
    rewards, quality, r_length, hidden = _forward(model, batch.input_ids, batch.attention_mask, need_hidden, length_head, chunks)
    B = batch.margin.shape[0]
    per = _pair_loss(spec, rewards[:B], rewards[B:], batch.margin, batch.tie, hp)  # (B,)
    keep = None if spec.handles_ties else ~batch.tie  # a loss that does not model ties never sees them
    loss = _mean(per, keep) + _regularize(regs, {
        "rewards": quality, "r_chosen": quality[:B], "r_rejected": quality[B:], "hidden": hidden,
        "lengths": batch.attention_mask.sum(-1).float(), "length_rewards": r_length})
    strict = ~batch.tie
    correct = ((quality[:B] > quality[B:]) & strict).sum()
    return StepOutput(loss, strict.sum(), correct)


# Regularisers that are sums of per-pair or per-row terms: a batch split into groups gives the same gradient.
SPLITTABLE_REGULARIZERS = {"center": "pairs", "l2_reward": "rows"}


def can_split_pairs(spec, regs: list, need_hidden: bool, length_head) -> bool:
    """True when the pair loss of a batch is a sum over its pairs, so groups of pairs can go backward one by one."""
    return (spec.family == "pairwise" and not need_hidden and length_head is None
            and all(r.name in SPLITTABLE_REGULARIZERS for r, _, _ in regs))


def pairwise_split_step(model, batch: PairBatch, spec, hp: dict, regs: list, groups: int, chunks: int, backward) -> StepOutput:
    """The pairwise step with its backward pass run per group of pairs: the same gradient as one backward of
    the whole batch (the loss and the splittable regularisers are sums, normalised by the whole batch's
    counts), with the activations of one group alive at a time. Pairs are grouped by length so each group
    pads little; each group is forwarded as ``chunks // groups`` length-sorted chunks. ``backward(loss, last)``
    is called once per group (``last`` for the final one: under DDP only that one may synchronise). Returns
    the loss detached."""
    B = batch.margin.shape[0]
    lengths = batch.attention_mask.sum(-1)  # (2B,)
    order = torch.argsort(lengths[:B] + lengths[B:])  # pairs by total length
    keep_all = None if spec.handles_ties else ~batch.tie
    n_kept = (keep_all.sum() if keep_all is not None else batch.tie.new_tensor(B, dtype=torch.long)).clamp(min=1)
    per_group_chunks = max(1, chunks // groups)
    total_loss, correct = 0.0, 0
    parts = order.chunk(groups)
    for i, idx in enumerate(parts):
        rows = torch.cat([idx, idx + B])
        T = int(lengths[rows].max())
        rewards = chunked_forward(model, batch.input_ids[rows, :T], batch.attention_mask[rows, :T], per_group_chunks, False).rewards.float()
        b = idx.shape[0]
        r_chosen, r_rejected = rewards[:b], rewards[b:]
        per = _pair_loss(spec, r_chosen, r_rejected, batch.margin[idx], batch.tie[idx], hp)  # (b,)
        if keep_all is not None:
            per = torch.where(keep_all[idx], per, torch.zeros_like(per))
        loss = per.sum() / n_kept
        for reg, coef, rhp in regs:
            avail = {"rewards": rewards, "r_chosen": r_chosen, "r_rejected": r_rejected}
            value = reg.fn(**{k: avail[k] for k in reg.inputs}, **rhp)
            loss = loss + coef * value.sum() / (B if SPLITTABLE_REGULARIZERS[reg.name] == "pairs" else 2 * B)
        backward(loss, i == len(parts) - 1)
        total_loss = total_loss + loss.detach()
        correct = correct + ((r_chosen > r_rejected) & ~batch.tie[idx]).sum()
    return StepOutput(total_loss, (~batch.tie).sum(), correct)


def listwise_step(model, batch: RankBatch, spec, hp: dict, regs: list, need_hidden: bool, length_head=None, chunks: int = 1) -> StepOutput:
    rewards, quality, r_length, hidden = _forward(model, batch.input_ids, batch.attention_mask, need_hidden, length_head, chunks)
    loss = _mean(spec.fn(rewards.view(batch.ranks.shape), batch.ranks, batch.valid, **hp))  # (B, K) → (B,)
    real = batch.valid.flatten()  # regularisers never see the padding rows
    loss = loss + _regularize(regs, {
        "rewards": quality[real], "hidden": None if hidden is None else hidden[real],
        "lengths": batch.attention_mask.sum(-1).float()[real], "length_rewards": None if r_length is None else r_length[real]})
    # accuracy over strictly ordered valid pairs i, j with rank_i < rank_j
    q = quality.view(batch.ranks.shape)  # (B, K)
    better = (batch.ranks[:, :, None] < batch.ranks[:, None, :]) & batch.valid[:, :, None] & batch.valid[:, None, :]
    correct = ((q[:, :, None] > q[:, None, :]) & better).sum()
    return StepOutput(loss, better.sum(), correct)


def pointwise_step(model, batch: PointBatch, spec, hp: dict, regs: list, need_hidden: bool, length_head=None, chunks: int = 1) -> StepOutput:
    rewards, quality, r_length, hidden = _forward(model, batch.input_ids, batch.attention_mask, need_hidden, length_head, chunks)
    loss = _mean(spec.fn(rewards, batch.target, **hp))  # target: (B,), (B, A) or (B, 2) = [label, score]
    loss = loss + _regularize(regs, {"rewards": quality, "hidden": hidden, "lengths": batch.attention_mask.sum(-1).float(),
                                     "length_rewards": r_length})
    zero = loss.new_zeros((), dtype=torch.long)
    return StepOutput(loss, zero, zero)


STEPS = {"pairwise": pairwise_step, "listwise": listwise_step, "pointwise": pointwise_step}


def make_scheduler(optimizer, kind: str, warmup: int, total: int):
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return max(0.0, 1.0 - progress)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)




def resolve_length_chunks(chunks: int, device: torch.device) -> int:
    """``0`` (auto) → 4 on a CPU, 1 elsewhere. Measured: on the 2-core CPU 4 length-sorted chunks train 1.24× a
    plain loop (bench/results/train.md); on an H200 with the 0.5B config, 4 chunks ran at 0.34× one forward
    (35 vs 104 pairs/s, bench/results/gpu.md): a GPU wants one big forward, and each chunk waits for the host."""
    return chunks if chunks > 0 else (4 if device.type == "cpu" else 1)


def resolve_backward_groups(groups: int, device: torch.device, splittable: bool) -> int:
    """``0`` (auto) → 2 on a CPU where the objective splits, else 1. ``> 1`` needs a pair loss whose
    regularisers are all splittable. Measured on the 2-core CPU (bench/results/train_groups_ab.json, 3 × 60
    steps each, alternating): 2 groups ran at 18.7 pairs/s against 18.9 for 1 (noise) with peak RSS 774–780
    vs 998–1010 MB. Not measured on a GPU, where one large backward is the safer default."""
    if groups > 1 and not splittable:
        raise ValueError(f"backward_groups={groups} needs a pairwise loss whose regularisers are among "
                         f"{', '.join(SPLITTABLE_REGULARIZERS)} (the others couple the whole batch); use 1")
    if groups > 0:
        return groups
    return 2 if device.type == "cpu" and splittable else 1






def add_lora(model, cfg: TrainConfig):
    """Wrap ``model`` with LoRA adapters (peft); the score head stays fully trainable. Returns (peft model, inner model)."""
    from peft import LoraConfig, TaskType, get_peft_model

    targets = cfg.lora_target_modules if cfg.lora_target_modules == "all-linear" else [t.strip() for t in cfg.lora_target_modules.split(",")]
    peft_model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                  lora_dropout=cfg.lora_dropout, target_modules=targets))
    return peft_model, peft_model.base_model.model  # adapters live inside the inner model's modules


def split_records(records: list, fraction: float, seed: int) -> tuple[list, list]:
    """A seeded held-out split (by record, so both responses of a pair stay on one side)."""
    if fraction <= 0 or len(records) < 2:
        return records, []
    perm = np.random.default_rng(seed).permutation(len(records))
    n_eval = max(1, int(round(fraction * len(records))))
    held = set(perm[:n_eval].tolist())
    return [r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held]


def load_training_data(cfg: TrainConfig, form: str):
    """(train records, eval records, data summary) — bad records and splits reported, nothing silently dropped."""
    from rewardlab.data.formats import load_records

    records, report = load_records(cfg.data, form=form, columns=cfg.columns, on_bad_record=cfg.on_bad_record, limit=cfg.limit)
    summary = {"train": report.summary()}
    if cfg.eval_data:
        eval_records, eval_report = load_records(cfg.eval_data, form=form, columns=cfg.columns, on_bad_record=cfg.on_bad_record)
        summary["eval"] = eval_report.summary()
    else:
        records, eval_records = split_records(records, cfg.eval_split, cfg.seed)
        summary["eval"] = {"split_from_train": cfg.eval_split, "n_loaded": len(eval_records)}
    if not records:
        raise ValueError(f"{cfg.data}: no training records left (loaded {report.n_loaded}, skipped {report.n_skipped})")
    return records, eval_records, summary


def training_reward_stats(model, tokenizer, records: list, max_length: int, truncation_side: str, seed: int,
                          n: int = 1000) -> dict:
    """Mean and std of the trained RM's rewards on (a seeded sample of at most ``n``) training records: saved with
    the model so ``score``/``eval --normalize`` can report (r - mean) / std, as OpenRLHF does."""
    from rewardlab.models.scoring import score_dataset

    idx = np.sort(np.random.default_rng(seed).permutation(len(records))[:n])
    scored = score_dataset(model, tokenizer, [records[i] for i in idx], 32, max_length, truncation_side)
    r = np.concatenate(scored.rewards) if scored.rewards else np.zeros(0)
    model.train()
    return {"mean": float(r.mean()) if r.size else 0.0, "std": float(r.std()) if r.size > 1 else 1.0,
            "n_sequences": int(r.size), "n_records": int(len(idx)), "source": "training data"}


def train(cfg: TrainConfig, records: list | None = None, eval_records: list | None = None, log=print) -> dict:
    """Train a reward model as ``cfg`` says; returns the metadata written to ``rewardlab.json``.

    ``records`` / ``eval_records`` may be passed directly (then ``cfg.data`` is only recorded).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    if cfg.output is None or cfg.model is None:
        raise ValueError("train needs --model and --output")
    output = Path(cfg.output)
    spec = get_loss(cfg.loss)
    hp = resolve_hparams(spec, cfg.loss_args)
    regs = [(get_regularizer(name), coef, resolve_hparams(get_regularizer(name), {})) for name, coef in cfg.regularizers.items()]
    form = cfg.form or (spec.data_form if spec.data_form != "any" else FAMILY_FORM[spec.family])
    need_hidden = any("hidden" in r.inputs for r, _, _ in regs)
    use_length_head = any("length_rewards" in r.inputs for r, _, _ in regs)  # ODIN: a second, length head during training

    precision = resolve_precision(cfg.mixed_precision)
    reset_accelerator_state()
    accelerator = Accelerator(
        cpu=not (torch.cuda.is_available() or torch.backends.mps.is_available()),  # CPU: multi-process DDP over gloo
        mixed_precision=precision,
        gradient_accumulation_steps=cfg.grad_accum,
        log_with=None if cfg.report_to == "none" else cfg.report_to,
        project_dir=str(output),
    )
    set_seed(cfg.seed)
    say = log if accelerator.is_main_process else (lambda *a, **k: None)
    chunks = resolve_length_chunks(cfg.length_chunks, accelerator.device)

    if records is None:
        records, eval_records, data_summary = load_training_data(cfg, form)
    else:
        data_summary = {"train": {"source": cfg.data or "in-memory", "n_loaded": len(records)},
                        "eval": {"n_loaded": len(eval_records or [])}}
    eval_records = eval_records or []

    resume_from = ckpt.latest_checkpoint(output) if cfg.resume else None
    model_source, gguf_file = (str(resume_from), None) if resume_from else resolve_gguf(cfg.model, cfg.gguf_file)
    model, tokenizer = load_backbone(model_source, trust_remote_code=cfg.trust_remote_code, gguf_file=gguf_file)
    if cfg.disable_dropout:
        disable_dropout(model)
    peft_model = None
    if cfg.lora_r:
        peft_model, model = add_lora(model, cfg)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    rm = RewardModel(model)
    rm.append_eos, source = resolve_append_eos(cfg.append_eos, {}, tokenizer, rm.pooling)
    sequence = {**describe_sequence(rm.append_eos, tokenizer, rm.pooling), "source": source}
    if cfg.compile:
        rm.forward = torch.compile(rm.forward, dynamic=True)
    if use_length_head:
        rm.length_head = torch.nn.Linear(model.config.hidden_size, 1)  # trained, not saved: the reward is the quality head
    length_head = getattr(rm, "length_head", None)
    split = resolve_backward_groups(cfg.backward_groups, accelerator.device, can_split_pairs(spec, regs, need_hidden, length_head))

    def group_backward(loss, last: bool):
        """One group's backward. Under DDP, all but the last group skip the gradient all-reduce: one all-reduce
        of the step's summed gradient instead of one per group."""
        if last or accelerator.num_processes == 1:
            accelerator.backward(loss)
        else:
            with accelerator.no_sync(rm):
                accelerator.backward(loss)

    encoder = Encoder(tokenizer, cfg.max_length, cfg.truncation_side, rm.append_eos)
    encoded = encode_records(records, encoder, label_and_score=spec.data_form == "any" and spec.family == "pointwise")
    truncation = encoder.report.summary()
    say(f"train: {len(encoded)} {form} — {encoder.report.message()}")
    say(f"sequences: append_eos={rm.append_eos} ({sequence['source']}; eos={tokenizer.eos_token!r}, pad={tokenizer.pad_token!r}); "
        f"reward read at: {sequence['read_at']}")
    pad_id = tokenizer.pad_token_id

    collate = COLLATORS[form]
    steps_per_epoch = math.ceil(math.ceil(len(encoded) / cfg.batch_size) / accelerator.num_processes)  # batches per process
    updates_per_epoch = math.ceil(steps_per_epoch / cfg.grad_accum)
    total_updates = cfg.max_steps or max(1, math.ceil(cfg.epochs * updates_per_epoch))
    n_epochs = math.ceil(total_updates / updates_per_epoch)

    trainable = [p for p in rm.parameters() if p.requires_grad]  # LoRA: adapters + score head only
    decay = [p for p in trainable if p.ndim >= 2]
    no_decay = [p for p in trainable if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    scheduler = make_scheduler(optimizer, cfg.scheduler, int(cfg.warmup_ratio * total_updates), total_updates)
    rm, optimizer = accelerator.prepare(rm, optimizer)

    update, epoch, batch_in_epoch = 0, 0, 0
    if resume_from is not None:
        state = torch.load(resume_from / ckpt.STATE, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        update, epoch, batch_in_epoch = state["update"], state["epoch"], state["batch_in_epoch"]
        say(f"resumed from {resume_from} at update {update} (epoch {epoch}, batch {batch_in_epoch})")

    save_config(cfg, output / "rewardlab_config.yaml") if accelerator.is_main_process else None
    if cfg.report_to != "none":
        accelerator.init_trackers("rewardlab", config={k: v for k, v in to_dict(cfg).items() if isinstance(v, (int, float, str, bool))})

    def metadata(metrics: dict, final: bool) -> dict:
        return {"format": "rewardlab-reward-model", "base_model": cfg.model, "loss": cfg.loss, "loss_args": hp,
                "family": spec.family, "data_form": form, "regularizers": cfg.regularizers, "pooling": rm_unwrapped().pooling,
                "max_length": cfg.max_length, "truncation_side": cfg.truncation_side, "data": data_summary,
                "mixed_precision": precision, "length_chunks": chunks, "backward_groups": split, "lora": {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "merged": True} if cfg.lora_r else None,
                "sequence": sequence, "reward_stats": reward_stats, "truncation": truncation, "metrics": metrics, "update": update, "total_updates": total_updates,
                "final": final, "config": to_dict(cfg), "versions": ckpt.versions()}

    def rm_unwrapped() -> RewardModel:
        return accelerator.unwrap_model(rm)

    def evaluate() -> dict:
        if not eval_records:
            return {}
        from rewardlab.eval.evaluate import evaluate_records

        m = evaluate_records(rm_unwrapped(), tokenizer, eval_records, batch_size=max(cfg.batch_size, 16),
                             max_length=cfg.max_length, truncation_side=cfg.truncation_side, form=form)
        rm.train()
        return m

    def save_checkpoint(metrics: dict) -> None:
        if peft_model is not None:
            return  # resumable LoRA checkpoints are not written yet (TrainConfig refuses --resume with LoRA)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(),
                     "update": update, "epoch": epoch, "batch_in_epoch": batch_in_epoch}
            ckpt.save_model_folder(output / "checkpoints" / f"step-{update}", rm_unwrapped().model, tokenizer, metadata(metrics, False), state)
            ckpt.prune_checkpoints(output, cfg.save_total_limit)

    metrics: dict = {}
    reward_stats = None
    history: list = []
    rm.train()
    bar = tqdm(total=total_updates, initial=update, desc=f"train {cfg.loss}", disable=not (cfg.progress and accelerator.is_main_process),
               dynamic_ncols=True)
    # running sums stay on the device between logs: reading them every step would make the host wait for the GPU
    t0, seen, run_correct, run_n, run_loss, run_steps = time.perf_counter(), 0, 0, 0, 0.0, 0
    while update < total_updates:
        batches = length_grouped_batches([e.length for e in encoded], cfg.batch_size, cfg.seed, epoch)
        loader = DataLoader(encoded, batch_sampler=batches, collate_fn=lambda ex: collate(ex, pad_id),
                            generator=torch.Generator().manual_seed(cfg.seed))  # leaves the global RNG (dropout) alone
        loader = accelerator.prepare(loader)
        if batch_in_epoch:
            loader = accelerator.skip_first_batches(loader, batch_in_epoch)
        for batch in loader:
            with accelerator.accumulate(rm):
                if split > 1:  # backward inside, group by group
                    out = pairwise_split_step(rm, batch, spec, hp, regs, split, chunks, group_backward)
                else:
                    out = STEPS[spec.family](rm, batch, spec, hp, regs, need_hidden, length_head, chunks)
                    accelerator.backward(out.loss)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(rm.parameters(), cfg.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            batch_in_epoch += 1
            seen += batch.input_ids.shape[0] // (2 if form == "pairs" else 1)
            run_loss, run_steps = run_loss + out.loss.detach().float(), run_steps + 1
            run_correct, run_n = run_correct + out.correct, run_n + out.n
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            update += 1
            bar.update(1)
            if update % cfg.log_every == 0 or update >= total_updates:
                logs = {"loss": float(run_loss) / run_steps, "lr": scheduler.get_last_lr()[0]}
                if int(run_n):
                    logs["train_accuracy"] = float(run_correct) / int(run_n)
                bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()})
                accelerator.log(logs, step=update)
                history.append({"update": update, **logs})
                run_correct, run_n, run_loss, run_steps = 0, 0, 0.0, 0
            if cfg.eval_every and update % cfg.eval_every == 0:
                metrics = evaluate()
                accelerator.log({f"eval_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}, step=update)
                say(f"update {update}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))
            if cfg.save_every and update % cfg.save_every == 0:
                save_checkpoint(metrics)
            if update >= total_updates:
                break
        else:
            epoch, batch_in_epoch = epoch + 1, 0
            if not cfg.eval_every:
                metrics = evaluate()
            if not cfg.save_every and update < total_updates:
                save_checkpoint(metrics)
    bar.close()
    elapsed = time.perf_counter() - t0
    if not metrics or cfg.eval_every and update % cfg.eval_every:
        metrics = evaluate()
    if accelerator.is_main_process:
        reward_stats = training_reward_stats(rm_unwrapped(), tokenizer, records, cfg.max_length, cfg.truncation_side, cfg.seed)
    meta = metadata(metrics, True)
    meta["train"] = {"seconds": elapsed, "examples_seen": seen, "examples_per_second": seen / elapsed if elapsed else None,
                     "history_tail": history[-5:]}
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final_model = peft_model.merge_and_unload() if peft_model is not None else rm_unwrapped().model
        final_model.config.update({"mean": reward_stats["mean"], "std": reward_stats["std"], "normalize_reward": False})  # OpenRLHF's fields
        ckpt.save_final(output, final_model, tokenizer, meta)
    accelerator.end_training()
    say(f"saved {output} — " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))
    return meta
