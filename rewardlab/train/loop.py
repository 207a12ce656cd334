"""The training loop: build, loop over batches, step, log, evaluate, save.

    records ─► tokenise (truncation reported) ─► length-grouped batches ─► model ─► rewards
            ─► objective (+ regularisers) ─► AdamW (warmup, schedule, clipping, accumulation)
            ─► eval every N steps ─► atomic checkpoints ─► final HF folder + rewardlab.json

``train`` is the loop; the functions above it build what it needs. How a step runs (one forward, length
chunks, backward per group of pairs) is chosen once, before the loop (:mod:`rewardlab.train.steps`).
Runs on Accelerate: devices, mixed precision and multi-process (DDP/FSDP/DeepSpeed via ``accelerate
launch``). Same seed → identical runs on CPU, and a killed run resumed with ``resume=True`` ends with the
same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from rewardlab import checkpoint as ckpt
from rewardlab.config import CONFIG_FILE, TrainConfig, save_config, to_dict, tracker_config, tracker_scalars
from rewardlab.data.batching import COLLATORS, Encoder, encode_records, length_grouped_batches
from rewardlab.data.formats import load_records
from rewardlab.data.sequence import describe as describe_sequence
from rewardlab.data.sequence import resolve_append_eos
from rewardlab.eval.evaluate import evaluate_records
from rewardlab.losses.catalogue import get_loss, get_regularizer, resolve_hparams
from rewardlab.models.gguf import resolve_gguf
from rewardlab.models.pooled import disable_dropout
from rewardlab.models.reward_model import RewardModel, load_backbone
from rewardlab.models.scoring import score_dataset
from rewardlab.runtime import fsdp_on_cpu, is_sharded, reset_accelerator_state, resolve_precision
from rewardlab.train.steps import LossSetup, StepOutput, choose_step
from rewardlab.types import PairBatch, RankBatch

# The data form each loss family trains on, unless the loss names one.
FAMILY_FORM = {"pairwise": "pairs", "listwise": "rankings", "pointwise": "ratings"}


# --------------------------------------------------------------------------- building blocks


def loss_setup(cfg: TrainConfig) -> LossSetup:
    """The run's catalogue loss, hyperparameters, regularisers and the data form it trains on."""
    spec = get_loss(cfg.loss)
    regs = [(get_regularizer(name), coef, resolve_hparams(get_regularizer(name), {})) for name, coef in cfg.regularizers.items()]
    form = cfg.form or (spec.data_form if spec.data_form != "any" else FAMILY_FORM[spec.family])
    return LossSetup(spec, resolve_hparams(spec, cfg.loss_args), regs, form)


def make_accelerator(cfg: TrainConfig, precision: str):
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    reset_accelerator_state()
    accelerator = Accelerator(
        cpu=not (torch.cuda.is_available() or torch.backends.mps.is_available()),  # CPU: multi-process DDP over gloo
        mixed_precision=precision, gradient_accumulation_steps=cfg.grad_accum,
        log_with=None if cfg.report_to == "none" else cfg.report_to, project_dir=str(cfg.output))
    fsdp_on_cpu(accelerator)  # an FSDP config on CPUs: FSDP2 over gloo, not the DDP Accelerate would fall back to
    set_seed(cfg.seed)
    return accelerator


def split_records(records: list, fraction: float, seed: int) -> tuple[list, list]:
    """A seeded held-out split (by record, so both responses of a pair stay on one side)."""
    if fraction <= 0 or len(records) < 2:
        return records, []
    perm = np.random.default_rng(seed).permutation(len(records))
    n_eval = max(1, int(round(fraction * len(records))))
    held = set(perm[:n_eval].tolist())
    return [r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held]


def prepare_output(cfg: TrainConfig) -> None:
    """Refuse an --output folder that holds a run (rewardlab.json, a model or checkpoints/) unless --resume continues
    it or --overwrite replaces it (its old checkpoints are deleted, so a later --resume cannot pick one up)."""
    import shutil

    out = Path(cfg.output)
    held = ckpt.refuse_existing_output(out, (ckpt.METADATA, "model.safetensors", "checkpoints"), overwrite=cfg.overwrite,
                                       resume=cfg.resume)
    if held and not cfg.resume:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)


