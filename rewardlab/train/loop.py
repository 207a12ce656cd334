"""The training loop: build, loop over batches, step, log, evaluate, save.

    records ─► tokenise (truncation reported) ─► length-grouped batches ─► model ─► rewards
            ─► objective (+ regularisers) ─► AdamW (warmup, schedule, clipping, accumulation)
            ─► eval every N steps ─► atomic checkpoints ─► final HF folder + rewardlab.json

Several data sources (``--data`` given more than once, each ``PATH[:form=,loss=,weight=,eval=]``): each is loaded,
split, encoded and evaluated on its own (``Source``), every step takes one batch of each (a ``MixedBatch``) and the
objective is Σ weight × the source's loss; one source runs exactly as before.

``train`` is the loop; the functions above it build what it needs. How a step runs (one forward, length
chunks, backward per group of pairs, packed forwards or not) is chosen once, before the loop (:mod:`rewardlab.train.steps`).
Runs on Accelerate: devices, mixed precision and multi-process (DDP/FSDP/DeepSpeed via ``accelerate
launch``). Same seed → identical runs on CPU, and a killed run resumed with ``resume=True`` ends with the
same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from rewardlab import checkpoint as ckpt
from rewardlab.config import CONFIG_FILE, TrainConfig, save_config, to_dict, tracker_config, tracker_scalars
from rewardlab.data.batching import COLLATORS, Encoder, collate_mixed, encode_records, length_grouped_batches, mixed_batches
from rewardlab.data.formats import load_records, parse_source, source_forms
from rewardlab.data.sequence import describe as describe_sequence
from rewardlab.data.sequence import resolve_append_eos
from rewardlab.eval.evaluate import evaluate_records
from rewardlab.losses.catalogue import LOSSES, get_loss, get_regularizer, resolve_hparams
from rewardlab.losses.objective import Term, weighted_sum
from rewardlab.models.gguf import resolve_gguf
from rewardlab.models.pooled import disable_dropout
from rewardlab.models.reward_model import RewardModel, load_backbone, set_attributes
from rewardlab.models.scoring import score_dataset
from rewardlab.runtime import fsdp_on_cpu, is_sharded, reset_accelerator_state, resolve_precision
from rewardlab.train.steps import LossSetup, StepOutput, choose_step, resolve_packing
from rewardlab.types import MixedBatch, PairBatch, RankBatch

# The data form each loss family trains on, unless the loss names one.
FAMILY_FORM = {"pairwise": "pairs", "listwise": "rankings", "pointwise": "ratings"}


# --------------------------------------------------------------------------- building blocks


def loss_setup(cfg: TrainConfig, loss: str | None = None, form: str | None = None) -> LossSetup:
    """A catalogue loss (default --loss) with its hyperparameters, the run's regularisers and the data form it trains on
    (default --form, else the loss's)."""
    spec = get_loss(loss or cfg.loss)
    regs = [(get_regularizer(name), coef, resolve_hparams(get_regularizer(name), {})) for name, coef in cfg.regularizers.items()]
    form = form or cfg.form or (spec.data_form if spec.data_form != "any" else FAMILY_FORM[spec.family])
    return LossSetup(spec, resolve_hparams(spec, cfg.loss_args_of(spec.name)), regs, form)


@dataclass
class Source:
    """One training source of a run (a --data item, or the records passed to ``train``): how it is read and trained,
    and, once loaded, its records. A run with one source trains as it did before several were possible; with several,
    every step takes one batch of each (``data.batching.mixed_batches``) and minimises Σ weight × the source's loss
    (``losses.objective.mixed_objective``)."""

    name: str  # its key in rewardlab.json (data, truncation, metrics): its form, or FORM_N (N: its --data position) if forms repeat
    data: str | None  # where its records come from (None: passed in)
    eval_data: str | None  # its held-out data (None: an --eval-split of it)
    setup: LossSetup  # its loss, hyperparameters and form, as a run on it alone would have them
    weight: float = 1.0
    records: list = field(default_factory=list)
    eval_records: list = field(default_factory=list)
    encoded: list = field(default_factory=list)


def forms_taken(spec) -> tuple:
    """The data forms a catalogue loss trains on: its own, or ratings and labels for a pointwise loss of form any."""
    return ("ratings", "labels") if spec.data_form == "any" else (spec.data_form,)


def data_sources(cfg: TrainConfig, in_memory: bool = False) -> list[Source]:
    """The run's sources with their forms settled: the item's ``:form=``, else --form, else its loss's form; a loss that
    trains on ratings or labels (bce_mse) takes the one whose fields the source's first record holds (score → ratings,
    label → labels; ratings when it holds neither, as before). With several sources every source's first record is
    read, and data of a form its loss does not take is an error naming the source and the flag. Records passed in
    (``in_memory``) are one source read as --loss and --form say."""
    items = [] if in_memory else list(zip(cfg.data, cfg.sources()))
    if not items:
        setup = loss_setup(cfg)
        return [Source(setup.form, None, None, setup)]
    several, out = len(items) > 1, []
    for i, (item, s) in enumerate(items, start=1):
        spec, form = get_loss(s.loss), s.form
        takes = forms_taken(spec)
        found = source_forms(s.path, cfg.columns) if form is None and (several or len(takes) > 1) else []
        if several and found and not set(found) & set(takes):
            flag = "--loss" if parse_source(item).loss is None else f"--data {item}"
            example = next(name for name, x in LOSSES.items() if x.data_form == found[0])
            raise ValueError(f"--data {item} (source {i} of {len(items)}): its first record holds {' or '.join(found)} data, but "
                             f"its loss {s.loss} ({flag}) trains on {' or '.join(takes)}; give the source a loss of its data "
                             f"(--data {s.path}:loss={example}) or name its form (:form=…)")
        if form is None and len(takes) > 1:
            form = next((f for f in takes if f in found), None)
        out.append(Source(f"s{i}", s.path, s.eval, loss_setup(cfg, s.loss, form), s.weight))
    forms = [x.setup.form for x in out]
    for i, x in enumerate(out, start=1):
        x.name = x.setup.form if forms.count(x.setup.form) == 1 else f"{x.setup.form}_{i}"
    return out


def run_setup(sources: list[Source]) -> LossSetup:
    """What the step minimises: one source's own setup, or for several the mixed objective of their terms (in --data
    order) with the run's regularisers."""
    if len(sources) == 1:
        return sources[0].setup
    return LossSetup(None, {}, sources[0].setup.regs, "mixed",
                     terms=tuple(Term(s.setup.spec, s.setup.hp, s.weight) for s in sources))


def per_source(sources: list[Source], values: list):
    """One source: its value as it is (rewardlab.json as before several sources were possible); several: by name."""
    return values[0] if len(sources) == 1 else {s.name: v for s, v in zip(sources, values)}


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


def load_training_data(cfg: TrainConfig, source: Source, records: list | None = None, eval_records: list | None = None):
    """(train records, eval records, data summary) of one source — bad records and splits reported, nothing silently
    dropped. Records passed in are used as they are (``cfg.data`` is then only recorded)."""
    form = source.setup.form
    if records is not None:
        return records, eval_records or [], {"train": {"source": " ".join(cfg.data) or "in-memory", "n_loaded": len(records)},
                                             "eval": {"n_loaded": len(eval_records or [])}}
    records, report = load_records(source.data, form=form, columns=cfg.columns, on_bad_record=cfg.on_bad_record, limit=cfg.limit)
    summary = {"train": report.summary()}
    if source.eval_data:
        eval_records, eval_report = load_records(source.eval_data, form=form, columns=cfg.columns, on_bad_record=cfg.on_bad_record)
        summary["eval"] = eval_report.summary()
    else:
        records, eval_records = split_records(records, cfg.eval_split, cfg.seed)
        summary["eval"] = {"split_from_train": cfg.eval_split, "n_loaded": len(eval_records)}
    if not records:
        raise ValueError(f"{source.data}: no training records left (loaded {report.n_loaded}, skipped {report.n_skipped})")
    return records, eval_records, summary


def load_sources(cfg: TrainConfig, sources: list[Source], records: list | None = None,
                 eval_records: list | None = None) -> tuple[list, dict]:
    """Every source's records loaded and split (``load_training_data``, each source on its own: --limit and
    --eval-split apply per source). Returns (all training records, data summary: per source when several)."""
    summaries = []
    for s in sources:
        s.records, s.eval_records, summary = load_training_data(cfg, s, records, eval_records)
        summaries.append(summary)
    return [r for s in sources for r in s.records], per_source(sources, summaries)


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
                                     allow_pickle=cfg.allow_pickle, num_labels=len(cfg.attributes) or 1,
                                     attn_implementation=cfg.attn_implementation)
    if cfg.attributes:  # a multi-attribute RM: one output per attribute, their names and reward weights in its config
        set_attributes(model.config, cfg.attributes, cfg.attribute_weights)
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
    """(encoded examples, truncation summary) of one source's records; says how many were cut."""
    encoder = Encoder(tokenizer, cfg.max_length, cfg.truncation_side, append_eos)
    encoded = encode_records(records, encoder, cfg.attributes or None,
                             label_and_score=setup.spec.data_form == "any" and setup.spec.family == "pointwise")
    say(f"train: {len(encoded)} {setup.form} — {encoder.report.message()}")
    return encoded, encoder.report.summary()


