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
    gguf_file: str = opt(None, "GGUF file inside --model (a folder or hub repo) to load the backbone from, dequantised (needs the "
                               "gguf package). Same as --model FOLDER/NAME.gguf.")
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
    append_eos: bool = opt(None, "Append the tokenizer's EOS to every plain-text sequence that lacks it, as TRL and OpenRLHF do "
                                 "(default: yes for decoders, no for encoders; chat data ends as its template ends it). "
                                 "Recorded in rewardlab.json; eval and score follow it.")
    mixed_precision: str = opt("auto", "auto, no, bf16 or fp16 (Accelerate autocast). auto: bf16 where the hardware runs it fast "
                               "(CUDA with bf16, CPUs with AVX-512 BF16 or AMX), else no.")
    lora_r: int = opt(0, "LoRA rank (0 = full fine-tuning). The score head is trained in full; the final folder has the adapters merged.")
    lora_alpha: float = opt(16.0, "LoRA scaling α.")
    lora_dropout: float = opt(0.0, "LoRA dropout.")
    lora_target_modules: str = opt("all-linear", "Modules given LoRA adapters: all-linear, or comma-separated names (q_proj,v_proj).")
    length_chunks: int = opt(0, "Forward each batch as this many length-sorted chunks, each padded to its own longest row "
                                "(chosen and rejected stop paying for each other's length); 1 = one forward; 0 = auto "
                                "(4 on a CPU, 1 on a GPU, as measured in bench/).")
    backward_groups: int = opt(0, "Pair losses: run the backward pass per this many groups of pairs of a batch. Same gradient, "
                                  "activations of one group alive at a time (less memory). 0 = auto (2 on a CPU when the loss "
                                  "and regularisers split over pairs, else 1).")
    log_every: int = opt(10, "Log loss and train accuracy every N optimizer steps (a log waits for the device to catch up).")
    disable_dropout: bool = opt(True, "Set every dropout probability of the backbone to 0 for training, as TRL's RewardTrainer does "
                                      "by default (rewards then do not depend on a random mask; --no-disable-dropout keeps them).")
    gradient_checkpointing: bool = opt(False, "Recompute activations in the backward pass: less memory, ~30% more compute.")
    compile: bool = opt(False, "torch.compile the backbone (slow first steps; pays off on long runs).")
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
            (self.mixed_precision in ("auto", "no", "bf16", "fp16"), f"mixed_precision must be auto, no, bf16 or fp16, got {self.mixed_precision!r}"),
            (self.lora_r >= 0, f"lora_r must be >= 0, got {self.lora_r}"),
            (not (self.lora_r and self.resume), "--resume with LoRA is not supported yet: restart the run, or train without LoRA"),
            (self.report_to in ("none", "tensorboard", "wandb"), f"report_to must be none, tensorboard or wandb, got {self.report_to!r}"),
            (self.on_bad_record in ("error", "skip"), f"on_bad_record must be error or skip, got {self.on_bad_record!r}"),
            (self.truncation_side in TRUNCATION_SIDES, f"truncation_side must be one of {TRUNCATION_SIDES}, got {self.truncation_side!r}"),
            (0 <= self.eval_split < 1, f"eval_split must be in [0, 1), got {self.eval_split}"),
            (self.batch_size >= 1 and self.grad_accum >= 1, "batch_size and grad_accum must be >= 1"),
            (self.length_chunks >= 0, f"length_chunks must be >= 0 (0 = auto), got {self.length_chunks}"),
            (self.backward_groups >= 0, f"backward_groups must be >= 0 (0 = auto), got {self.backward_groups}"),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
            (self.lr > 0, f"lr must be positive, got {self.lr}"),
            (self.epochs > 0, f"epochs must be positive, got {self.epochs}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


@dataclass
class EvalConfig:
    """``rewardlab eval``: metrics of one or more reward models on preference data (docs/eval.md)."""

    model: str = opt(None, "Reward model: rewardlab output folder, any HF sequence-classification folder, or hub id "
                           "(a causal LM with --implicit).")
    compare: list = opt([], "More models scored on the same data, side by side with paired differences: "
                            "--compare B,C (with --model A) or --compare A,B.")
    data: str = opt(None, "Preference data (same sources as train); RewardBench v1/v2 layouts are detected from the columns.")
    output: str = opt(None, "A path ending in .json: write the metrics there. Any other path: a folder with results.json, "
                            "examples.jsonl (rewards per example), report.html + PNG plots and the resolved config.")
    form: str = opt(None, "Data form: pairs, rankings, ratings or labels (default pairs; rankings for RewardBench 2).")
    layout: str = opt("auto", "auto (detect from the first row), plain, rewardbench (v1: subset column → section scores) "
                              "or rewardbench2 (lists of chosen / rejected → RB2 accuracy).")
    columns: dict = opt({}, "Column remapping OURS=THEIRS (repeatable).")
    subset_column: str = opt("subset", "Column naming each example's subset: accuracy per subset, RewardBench sections.")
    annotator_column: str = opt(None, "Column with a list of annotator labels per pair (1 = chosen preferred, 0 = rejected, "
                                      "null = none): agreement of the RM with annotators and of annotators with each other.")
    on_bad_record: str = opt("error", "What to do with a malformed record: error (stop, naming file/line/field) or skip (count it).")
    limit: int = opt(None, "Evaluate at most this many records.")
    batch_size: int = opt(16, "Sequences per forward pass (rewards do not depend on it).")
    max_length: int = opt(None, "Tokens per sequence (default: the model's training max_length, else 512); cuts are counted.")
    truncation_side: str = opt("left", "Side cut when too long: left keeps the response's end, right keeps the start.")
    padding_side: str = opt("right", "Pad batches on the right or left (decoders give the same rewards either way).")
    append_eos: bool = opt(None, "Append the EOS token to every plain-text sequence that lacks it. Default: what the model "
                                 "was trained with (its rewardlab.json); for other checkpoints (TRL, OpenRLHF, any HF "
                                 "classifier) the ecosystem's convention: yes for decoders, no for encoders.")
    normalize: bool = opt(False, "Report rewards as (r - mean) / std with the training-reward statistics saved with the model.")
    compile: bool = opt(False, "torch.compile the model (dynamic shapes), after a one-off compile of tens of seconds; "
                               "on the CPU bench no faster than the default since the pooled last layer (bench/results).")
    shared_prompt: bool = opt(False, "Decoders: encode each prompt once and append its responses through the KV cache "
                                     "(same rewards; pays only when prompts are long and responses short and even).")
    dtype: str = opt("float32", "Weights dtype: float32, bfloat16 or float16.")
    device: str = opt("auto", "auto (cuda if available, else cpu), cpu, cuda or cuda:N.")
    implicit: str = opt(None, "Score a causal LM by its implicit reward: dpo (β·(log π − log π_ref), needs --ref-model) "
                              "or avg_logprob (mean log-probability of the response, no reference).")
    ref_model: str = opt(None, "Reference model of --implicit dpo (the model the policy was trained from).")
    beta: float = opt(0.1, "β of --implicit dpo (the β the policy was trained with; DPO's default 0.1).")
    bootstrap: int = opt(1000, "Bootstrap resamples for 95% intervals and paired differences (0: no intervals).")
    calibration_split: float = opt(0.5, "Fraction of pairs on which the temperature (and a label threshold) is fitted; "
                                        "calibration after scaling is reported on the rest.")
    strength_bins: int = opt(None, "Quantile buckets for accuracy by preference strength (default: one per value "
                                   "when there are <= 10 values, else 4).")
    threshold: float = opt(None, "Labels form: reward threshold for good vs bad (default: fitted on --calibration-split).")
    seed: int = opt(0, "Seed of the bootstrap and of the fit/report split.")
    report: bool = opt(True, "With a folder --output: write report.html and its PNG plots.")
    progress: bool = opt(True, "Show a progress bar.")
    trust_remote_code: bool = opt(False, "Allow model code from the hub.")

    def __post_init__(self):
        from rewardlab.data.batching import TRUNCATION_SIDES

        self.columns = {k: str(v) for k, v in parse_kv(self.columns, "--column").items()}
        self.compare = [str(m) for m in (self.compare or [])]
        checks = [
            (self.form in (None, "pairs", "rankings", "ratings", "labels"),
             f"form must be pairs, rankings, ratings or labels, got {self.form!r}"),
            (self.layout in ("auto", "plain", "rewardbench", "rewardbench2"),
             f"layout must be auto, plain, rewardbench or rewardbench2, got {self.layout!r}"),
            (self.on_bad_record in ("error", "skip"), f"on_bad_record must be error or skip, got {self.on_bad_record!r}"),
            (self.truncation_side in TRUNCATION_SIDES, f"truncation_side must be one of {TRUNCATION_SIDES}, got {self.truncation_side!r}"),
            (self.padding_side in ("right", "left"), f"padding_side must be right or left, got {self.padding_side!r}"),
            (self.dtype in ("float32", "bfloat16", "float16"), f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}"),
            (self.implicit in (None, "dpo", "avg_logprob"), f"implicit must be dpo or avg_logprob, got {self.implicit!r}"),
            (self.implicit == "dpo" or not self.ref_model, "--ref-model is used by --implicit dpo only"),
            (self.implicit != "dpo" or bool(self.ref_model), "--implicit dpo needs --ref-model"),
            (self.beta > 0, f"beta must be > 0, got {self.beta}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.max_length is None or self.max_length >= 4, f"max_length must be >= 4, got {self.max_length}"),
            (self.bootstrap >= 0, f"bootstrap must be >= 0, got {self.bootstrap}"),
            (0 < self.calibration_split < 1, f"calibration_split must be in (0, 1), got {self.calibration_split}"),
            (self.strength_bins is None or self.strength_bins >= 1, f"strength_bins must be >= 1, got {self.strength_bins}"),
            (self.limit is None or self.limit >= 1, f"limit must be >= 1, got {self.limit}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


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
    append_eos: bool = opt(None, "Append the EOS token to every plain-text sequence that lacks it. Default: what the model "
                                 "was trained with (its rewardlab.json); for other checkpoints the ecosystem's convention "
                                 "(yes for decoders, no for encoders).")
    normalize: bool = opt(False, "Write (r - mean) / std with the training-reward statistics saved with the model.")
    compile: bool = opt(False, "torch.compile the model (dynamic shapes), after a one-off compile of tens of seconds; "
                               "on the CPU bench no faster than the default since the pooled last layer (bench/results/README.md).")
    progress: bool = opt(True, "Show a progress bar.")
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
    """A grid of reward-model trainings compared against the built-in task's gold reward (or held-out labels).

    Grid: losses × flip_rates × length_biases × train_sizes × seeds; every cell is one run. See
    docs/study.md for the budget rule, the noise model and the metrics.
    """

    output: str = opt(None, "Study folder: results.json, results.csv, summary.csv, report.md, report.html, runs/, features/.")
    data: str = opt(None, "Your own preference data (file, folder or hub id, as `train --data`); default: the built-in gold task. "
                          "Gold metrics and best-of-N are then skipped and held-out human labels are used.")
    data_form: str = opt("pairs", "Form of --data: pairs or rankings.")
    columns: dict = opt({}, "Column remapping of --data, OURS=THEIRS (repeatable).")
    test_fraction: float = opt(0.2, "Share of --data held out as the test set (split once, seeded by --test-seed).")
    losses: list = opt(["bt", "label_smoothing", "robust", "plackett_luce", "mse", "bce"], "Losses to compare (catalogue names).")
    loss_args: dict = opt({}, "Loss hyperparameters LOSS.NAME=VALUE (repeatable), e.g. --loss-arg robust.flip_rate=noise; "
                              "the value `noise` stands for the cell's flip rate.")
    baseline: str = opt("bt", "Loss that paired differences are taken against (`none`: no differences).")
    flip_rates: list = opt([0.0, 0.3], "Label flip rates ε in [0, 0.5) (share of implied comparisons flipped, every data form).")
    length_biases: list = opt([0.0], "Labeler length biases λ >= 0 (λ = 1: 10 extra words are worth one gold std). Built-in task only.")
    train_sizes: list = opt([2000], "Training-set sizes in labelled responses (pairs: n/2, rankings: n/K, ratings and labels: n); "
                                    "0 = all of --data.")
    seeds: list = opt([0, 1], "Seeds; each grid cell is trained once per seed (seed = training texts, labels and initialisation).")
    ranking_k: int = opt(4, "Responses per prompt in the training pool: the size K of rankings (even, >= 2).")
    margin: str = opt("bucket", "Pair margins from the gold gap: bucket (Llama 2's 0, 1/3, 2/3, 1), gap (|Δg|) or none.")
    test_prompts: int = opt(40, "Held-out prompts of the built-in task.")
    candidates: int = opt(64, "Responses per held-out prompt: best-of-N for N = 1, 2, 4, … up to this; consecutive ones form test pairs.")
    test_seed: int = opt(10000, "Seed of the test set (held-out prompts; the --data split); must differ from --seeds.")
    mode: str = opt("head", "head (frozen backbone features + trained head), full (fine-tune everything) or lora (peft LoRA + head).")
    backbone: str = opt("minilm", "minilm (packaged all-MiniLM-L6-v2), tiny (random tiny Llama built on the fly), or a folder / hub id.")
    pooling: str = opt("mean", "Head mode: pooling of the backbone's hidden states: mean, cls or last.")
    normalize: bool = opt(None, "Head mode: L2-normalise pooled features (default: on for minilm, off otherwise).")
    max_length: int = opt(128, "Tokens per (prompt, response) text; longer ones lose their start.")
    feature_batch_size: int = opt(64, "Head mode: texts per forward pass of the frozen backbone.")
    head: str = opt("linear", "Head mode: linear or mlp reward head on the standardised features.")
    head_hidden: int = opt(128, "Head mode: hidden width of the mlp head.")
    head_epochs: int = opt(30, "Head mode: passes over the training examples.")
    head_lr: float = opt(3e-3, "Head mode: AdamW learning rate.")
    head_weight_decay: float = opt(1e-2, "Head mode: AdamW weight decay.")
    head_batch_size: int = opt(64, "Head mode: examples (pairs, rankings or responses) per step.")
    epochs: float = opt(1.0, "Full / LoRA mode: passes over the training data.")
    lr: float = opt(1e-4, "Full / LoRA mode: learning rate.")
    batch_size: int = opt(16, "Full / LoRA mode: examples per step.")
    lora_r: int = opt(8, "LoRA mode: adapter rank r.")
    lora_alpha: int = opt(16, "LoRA mode: adapter scale alpha (updates scaled by alpha / r).")
    keep_models: bool = opt(False, "Full / LoRA mode: keep each run's trained model folder (default: delete after scoring).")
    workers: int = opt(None, "Parallel worker processes for the runs (default: min(2, CPU count)).")
    executor: str = opt("local", "local (worker processes on this machine) or ray (tasks on a Ray cluster; see docs/study.md).")
    ray_address: str = opt(None, "Ray mode: cluster address (default: ray.init's own choice, e.g. RAY_ADDRESS or a local cluster).")
    shard: str = opt(None, "Run only shard I of N (I/N, 0-based) of the runs, e.g. on N machines sharing the study folder.")
    progress: bool = opt(True, "Show progress bars.")

    def __post_init__(self):
        from rewardlab.losses.catalogue import get_loss, resolve_hparams

        def as_list(value, cast, name):
            items = value if isinstance(value, (list, tuple)) else [value]
            try:
                return [cast(v) for v in items]
            except (TypeError, ValueError):
                raise ValueError(f"{name}: cannot read {items!r} as {cast.__name__} values") from None

        self.losses = as_list(self.losses, str, "losses")
        self.flip_rates = as_list(self.flip_rates, float, "flip_rates")
        self.length_biases = as_list(self.length_biases, float, "length_biases")
        self.train_sizes = as_list(self.train_sizes, int, "train_sizes")
        self.seeds = as_list(self.seeds, int, "seeds")
        self.columns = {k: str(v) for k, v in parse_kv(self.columns, "--column").items()}
        self.loss_args = self.nest_loss_args(self.loss_args)
        specs = {name: get_loss(name) for name in self.losses}  # unknown names raise, listing the known ones
        for name, hp in self.loss_args.items():
            if name not in specs:
                raise ValueError(f"loss_args names {name!r}, which is not among the losses {self.losses}")
            resolve_hparams(specs[name], {k: 0.0 if v == "noise" else v for k, v in hp.items()})
        unsupported = [n for n, s in specs.items() if s.data_form == "any"]
        checks = [
            (bool(self.losses) and len(set(self.losses)) == len(self.losses), f"losses must be distinct and non-empty, got {self.losses}"),
            (not unsupported, f"the study cannot train {unsupported}: a loss on data form 'any' needs combined targets"),
            (self.baseline == "none" or self.baseline in self.losses,
             f"baseline {self.baseline!r} is not among the losses {self.losses}; add it or pass --baseline none"),
            (bool(self.flip_rates) and all(0.0 <= e < 0.5 for e in self.flip_rates), f"flip_rates must lie in [0, 0.5), got {self.flip_rates}"),
            (bool(self.length_biases) and all(x >= 0 for x in self.length_biases), f"length_biases must be >= 0, got {self.length_biases}"),
            (bool(self.seeds) and len(set(self.seeds)) == len(self.seeds), f"seeds must be distinct and non-empty, got {self.seeds}"),
            (self.test_seed not in self.seeds, f"test_seed {self.test_seed} must differ from the training seeds {self.seeds}"),
            (self.ranking_k >= 2 and self.ranking_k % 2 == 0, f"ranking_k must be even and >= 2, got {self.ranking_k}"),
            (self.margin in ("bucket", "gap", "none"), f"margin must be bucket, gap or none, got {self.margin!r}"),
            (self.test_prompts >= 1 and self.candidates >= 2 and self.candidates % 2 == 0,
             f"need test_prompts >= 1 and an even candidates >= 2, got {self.test_prompts}, {self.candidates}"),
            (self.mode in ("head", "full", "lora"), f"mode must be head, full or lora, got {self.mode!r}"),
            (bool(self.backbone), "backbone must be minilm, tiny, a folder or a hub id"),
            (self.pooling in ("mean", "cls", "last"), f"pooling must be mean, cls or last, got {self.pooling!r}"),
            (self.head in ("linear", "mlp"), f"head must be linear or mlp, got {self.head!r}"),
            (min(self.head_hidden, self.head_epochs, self.head_batch_size, self.batch_size, self.feature_batch_size, self.lora_r) >= 1,
             "head_hidden, head_epochs, head_batch_size, batch_size, feature_batch_size and lora_r must be >= 1"),
            (self.head_lr > 0 and self.lr > 0 and self.epochs > 0 and self.head_weight_decay >= 0,
             "learning rates and epochs must be positive, weight decay >= 0"),
            (self.max_length >= 8, f"max_length must be >= 8, got {self.max_length}"),
            (self.workers is None or self.workers >= 1, f"workers must be >= 1, got {self.workers}"),
            (self.executor in ("local", "ray"), f"executor must be local or ray, got {self.executor!r}"),
            (0.0 < self.test_fraction < 1.0, f"test_fraction must lie in (0, 1), got {self.test_fraction}"),
            (self.data_form in ("pairs", "rankings"), f"data_form must be pairs or rankings, got {self.data_form!r}"),
        ]
        if self.data is None:
            checks.append((all(n >= self.ranking_k and n % self.ranking_k == 0 for n in self.train_sizes),
                           f"train_sizes must be positive multiples of ranking_k={self.ranking_k} on the built-in task, got {self.train_sizes}"))
        else:
            forms = {s.data_form for s in specs.values()}
            allowed = {"pairs"} if self.data_form == "pairs" else {"pairs", "rankings"}
            checks += [(self.length_biases == [0.0], "length_biases apply to the built-in task only (no gold to bias): leave them at 0"),
                       (forms <= allowed, f"--data of form {self.data_form} can train losses on {sorted(allowed)}, "
                                          f"not {sorted(forms - allowed)}"),
                       (all(n >= 0 for n in self.train_sizes), f"train_sizes must be >= 0, got {self.train_sizes}")]
        if self.shard is not None:
            parts = str(self.shard).split("/")
            ok = len(parts) == 2 and all(p.strip().isdigit() for p in parts) and 0 <= int(parts[0]) < int(parts[1])
            checks.append((ok, f"shard must be I/N with 0 <= I < N, got {self.shard!r}"))
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)

    @staticmethod
    def nest_loss_args(value) -> dict:
        """{"robust.flip_rate": "noise"} or {"robust": {"flip_rate": "noise"}} (or CLI items) → nested dict."""
        flat = parse_kv(value, "--loss-arg") if not isinstance(value, dict) else dict(value)
        out: dict = {}
        for key, v in flat.items():
            if isinstance(v, dict):
                out.setdefault(str(key), {}).update(v)
            elif "." in str(key):
                loss, name = str(key).split(".", 1)
                out.setdefault(loss, {})[name] = v
            else:
                raise ValueError(f"loss_args: expected LOSS.NAME=VALUE or a mapping per loss, got {key!r}")
        return out


@dataclass
class DemoConfig:
    """The main job: a small study on the built-in task, offline on CPU, in minutes."""

    output: str = opt("runs/demo", "Demo folder (a study folder).")
    backbone: str = opt("minilm", "minilm (pretrained all-MiniLM-L6-v2, head-only), tiny (random tiny model, faster, weaker), or a folder / hub id.")
    losses: list = opt(["bt", "label_smoothing", "robust", "plackett_luce", "mse", "bce"],
                       "Losses to compare: pairwise (bt, label_smoothing, robust), listwise (plackett_luce), pointwise (mse, bce).")
    loss_args: dict = opt({"robust.flip_rate": "noise"}, "Loss hyperparameters LOSS.NAME=VALUE; `noise` = the cell's flip rate.")
    flip_rates: list = opt([0.0, 0.3], "Label flip rates ε.")
    seeds: list = opt([0, 1, 2], "Seeds.")
    train_size: int = opt(1000, "Labelled responses per run (500 pairs / 250 rankings of 4 / 1000 ratings or labels).")
    test_prompts: int = opt(24, "Held-out prompts × 64 candidates (best-of-N; 768 test pairs).")
    workers: int = opt(None, "Parallel worker processes (default: min(2, CPU count)).")
    progress: bool = opt(True, "Show progress bars.")

    def __post_init__(self):
        if self.train_size < 4 or self.test_prompts < 1:
            raise ValueError(f"need train_size >= 4 and test_prompts >= 1, got {self.train_size}, {self.test_prompts}")
        self.loss_args = StudyConfig.nest_loss_args(self.loss_args)

    def to_study(self) -> StudyConfig:
        """The StudyConfig this demo runs (head mode on the built-in task)."""
        return StudyConfig(output=self.output, losses=list(self.losses), loss_args=self.loss_args, flip_rates=list(self.flip_rates),
                           seeds=list(self.seeds), train_sizes=[self.train_size], test_prompts=self.test_prompts, mode="head",
                           backbone=self.backbone, workers=self.workers, progress=self.progress)