def load_training_data(cfg: TrainConfig, form: str, records: list | None = None, eval_records: list | None = None):
    """(train records, eval records, data summary) — bad records and splits reported, nothing silently dropped.
    Records passed in are used as they are (``cfg.data`` is then only recorded)."""
    if records is not None:
        return records, eval_records or [], {"train": {"source": cfg.data or "in-memory", "n_loaded": len(records)},
                                             "eval": {"n_loaded": len(eval_records or [])}}
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


def add_lora(model, cfg: TrainConfig):
    """Wrap ``model`` with LoRA adapters (peft); the score head stays fully trainable. Returns (peft model, inner model)."""
    from peft import LoraConfig, TaskType, get_peft_model

    targets = cfg.lora_target_modules if cfg.lora_target_modules == "all-linear" else [t.strip() for t in cfg.lora_target_modules.split(",")]
    peft_model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                  lora_dropout=cfg.lora_dropout, target_modules=targets))
    return peft_model, peft_model.base_model.model  # adapters live inside the inner model's modules


def build_model(cfg: TrainConfig, setup: LossSetup, resume_from: Path | None):
    """(RewardModel, peft model or None, tokenizer, sequence convention) — the backbone (or the checkpoint to
    resume), dropout off, LoRA adapters, gradient checkpointing, compile and ODIN's length head as asked."""
    model_source, gguf_file = (str(resume_from), None) if resume_from else resolve_gguf(cfg.model, cfg.gguf_file)
    model, tokenizer = load_backbone(model_source, trust_remote_code=cfg.trust_remote_code, gguf_file=gguf_file,
                                     allow_pickle=cfg.allow_pickle)
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
    if setup.wants_length_head:
        rm.length_head = setup.length_head = torch.nn.Linear(model.config.hidden_size, 1)  # trained, not saved
    return rm, peft_model, tokenizer, sequence


def encode_training_data(records: list, tokenizer, append_eos: bool, sequence: dict, cfg: TrainConfig, setup: LossSetup,
                         say=print) -> tuple[list, dict]:
    """(encoded examples, truncation summary); says how many were cut and how sequences end."""
    encoder = Encoder(tokenizer, cfg.max_length, cfg.truncation_side, append_eos)
    encoded = encode_records(records, encoder, label_and_score=setup.spec.data_form == "any" and setup.spec.family == "pointwise")
    say(f"train: {len(encoded)} {setup.form} — {encoder.report.message()}")
    say(f"sequences: append_eos={append_eos} ({sequence['source']}; eos={tokenizer.eos_token!r}, pad={tokenizer.pad_token!r}); "
        f"reward read at: {sequence['read_at']}")
    return encoded, encoder.report.summary()


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


def make_optimizer(rm, cfg: TrainConfig, total_updates: int):
    """AdamW over the trainable parameters (LoRA: adapters + score head), no decay on biases and norms; the schedule."""
    trainable = [p for p in rm.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    return optimizer, make_scheduler(optimizer, cfg.scheduler, int(cfg.warmup_ratio * total_updates), total_updates)


def plan_updates(n_examples: int, cfg: TrainConfig, processes: int) -> int:
    """Optimizer updates the run makes: ``max_steps``, else ``epochs`` × updates per epoch (per process)."""
    batches = math.ceil(math.ceil(n_examples / cfg.batch_size) / processes)
    return cfg.max_steps or max(1, math.ceil(cfg.epochs * math.ceil(batches / cfg.grad_accum)))


@dataclass
class Position:
    """Where the loop is: what a resumed run restarts from."""

    update: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0


def resume_point(cfg: TrainConfig, say=print) -> Path | None:
    """With --resume, the newest whole checkpoint in --output (damaged ones are named and passed over); None otherwise."""
    if not cfg.resume:
        return None
    found = ckpt.latest_good_checkpoint(Path(cfg.output), say)
    if found is None:
        say(f"--resume: no checkpoint to resume in {cfg.output}; starting from the beginning")
    return found


def model_weights(accelerator, rm) -> dict:
    """The backbone's whole state dict, to save, by its own names (``rm.model``'s: the ``model.`` prefix dropped; ODIN's
    length head is not saved). ``accelerator.get_state_dict`` gathers a sharded model — FSDP's full state dict,
    DeepSpeed ZeRO-3's consolidated 16-bit one — so every process calls this; the main process gets the tensors
    (under FSDP the others get {}). Unsharded, it is the unwrapped model's own state dict."""
    state = accelerator.get_state_dict(rm)
    return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}


