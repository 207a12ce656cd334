"""Typed configs for every verb. Each field carries its help text; the CLI is generated from them.

A config is loaded from defaults ← ``--config FILE.yaml`` ← explicit flags, validated in
``__post_init__``, and saved beside every output (``rewardlab_config.yaml``) so a run can be repeated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml


def opt(default, help: str, **kw):
    """A dataclass field with help text (shown by ``--help``)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


def parse_kv(items: list[str] | dict | None, what: str) -> dict:
    """['alpha=0.1', 'model=davidson'] → {'alpha': 0.1, 'model': 'davidson'} (values parsed as YAML scalars)."""
    if items is None:
        return {}
    if isinstance(items, dict):
        return dict(items)
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"{what}: expected NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


@dataclass
class TrainConfig:
    data: str = opt(None, "Training data: JSONL/JSON/CSV/Parquet file, dataset folder, or hub id name[:config][@split].")
    model: str = opt(None, "Backbone: local folder or hub id of any sequence-classification or causal LM.")
    output: str = opt(None, "Output folder: final HF checkpoint + rewardlab.json; checkpoints/ for resuming.")
    loss: str = opt("bt", "Loss name from the catalogue (`rewardlab losses list`).")
    loss_args: dict = opt({}, "Loss hyperparameters, NAME=VALUE (repeatable), e.g. --loss-arg alpha=0.1.")
    regularizers: dict = opt({}, "Regularisers added with a coefficient, NAME=COEF (repeatable), e.g. --regularizer center=0.01.")
    eval_data: str = opt(None, "Held-out data; default: a split of --data of size --eval-split.")
    eval_split: float = opt(0.05, "Fraction of --data held out for evaluation when --eval-data is not given (0 = none).")
    form: str = opt(None, "Data form: pairs, rankings, ratings or labels (default: the loss's form).")
    columns: dict = opt({}, "Column remapping OURS=THEIRS (repeatable), e.g. --column prompt=question.")
    on_bad_record: str = opt("error", "What to do with a malformed record: error (stop, naming file/line/field) or skip (count it).")
    limit: int = opt(None, "Use at most this many training records.")
    epochs: float = opt(1.0, "Passes over the training data.")
    max_steps: int = opt(None, "Stop after this many optimizer steps (overrides --epochs).")
    lr: float = opt(2e-5, "Peak learning rate of AdamW.")
    weight_decay: float = opt(0.0, "AdamW weight decay.")
    batch_size: int = opt(8, "Pairs (or prompts / responses, by form) per device per step.")
    grad_accum: int = opt(1, "Gradient accumulation steps.")
    max_grad_norm: float = opt(1.0, "Gradient clipping norm (0 = off).")
    warmup_ratio: float = opt(0.03, "Fraction of steps of linear warmup.")
    scheduler: str = opt("linear", "Learning-rate schedule after warmup: linear, cosine or constant.")
    max_length: int = opt(512, "Tokens per sequence (prompt + response); longer ones are cut and reported.")
    truncation_side: str = opt("left", "Side cut when too long: left keeps the response's end (where the reward is read), right keeps the start.")
    mixed_precision: str = opt("no", "no, bf16 or fp16 (Accelerate autocast).")
    seed: int = opt(42, "Seed: same seed, same data order and initialisation → identical CPU runs.")
    eval_every: int = opt(0, "Evaluate every N optimizer steps (0 = at the end of each epoch only).")
    save_every: int = opt(0, "Save a resumable checkpoint every N optimizer steps (0 = at the end of each epoch).")
    save_total_limit: int = opt(2, "Resumable checkpoints kept.")
    resume: bool = opt(False, "Continue from the last checkpoint in --output.")
    report_to: str = opt("none", "Experiment tracker through Accelerate: none, tensorboard or wandb.")
    trust_remote_code: bool = opt(False, "Allow model code from the hub (off unless asked).")
    progress: bool = opt(True, "Show a progress bar.")

    def __post_init__(self):
        from rewardlab.data.batching import TRUNCATION_SIDES

        self.loss_args = parse_kv(self.loss_args, "--loss-arg")
        self.regularizers = {k: float(v) for k, v in parse_kv(self.regularizers, "--regularizer").items()}
        self.columns = {k: str(v) for k, v in parse_kv(self.columns, "--column").items()}
        checks = [
            (self.scheduler in ("linear", "cosine", "constant"), f"scheduler must be linear, cosine or constant, got {self.scheduler!r}"),
            (self.mixed_precision in ("no", "bf16", "fp16"), f"mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}"),
            (self.report_to in ("none", "tensorboard", "wandb"), f"report_to must be none, tensorboard or wandb, got {self.report_to!r}"),
            (self.on_bad_record in ("error", "skip"), f"on_bad_record must be error or skip, got {self.on_bad_record!r}"),
            (self.truncation_side in TRUNCATION_SIDES, f"truncation_side must be one of {TRUNCATION_SIDES}, got {self.truncation_side!r}"),
            (0 <= self.eval_split < 1, f"eval_split must be in [0, 1), got {self.eval_split}"),
            (self.batch_size >= 1 and self.grad_accum >= 1, "batch_size and grad_accum must be >= 1"),
            (self.lr > 0, f"lr must be positive, got {self.lr}"),
            (self.epochs > 0, f"epochs must be positive, got {self.epochs}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


@dataclass
class EvalConfig:
    model: str = opt(None, "Reward model: rewardlab output folder, any HF sequence-classification folder, or hub id.")
    data: str = opt(None, "Preference data (same forms as train).")
    output: str = opt(None, "Write metrics JSON here (a file path).")
    form: str = opt("pairs", "Data form of --data.")
    columns: dict = opt({}, "Column remapping OURS=THEIRS (repeatable).")
    on_bad_record: str = opt("error", "error or skip.")
    limit: int = opt(None, "Evaluate at most this many records.")
    batch_size: int = opt(16, "Sequences per forward pass.")
    max_length: int = opt(None, "Tokens per sequence (default: the model's training max_length, else 512).")
    truncation_side: str = opt("left", "Side cut when too long.")
    trust_remote_code: bool = opt(False, "Allow model code from the hub.")

    def __post_init__(self):
        self.columns = {k: str(v) for k, v in parse_kv(self.columns, "--column").items()}


@dataclass
class ScoreConfig:
    model: str = opt(None, "Reward model folder or hub id.")
    input: str = opt(None, "JSONL with prompt + response (or chosen/rejected) per line.")
    output: str = opt(None, "JSONL written with a `reward` field added to every record (or reward_chosen / reward_rejected).")
    prompt_field: str = opt("prompt", "Field holding the prompt (may be absent: then the response is scored alone).")
    response_field: str = opt("response", "Field holding the response.")
    batch_size: int = opt(16, "Sequences per forward pass.")
    max_length: int = opt(None, "Tokens per sequence (default: the model's training max_length, else 512).")
    truncation_side: str = opt("left", "Side cut when too long.")
    trust_remote_code: bool = opt(False, "Allow model code from the hub.")


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return path


def load_config(cls, path: str | Path | None = None, **overrides):
    """defaults ← YAML file ← overrides that are not None. Unknown YAML keys are an error naming the valid ones."""
    values = {}
    if path is not None:
        path = Path(path)
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of field: value, got {type(loaded).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(loaded) - names)
        if unknown:
            raise ValueError(f"{path}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**values)


@dataclass
class StudyConfig:
    """A grid of reward-model trainings compared against the built-in task's gold reward (or held-out labels)."""

    output: str = opt(None, "Study folder: results.json, results.csv, report.md, report.html, runs/.")
    losses: list = opt(["bt", "label_smoothing", "plackett_luce", "mse"], "Losses to compare (catalogue names).")
    seeds: list = opt([0, 1], "Seeds; each grid cell is trained once per seed.")


@dataclass
class DemoConfig:
    """The main job: a small study on the built-in task, offline on CPU, in minutes."""

    output: str = opt("runs/demo", "Demo folder (a study folder).")