def encode_sources(sources: list[Source], tokenizer, append_eos: bool, sequence: dict, cfg: TrainConfig, say=print) -> dict:
    """Every source's records encoded (``encode_training_data``; each keeps its form's batch fields); says how sequences
    end. Returns the truncation summary, per source when several."""
    summaries = []
    for s in sources:
        s.encoded, summary = encode_training_data(s.records, tokenizer, append_eos, sequence, cfg, s.setup, say)
        summaries.append(summary)
    say(f"sequences: append_eos={append_eos} ({sequence['source']}; eos={tokenizer.eos_token!r}, pad={tokenizer.pad_token!r}); "
        f"reward read at: {sequence['read_at']}")
    return per_source(sources, summaries)


def attribute_summary(rm, records: list, say=print) -> dict | None:
    """A multi-attribute RM's attribute names, reward weights and how many training records rate each attribute
    (rewardlab.json ``attributes``); None for a scalar RM. An attribute that no record rates is an error: a misspelt
    name would train its output on nothing."""
    if not rm.attributes:
        return None
    rated = {a: sum(a in (r.scores or {}) for r in records) for a in rm.attributes}
    if missing := [a for a, n in rated.items() if not n]:
        found = sorted({k for r in records for k in (r.scores or {})})
        raise ValueError(f"--attributes {', '.join(missing)}: no training record rates it; the data's `scores` hold "
                         f"{', '.join(found) or 'nothing'}")
    weights = rm.config.attribute_weights  # as given (the model's buffer holds them in its dtype)
    say(f"attributes: {', '.join(f'{a} ({n}/{len(records)} rated)' for a, n in rated.items())}; "
        f"reward = {' + '.join(f'{w:.4g}·{a}' for w, a in zip(weights, rm.attributes))}")
    return {"names": rm.attributes, "weights": weights, "n_rated": rated}


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