def optimizer_state(accelerator, rm, optimizer) -> dict:
    """The optimizer state a checkpoint keeps. Under FSDP each process holds the moments of its own shards: torch's
    ``get_optimizer_state_dict`` gathers the full state, keyed by parameter name, on the main process (a collective:
    every process calls this). Otherwise the optimizer's own ``state_dict``, keyed by position."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type != DistributedType.FSDP:
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(rm, optimizer.optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state(rm, optimizer, saved: dict) -> None:
    """Lay a checkpoint's optimizer state over ``optimizer``: a state keyed by parameter name (an FSDP run's, whole)
    through torch's ``set_optimizer_state_dict``, which cuts it to this process's shards under FSDP and also fits a DDP
    or one-process run; a state keyed by position through the optimizer's own ``load_state_dict``."""
    if not any(isinstance(p, str) for group in saved["param_groups"] for p in group["params"]):
        optimizer.load_state_dict(saved)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(rm, getattr(optimizer, "optimizer", optimizer), saved, options=StateDictOptions(full_state_dict=True))


def resume_state(resume_from: Path | None, rm, optimizer, scheduler, say=print) -> Position:
    """Optimizer, scheduler and RNG of the checkpoint being resumed (nothing to load for a fresh run); every process
    reads the checkpoint."""
    if resume_from is None:
        return Position()
    state = torch.load(resume_from / ckpt.STATE, weights_only=False)
    load_optimizer_state(rm, optimizer, state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    pos = Position(state["update"], state["epoch"], state["batch_in_epoch"])
    say(f"resumed from {resume_from} at update {pos.update} (epoch {pos.epoch}, batch {pos.batch_in_epoch})")
    return pos


def epoch_loader(encoded: list, form: str, pad_id: int, cfg: TrainConfig, pos: Position, accelerator):
    """This epoch's length-grouped batches (seeded by epoch), sharded across processes, minus those already done."""
    batches = length_grouped_batches([e.length for e in encoded], cfg.batch_size, cfg.seed, pos.epoch)
    collate = COLLATORS[form]
    loader = DataLoader(encoded, batch_sampler=batches, collate_fn=lambda ex: collate(ex, pad_id),
                        generator=torch.Generator().manual_seed(cfg.seed))  # leaves the global RNG (dropout) alone
    loader = accelerator.prepare(loader)
    return accelerator.skip_first_batches(loader, pos.batch_in_epoch) if pos.batch_in_epoch else loader


def make_backward(accelerator, rm):
    """``backward(loss, last)``. Under DDP a step that goes backward in groups skips the gradient all-reduce on
    all but the last group: one all-reduce of the step's summed gradient instead of one per group."""
    def backward(loss, last: bool):
        if last or accelerator.num_processes == 1:
            accelerator.backward(loss)
        else:
            with accelerator.no_sync(rm):
                accelerator.backward(loss)

    return backward


class NonFiniteError(ValueError):
    """A NaN/Inf loss or gradient stopped the run (``--skip-nonfinite`` skips such updates instead)."""


def check_finite(loss, grad_norm, pos: Position, cfg: TrainConfig, skipped: list) -> bool:
    """True when the update may go ahead. A NaN/Inf loss or gradient norm stops the run, naming where, or with
    ``skip_nonfinite`` is recorded in ``skipped`` and the update is dropped (the schedule still moves on)."""
    loss, norm = float(loss.detach()), (None if grad_norm is None else float(grad_norm))
    if math.isfinite(loss) and (norm is None or math.isfinite(norm)):
        return True
    where = {"update": pos.update + 1, "epoch": pos.epoch, "batch_in_epoch": pos.batch_in_epoch, "loss": loss, "grad_norm": norm}
    if cfg.skip_nonfinite:
        skipped.append(where)
        return False
    last = ckpt.latest_checkpoint(Path(cfg.output))
    raise NonFiniteError(f"non-finite training: update {where['update']} (epoch {pos.epoch}, batch {pos.batch_in_epoch} of the epoch, "
                         f"counting from 0) has loss {loss} and gradient norm {norm}; nothing of it was applied. "
                         + (f"The last good checkpoint is {last} (--resume continues from it). " if last else "No checkpoint was written yet. ")
                         + "Lower --lr, or pass --skip-nonfinite to skip such updates.")


class RunningStats:
    """Loss and accuracy summed between logs, and records seen (a pair, a ranking or a rating each; the padding rows
    of a ranking batch are not records). The sums stay on the device: reading them every step would make the host
    wait for the GPU."""

    def __init__(self):
        self.examples = 0
        self.reset()

    def reset(self) -> None:
        self.loss, self.steps, self.correct, self.n = 0.0, 0, 0, 0

    def add(self, out: StepOutput, batch) -> None:
        self.examples += len(batch.margin if isinstance(batch, PairBatch) else batch.ranks if isinstance(batch, RankBatch) else batch.target)
        self.loss, self.steps = self.loss + out.loss.detach().float(), self.steps + 1
        self.correct, self.n = self.correct + out.correct, self.n + out.n

    def flush(self, lr: float) -> dict:
        logs = {"loss": float(self.loss) / self.steps, "lr": lr}
        if int(self.n):
            logs["train_accuracy"] = float(self.correct) / int(self.n)
        self.reset()
        return logs


def evaluate(rm, tokenizer, eval_records: list, cfg: TrainConfig, setup: LossSetup) -> dict:
    """Held-out metrics (``eval.evaluate.evaluate_records``; ``loss`` is the run's objective); {} without held-out
    records. Leaves ``rm`` training."""
    if not eval_records:
        return {}
    metrics = evaluate_records(rm, tokenizer, eval_records, batch_size=max(cfg.batch_size, 16), max_length=cfg.max_length,
                               truncation_side=cfg.truncation_side, form=setup.form, loss=(setup.spec, setup.hp))
    rm.train()
    return metrics


def save_checkpoint(accelerator, rm, tokenizer, meta: dict, optimizer, scheduler, pos: Position, cfg: TrainConfig) -> None:
    """``output/checkpoints/step-N``: the model folder and trainer_state.pt, written atomically by the main process; old
    ones pruned. Weights and optimizer state are whole: under FSDP gathered from every process's shards first
    (``model_weights``, ``optimizer_state``), so every process calls this."""
    from accelerate.utils import DistributedType

    if cfg.lora_r:
        return  # resumable LoRA checkpoints are not written yet (TrainConfig refuses --resume with LoRA)
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        import warnings

        warnings.warn("resumable checkpoints are not written under DeepSpeed (its ZeRO optimizer state is partitioned and "
                      "needs DeepSpeed's own checkpoint format, untested here); the final model is saved whole", stacklevel=2)
        return
    accelerator.wait_for_everyone()
    weights, optim = model_weights(accelerator, rm), optimizer_state(accelerator, rm, optimizer)
    if accelerator.is_main_process:
        state = {"optimizer": optim, "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(), **asdict(pos)}
        ckpt.save_model_folder(Path(cfg.output) / "checkpoints" / f"step-{pos.update}", accelerator.unwrap_model(rm).model,
                               tokenizer, meta, state, weights=weights)
        ckpt.prune_checkpoints(Path(cfg.output), cfg.save_total_limit)


def training_reward_stats(model, tokenizer, records: list, max_length: int, truncation_side: str, seed: int,
                          n: int = 1000) -> dict:
    """Mean and std of the trained RM's rewards on (a seeded sample of at most ``n``) training records: saved with
    the model so ``score``/``eval --normalize`` can report (r - mean) / std, as OpenRLHF does."""
    idx = np.sort(np.random.default_rng(seed).permutation(len(records))[:n])
    scored = score_dataset(model, tokenizer, [records[i] for i in idx], 32, max_length, truncation_side)
    r = np.concatenate(scored.rewards) if scored.rewards else np.zeros(0)
    model.train()
    return {"mean": float(r.mean()) if r.size else 0.0, "std": float(r.std()) if r.size > 1 else 1.0,
            "n_sequences": int(r.size), "n_records": int(len(idx)), "source": "training data"}


def save_final(accelerator, rm, peft_model, tokenizer, records: list, meta: dict, cfg: TrainConfig) -> None:
    """The trained model (LoRA merged) at the top of the output folder, with its reward statistics (rewardlab.json
    and OpenRLHF's config.json fields). The weights written are ``model_weights``' (gathered under FSDP / DeepSpeed
    ZeRO-3), so every process calls this; a sharded model's forward for the statistics needs every process too."""
    if accelerator.is_main_process or is_sharded(accelerator):
        meta["reward_stats"] = training_reward_stats(accelerator.unwrap_model(rm), tokenizer, records, cfg.max_length,
                                                     cfg.truncation_side, cfg.seed)
    accelerator.wait_for_everyone()
    weights = model_weights(accelerator, rm) if peft_model is None else None  # LoRA (never sharded): merged below
    if accelerator.is_main_process:
        stats = meta["reward_stats"]
        final = peft_model.merge_and_unload() if peft_model is not None else accelerator.unwrap_model(rm).model
        final.config.update({"mean": stats["mean"], "std": stats["std"], "normalize_reward": False})  # OpenRLHF's fields
        ckpt.save_final(Path(cfg.output), final, tokenizer, meta, weights=weights)


def run_metadata(cfg: TrainConfig, setup: LossSetup, pooling: str, data: dict, precision: str, chunks: int, groups: int,
                 sequence: dict, truncation: dict, total_updates: int) -> dict:
    """What ``rewardlab.json`` records about the run; the loop fills in metrics, update, final and train."""
    return {"format": "rewardlab-reward-model", "base_model": cfg.model, "loss": cfg.loss, "loss_args": setup.hp,
            "family": setup.spec.family, "data_form": setup.form, "regularizers": cfg.regularizers, "pooling": pooling,
            "max_length": cfg.max_length, "truncation_side": cfg.truncation_side, "data": data, "mixed_precision": precision,
            "length_chunks": chunks, "backward_groups": groups,
            "lora": {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "merged": True} if cfg.lora_r else None,
            "sequence": sequence, "reward_stats": None, "truncation": truncation, "metrics": {}, "update": 0,
            "total_updates": total_updates, "final": False, "config": to_dict(cfg), "versions": ckpt.versions()}


def start_logging(cfg: TrainConfig, accelerator) -> None:
    """The resolved config beside the output (rewardlab_config.yaml); the experiment tracker, if any."""
    if accelerator.is_main_process:
        save_config(cfg, Path(cfg.output) / CONFIG_FILE)
    if cfg.report_to != "none":  # tensorboard: OUTPUT/rewardlab/; wandb: project rewardlab, the run named after OUTPUT
        accelerator.init_trackers("rewardlab", config=tracker_config(to_dict(cfg)), init_kwargs={"wandb": {"name": Path(cfg.output).name}})


def _numbers(metrics: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float))


# --------------------------------------------------------------------------- the loop


def train(cfg: TrainConfig, records: list | None = None, eval_records: list | None = None, log=print) -> dict:
    """Train a reward model as ``cfg`` says; returns the metadata written to ``rewardlab.json``.

    ``records`` / ``eval_records`` may be passed directly (then ``cfg.data`` is only recorded).
    """
    from tqdm.auto import tqdm

    if cfg.output is None or cfg.model is None:
        raise ValueError("train needs --model and --output")
    setup = loss_setup(cfg)
    prepare_output(cfg)
    precision = resolve_precision(cfg.mixed_precision)
    accelerator = make_accelerator(cfg, precision)
    if cfg.lora_r and is_sharded(accelerator):
        raise ValueError("LoRA under FSDP / DeepSpeed is not supported: the adapters are merged into a model that no process "
                         "holds whole; train LoRA on one process or with DDP (torchrun, or an accelerate config without FSDP)")
    say = log if accelerator.is_main_process else (lambda *a, **k: None)
    records, eval_records, data_summary = load_training_data(cfg, setup.form, records, eval_records)
    resume_from = resume_point(cfg, say)
    rm, peft_model, tokenizer, sequence = build_model(cfg, setup, resume_from)
    step, chunks, groups = choose_step(setup, cfg.length_chunks, cfg.backward_groups, accelerator.device)
    encoded, truncation = encode_training_data(records, tokenizer, rm.append_eos, sequence, cfg, setup, say)
    total_updates = plan_updates(len(encoded), cfg, accelerator.num_processes)
    optimizer, scheduler = make_optimizer(rm, cfg, total_updates)
    rm, optimizer = accelerator.prepare(rm, optimizer)
    pos = resume_state(resume_from, rm, optimizer, scheduler, say)
    meta = run_metadata(cfg, setup, accelerator.unwrap_model(rm).pooling, data_summary, precision, chunks, groups, sequence,
                        truncation, total_updates)
    meta["distributed"] = {"type": accelerator.distributed_type.value, "processes": accelerator.num_processes}  # NO, MULTI_CPU, FSDP, …
    start_logging(cfg, accelerator)

    def evaluate_now() -> dict:
        """Held-out metrics now; also to the tracker as eval_* at the current update."""
        metrics = evaluate(accelerator.unwrap_model(rm), tokenizer, eval_records, cfg, setup)
        if metrics:
            accelerator.log(tracker_scalars(metrics, "eval_"), step=pos.update)
        return metrics

    checkpoint = lambda: save_checkpoint(accelerator, rm, tokenizer, {**meta, "update": pos.update}, optimizer, scheduler, pos, cfg)  # noqa: E731
    backward, stats, history, skipped = make_backward(accelerator, rm), RunningStats(), [], []
    bar = tqdm(total=total_updates, initial=pos.update, desc=f"train {cfg.loss}", dynamic_ncols=True,
               disable=not (cfg.progress and accelerator.is_main_process))
    rm.train()
    t0 = time.perf_counter()
    while pos.update < total_updates:
        for batch in epoch_loader(encoded, setup.form, tokenizer.pad_token_id, cfg, pos, accelerator):
            with accelerator.accumulate(rm):
                out = step(rm, batch, backward)
                if accelerator.sync_gradients:  # the norm is computed anyway for the non-finite check; max_norm inf clips nothing
                    norm = accelerator.clip_grad_norm_(rm.parameters(), cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf)
                    if check_finite(out.loss, norm, pos, cfg, skipped):
                        optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            pos.batch_in_epoch += 1
            stats.add(out, batch)
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            pos.update += 1
            bar.update(1)
            if pos.update % cfg.log_every == 0 or pos.update >= total_updates:
                history.append({"update": pos.update, **stats.flush(scheduler.get_last_lr()[0])})
                bar.set_postfix({k: f"{v:.4g}" for k, v in history[-1].items() if k != "update"})
                accelerator.log(history[-1], step=pos.update)
            if cfg.eval_every and pos.update % cfg.eval_every == 0:
                meta["metrics"] = evaluate_now()
                say(f"update {pos.update}: {_numbers(meta['metrics'])}")
            if cfg.save_every and pos.update % cfg.save_every == 0:
                checkpoint()
            if pos.update >= total_updates:
                break
        else:  # the end of an epoch
            pos.epoch, pos.batch_in_epoch = pos.epoch + 1, 0
            if not cfg.eval_every:
                meta["metrics"] = evaluate_now()
            if not cfg.save_every and pos.update < total_updates:
                checkpoint()
    bar.close()
    elapsed = time.perf_counter() - t0
    if not meta["metrics"] or cfg.eval_every and pos.update % cfg.eval_every:
        meta["metrics"] = evaluate_now()
    meta.update(update=pos.update, final=True, train={"seconds": elapsed, "examples_seen": stats.examples, "history_tail": history[-5:],
                                                     "examples_per_second": stats.examples / elapsed if elapsed else None,
                                                     "skipped_nonfinite": skipped})
    save_final(accelerator, rm, peft_model, tokenizer, records, meta, cfg)
    accelerator.end_training()
    say(f"saved {cfg.output} — {_numbers(meta['metrics'])}")
    return meta
