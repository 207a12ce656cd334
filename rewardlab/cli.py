"""rewardlab's command line: a plain map from verb to function. Nothing imports this module.

Options of train/eval/score are generated from the typed configs in ``rewardlab.config`` (one help
text per field, one source of truth); every verb also reads ``--config FILE.yaml``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
import yaml

from rewardlab import config as C
from rewardlab.optimize.cli import app as optimize_app

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="rewardlab: train, analyse, evaluate and use reward models for LLMs.")
losses_app = typer.Typer(no_args_is_help=True, help="The loss catalogue and its analysis.")
app.add_typer(losses_app, name="losses")
app.add_typer(optimize_app, name="optimize", help="Improve a policy with a reward: best-of-N, RWR, RAFT, REINFORCE, RLOO, PPO/GRPO; over-optimisation curves.")

_TYPES = {"str": Optional[str], "int": Optional[int], "float": Optional[float], "bool": Optional[bool], "dict": Optional[List[str]],
          "list": Optional[List[str]]}


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or {"loss_args": "--loss-arg", "regularizers": "--regularizer", "columns": "--column"}.get(
        f.name, "--" + f.name.replace("_", "-"))


def config_command(cls, name: str, help: str):
    """Register ``fn(cfg)`` as verb ``name`` with one option per field of ``cls`` plus ``--config``."""

    def register(fn):
        params = [inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                                    default=typer.Option(None, "--config", help="YAML file of field: value (flags override it)."))]
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            shown = "" if default in (None, {}, []) else f" [default: {default}]"
            opt_decls = [_flag(f)] if f.type != "bool" else [f"{_flag(f)}/--no-{_flag(f)[2:]}"]
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=_TYPES[f.type],
                                            default=typer.Option(None, *opt_decls, help=f.metadata["help"] + shown, show_default=False)))

        def command(**kwargs):
            path = kwargs.pop("config")
            for f in dataclasses.fields(cls):  # list options: repeat the flag or separate by commas; items parsed as YAML scalars
                if f.type == "list" and kwargs.get(f.name):
                    kwargs[f.name] = [yaml.safe_load(x) for item in kwargs[f.name] for x in str(item).split(",") if x.strip()]
            try:
                cfg = C.load_config(cls, path, **{k: v for k, v in kwargs.items() if v not in (None, [])})
            except (ValueError, TypeError) as e:
                raise typer.BadParameter(str(e))
            return fn(cfg)

        command.__signature__ = inspect.Signature(params)
        command.__doc__ = help
        app.command(name, help=help)(command)
        return fn

    return register


def _fail(msg: str) -> None:
    msg = msg.replace("pass on_bad_record='skip'", "pass --on-bad-record skip")  # the API's words → the flag
    typer.secho(f"error: {msg}", fg="red", err=True)
    raise typer.Exit(2)


@config_command(C.TrainConfig, "train", "Train a reward model; writes a Hugging Face checkpoint plus rewardlab.json to --output.")
def train_cmd(cfg: C.TrainConfig):
    from rewardlab.data.formats import DataError
    from rewardlab.train.loop import train

    if not cfg.data or not cfg.model or not cfg.output:
        _fail("train needs --data, --model and --output (or a --config that sets them)")
    try:
        meta = train(cfg, log=lambda m: typer.echo(m, err=True))
    except (DataError, ValueError, FileNotFoundError) as e:
        _fail(str(e))
    if int(os.environ.get("RANK", "0")) == 0:  # one summary line, also under torchrun / accelerate launch
        typer.echo(json.dumps({"output": cfg.output, **meta["metrics"]}, default=str))


@config_command(C.EvalConfig, "eval", "Metrics of a reward model on preference data; prints a JSON object with `accuracy`.")
def eval_cmd(cfg: C.EvalConfig):
    from rewardlab.data.formats import DataError
    from rewardlab.eval.run import run_eval

    try:
        result = run_eval(cfg)
    except (DataError, ValueError, FileNotFoundError, OSError) as e:
        _fail(str(e))
    typer.echo(json.dumps(result, default=str))


@config_command(C.ScoreConfig, "score", "Add a `reward` field to every record of a JSONL file.")
def score_cmd(cfg: C.ScoreConfig):
    from rewardlab.data.formats import DataError
    from rewardlab.models.scoring import score_texts
    from rewardlab.models.reward_model import check_reward_stats, load_reward_model, normalize_rewards
    from rewardlab.score import read_jsonl_for_scoring, write_jsonl

    if not cfg.model or not cfg.input or not cfg.output:
        _fail("score needs --model, --input and --output")
    try:
        rows, prompts, responses, slots = read_jsonl_for_scoring(cfg.input, cfg.prompt_field, cfg.response_field)
        model, tokenizer, meta = load_reward_model(cfg.model, trust_remote_code=cfg.trust_remote_code, append_eos=cfg.append_eos)
        if cfg.normalize:
            check_reward_stats(meta["reward_stats"], cfg.model)  # refused before any scoring
    except (DataError, ValueError, FileNotFoundError, OSError) as e:
        _fail(str(e))
    sequence = meta["sequence"]
    typer.echo(f"score: append_eos={sequence['append_eos']} ({sequence['source']})", err=True)
    max_length = cfg.max_length or meta.get("max_length", 512)
    if cfg.compile:
        from rewardlab.models.scoring import compile_scorer

        model = compile_scorer(model)
    rewards, truncation = score_texts(model, tokenizer, prompts, responses, cfg.batch_size, max_length, cfg.truncation_side,
                                      progress=cfg.progress)
    if cfg.normalize:
        rewards = normalize_rewards(rewards, meta["reward_stats"], cfg.model)
    for (row, key), r in zip(slots, rewards):
        rows[row][key] = float(r)
    write_jsonl(cfg.output, rows)
    C.save_config(cfg, Path(cfg.output).with_suffix(".config.yaml"))
    typer.echo(json.dumps({"output": cfg.output, "records": len(rows), "scored": len(rewards), "truncation": truncation,
                           "append_eos": sequence["append_eos"], "normalized": bool(cfg.normalize),
                           "reward_stats": meta["reward_stats"] if cfg.normalize else None}))


@config_command(C.StudyConfig, "study", "Train many reward models (losses × noise × length bias × data size × seeds) and compare them; writes a report.")
def study_cmd(cfg: C.StudyConfig):
    from rewardlab.analysis.study import StudyError, run_study
    from rewardlab.data.formats import DataError

    try:
        run_study(cfg)
    except (DataError, StudyError, ValueError, FileNotFoundError) as e:
        _fail(str(e))


@config_command(C.DemoConfig, "demo", "The main job on the built-in task, offline on CPU: a small loss study with its report.")
def demo_cmd(cfg: C.DemoConfig):
    from rewardlab.analysis.study import StudyError, run_demo

    try:
        run_demo(cfg)
    except (StudyError, ValueError, FileNotFoundError) as e:
        _fail(str(e))


@losses_app.command("list")
def losses_list(family: Optional[str] = typer.Option(None, help="Only this family: pairwise, listwise, pointwise, regularizer."),
                as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
    """Table of every loss and regulariser: name, family, data form, hyperparameters, paper."""
    from rewardlab.analysis.curves import loss_table

    rows = [r for r in loss_table() if family is None or r["family"] == family]
    if as_json:
        typer.echo(json.dumps(rows, default=str, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "family", "data form", "hyperparameters", "paper", show_lines=False)
    for r in rows:
        hp = r.get("hyperparameters") or r.get("defaults") or {}
        table.add_row(r["name"], r["family"], r["data_form"], ", ".join(f"{k}={v}" for k, v in hp.items()), r["paper"])
    Console(width=200).print(table)


@losses_app.command("show")
def losses_show(name: str = typer.Argument(..., help="Loss or regulariser name.")):
    """Formula, paper, defaults and properties (bounded? convex? stationary margin under label noise) of one loss."""
    from rewardlab.analysis.curves import describe

    try:
        typer.echo(describe(name))
    except ValueError as e:
        _fail(str(e))


@losses_app.command("plot")
def losses_plot(names: List[str] = typer.Argument(None, help="Losses to plot (default: every pairwise and listwise loss)."),
                output: Path = typer.Option(Path("loss-plots"), "--output", help="Folder for losses.png and losses.csv."),
                eps: float = typer.Option(0.2, help="Fraction of flipped labels for the expected-gradient panel."),
                delta_min: float = typer.Option(-10.0, help="Left end of the Δ axis."),
                delta_max: float = typer.Option(10.0, help="Right end of the Δ axis.")):
    """PNG + CSV of each loss and dL/dΔ against Δ, and the expected gradient when a fraction ε of labels is flipped."""
    from rewardlab.analysis.curves import plot_losses

    try:
        paths = plot_losses(names or None, output, eps=eps, delta_range=(delta_min, delta_max))
    except ValueError as e:
        _fail(str(e))
    typer.echo(json.dumps({k: str(v) for k, v in paths.items()}))


@app.command("tiny-model")
def tiny_model_cmd(
    output: Path = typer.Option(..., "--output", help="Folder to write the model and tokenizer to."),
    arch: str = typer.Option("llama", help="llama, gpt2 or bert."),
    size: str = typer.Option("nano", help="nano (2×32), micro (2×64) or mini (4×256)."),
    corpus: List[Path] = typer.Option([], "--corpus", help="Text/JSONL files whose strings train the tokenizer (repeatable); default: the built-in task."),
    vocab_size: int = typer.Option(2000, help="BPE vocabulary size."),
    seed: int = typer.Option(0, help="Seed of the random weights."),
):
    """Build a small random reward model plus a tokenizer trained offline — for tests and users without a hub."""
    from rewardlab.models.tiny import save_tiny, texts_of

    texts = []
    for path in corpus:
        if path.suffix in (".jsonl", ".json"):
            texts += texts_of(json.loads(line) for line in path.read_text().splitlines() if line.strip()) if path.suffix == ".jsonl" \
                else texts_of([json.loads(path.read_text())])
        else:
            texts += path.read_text().splitlines()
    if not texts:
        from rewardlab.tasks.gold import default_corpus

        texts = default_corpus()
    try:
        save_tiny(output, arch, texts, size, vocab_size, seed)
    except ValueError as e:
        _fail(str(e))
    typer.echo(json.dumps({"output": str(output), "arch": arch, "size": size}))


def main():
    from rewardlab.runtime import tune_allocator

    tune_allocator()
    app()


if __name__ == "__main__":
    main()