def epoch_loader(sources: list[Source], pad_id: int, cfg: TrainConfig, pos: Position, accelerator):
    """This epoch's length-grouped batches (seeded by epoch), sharded across processes, minus those already done.
    Several sources: one batch of each per step, as a ``MixedBatch`` (``mixed_batches``, ``collate_mixed``)."""
    if len(sources) == 1:
        dataset, form = sources[0].encoded, sources[0].setup.form
        batches = length_grouped_batches([e.length for e in dataset], cfg.batch_size, cfg.seed, pos.epoch)
        collate = lambda ex: COLLATORS[form](ex, pad_id)  # noqa: E731
    else:
        dataset = [(k, e) for k, s in enumerate(sources) for e in s.encoded]  # (source, example), sources one after another
        batches = mixed_batches([[e.length for e in s.encoded] for s in sources], cfg.batch_size, cfg.seed, pos.epoch)
        collate = lambda ex: collate_mixed(ex, [s.setup.form for s in sources], pad_id)  # noqa: E731
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate,
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


def records_in(batch) -> int:
    """Records a batch holds: pairs, rankings (not their padding rows) or responses; a mixed batch, its parts' sum."""
    if isinstance(batch, MixedBatch):
        return sum(records_in(p) for p in batch.parts)
    return len(batch.margin if isinstance(batch, PairBatch) else batch.ranks if isinstance(batch, RankBatch) else batch.target)


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
        self.examples += records_in(batch)
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


def evaluate_sources(rm, tokenizer, sources: list[Source], cfg: TrainConfig) -> dict:
    """Held-out metrics. One source: ``evaluate``'s. Several: each source's own metrics (those of its form, its loss's
    ``loss``) under its name, and ``loss`` = Σ weight × the sources' held-out losses (the mixed objective on held-out
    data, ``objective.weighted_sum``) when every source has held-out records."""
    if len(sources) == 1:
        return evaluate(rm, tokenizer, sources[0].eval_records, cfg, sources[0].setup)
    per = {s.name: evaluate(rm, tokenizer, s.eval_records, cfg, s.setup) for s in sources}
    metrics = {name: m for name, m in per.items() if m}
    if len(metrics) == len(sources):
        metrics = {"loss": float(weighted_sum([s.weight for s in sources], [per[s.name]["loss"] for s in sources])), **metrics}
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
                          n: int = 256) -> dict:
    """Mean and std of the trained RM's rewards on (a seeded sample of at most ``n``) training records: saved with
    the model so ``score``/``eval --normalize`` can report (r - mean) / std, as OpenRLHF does. 256 records (512
    sequences of pairs) put the mean within ~0.04 std of the whole set's (standard error); this pass is a forward
    over them after training (measured: 51 of the 269 CPU seconds of a 160-pair MiniLM run at 345-511 tokens)."""
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


def run_metadata(cfg: TrainConfig, sources: list[Source], pooling: str, data: dict, precision: str, chunks: int, groups: int,
                 sequence: dict, truncation: dict, total_updates: int, packing: bool = False) -> dict:
    """What ``rewardlab.json`` records about the run; the loop fills in metrics, update, final and train. ``sources``:
    each source's data, form, loss and weight. With several, ``loss`` names their losses joined by + (bt+mse),
    ``loss_args`` is per loss, ``family`` and ``data_form`` are "mixed", and data, truncation and metrics are per
    source name."""
    setup, single = sources[0].setup, len(sources) == 1
    described = [{"name": s.name, "data": s.data, "eval_data": s.eval_data, "form": s.setup.form, "loss": s.setup.spec.name,
                  "loss_args": s.setup.hp, "family": s.setup.spec.family, "weight": s.weight} for s in sources]
    return {"format": "rewardlab-reward-model", "base_model": cfg.model, "loss": "+".join(dict.fromkeys(d["loss"] for d in described)),
            "loss_args": setup.hp if single else {d["loss"]: d["loss_args"] for d in described},
            "family": setup.spec.family if single else "mixed", "data_form": setup.form if single else "mixed", "sources": described,
            "regularizers": cfg.regularizers, "pooling": pooling,
            "max_length": cfg.max_length, "truncation_side": cfg.truncation_side, "data": data, "mixed_precision": precision,
            "length_chunks": chunks, "backward_groups": groups, "packing": packing,
            "lora": {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "merged": True} if cfg.lora_r else None,
            "sequence": sequence, "reward_stats": None, "truncation": truncation, "metrics": {}, "update": 0,
            "total_updates": total_updates, "final": False, "config": to_dict(cfg), "versions": ckpt.versions()}


def start_logging(cfg: TrainConfig, accelerator) -> None:
    """The resolved config beside the output (rewardlab_config.yaml); the experiment tracker, if any."""
    if accelerator.is_main_process:
        save_config(cfg, Path(cfg.output) / CONFIG_FILE)
    if cfg.report_to != "none":  # tensorboard: OUTPUT/rewardlab/; wandb: project rewardlab, the run named after OUTPUT
        accelerator.init_trackers("rewardlab", config=tracker_config(to_dict(cfg)), init_kwargs={"wandb": {"name": Path(cfg.output).name}})


def _numbers(metrics: dict, names=()) -> str:
    """The float metrics as text; those of the sources ``names`` (a run with several) as NAME/metric."""
    flat = {**metrics, **{f"{n}/{k}": v for n in names for k, v in metrics.get(n, {}).items()}}
    return ", ".join(f"{k}={v:.4g}" for k, v in flat.items() if isinstance(v, float))


# --------------------------------------------------------------------------- the loop


def train(cfg: TrainConfig, records: list | None = None, eval_records: list | None = None, log=print) -> dict:
    """Train a reward model as ``cfg`` says; returns the metadata written to ``rewardlab.json``.

    ``records`` / ``eval_records`` may be passed directly (then ``cfg.data`` is only recorded).
    """
    from tqdm.auto import tqdm

    if cfg.output is None or cfg.model is None:
        raise ValueError("train needs --model and --output")
    sources = data_sources(cfg, in_memory=records is not None)  # one, or several (--data given more than once)
    setup = run_setup(sources)
    prepare_output(cfg)
    precision = resolve_precision(cfg.mixed_precision)
    accelerator = make_accelerator(cfg, precision)
    if cfg.lora_r and is_sharded(accelerator):
        raise ValueError("LoRA under FSDP / DeepSpeed is not supported: the adapters are merged into a model that no process "
                         "holds whole; train LoRA on one process or with DDP (torchrun, or an accelerate config without FSDP)")
    say = log if accelerator.is_main_process else (lambda *a, **k: None)
    records, data_summary = load_sources(cfg, sources, records, eval_records)
    resume_from = resume_point(cfg, say)
    rm, peft_model, tokenizer, sequence = build_model(cfg, setup, resume_from)
    attributes = attribute_summary(rm, records, say)
    packing = resolve_packing(cfg.packing, accelerator.device, rm)
    step, chunks, groups = choose_step(setup, cfg.length_chunks, cfg.backward_groups, accelerator.device, packing,
                                       accelerator.num_processes)
    truncation = encode_sources(sources, tokenizer, rm.append_eos, sequence, cfg, say)
    total_updates = plan_updates(max(len(s.encoded) for s in sources), cfg, accelerator.num_processes)  # the largest source's pass
    optimizer, scheduler = make_optimizer(rm, cfg, total_updates)
    rm, optimizer = accelerator.prepare(rm, optimizer)
    pos = resume_state(resume_from, rm, optimizer, scheduler, say)
    meta = run_metadata(cfg, sources, accelerator.unwrap_model(rm).pooling, data_summary, precision, chunks, groups, sequence,
                        truncation, total_updates, packing)
    meta["distributed"] = {"type": accelerator.distributed_type.value, "processes": accelerator.num_processes}  # NO, MULTI_CPU, FSDP, …
    meta["backward_group_cells"] = step.keywords.get("group_cells", 0)  # > 0: batches of long rows went backward in more groups
    meta["attributes"] = attributes  # a multi-attribute RM's names, reward weights and how many records rate each
    start_logging(cfg, accelerator)

    def evaluate_now() -> dict:
        """Held-out metrics now; also to the tracker as eval_* at the current update."""
        metrics = evaluate_sources(accelerator.unwrap_model(rm), tokenizer, sources, cfg)
        if metrics:
            accelerator.log(tracker_scalars(metrics, "eval_"), step=pos.update)
        return metrics

    checkpoint = lambda: save_checkpoint(accelerator, rm, tokenizer, {**meta, "update": pos.update}, optimizer, scheduler, pos, cfg)  # noqa: E731
    backward, stats, history, skipped = make_backward(accelerator, rm), RunningStats(), [], []
    names = [s.name for s in sources] if len(sources) > 1 else []  # the per-source metrics a log line shows
    bar = tqdm(total=total_updates, initial=pos.update, desc=f"train {meta['loss']}", dynamic_ncols=True,
               disable=not (cfg.progress and accelerator.is_main_process))
    rm.train()
    t0 = time.perf_counter()
    while pos.update < total_updates:
        for batch in epoch_loader(sources, tokenizer.pad_token_id, cfg, pos, accelerator):
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
                say(f"update {pos.update}: {_numbers(meta['metrics'], names)}")
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
    say(f"saved {cfg.output} — {_numbers(meta['metrics'], names)}")
    return meta
