"""``rewardlab optimize …``: improve a policy with a reward, and measure over-optimisation.

Subcommands: ``policy`` (train the tiny initial policy of the built-in task), ``bon``, ``rwr``,
``raft``, ``reinforce``, ``rloo``, ``ppo`` (one per optimiser; options generated from
:class:`~rewardlab.optimize.config.OptimizeConfig`, only those the method reads), and ``overopt``
(gold and proxy vs √KL for one or several RMs, with Gao et al.'s fits). Every command reads
``--config FILE.yaml`` (flags override it), writes its resolved config as YAML beside its output
and prints a JSON summary. The lead mounts ``app`` as ``rewardlab optimize``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path
from typing import List, Optional

import typer

from rewardlab.optimize.config import METHOD_FIELDS, METHODS, OptimizeConfig, load_config, save_config

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Improve a policy with a reward (best-of-N, RWR, RAFT, REINFORCE, RLOO, PPO) and measure over-optimisation.")

_SCALARS = {"str": Optional[str], "int": Optional[int], "float": Optional[float], "bool": Optional[bool]}
_LISTS = {"reward": List[str], "reward_weight": List[float], "n": List[int]}
_HELP = {
    "bon": "Best-of-N: sample N per prompt, keep the reward's best; reports gold/proxy per N and KL = log N − (N−1)/N.",
    "rwr": "Reward-weighted MLE: fine-tune on own samples weighted exp(r/β), in rounds.",
    "raft": "RAFT / ReST-style filtering: keep the top --keep of --k samples per prompt, fine-tune, repeat.",
    "reinforce": "REINFORCE with a moving-average baseline and a KL penalty to the reference.",
    "rloo": "REINFORCE leave-one-out: --k samples per prompt, baseline = mean reward of the others.",
    "ppo": "PPO: value head, GAE, clipped losses, per-token KL penalty (fixed or adaptive β); --advantage grpo for GRPO.",
}


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg="red", err=True)
    raise typer.Exit(2)


def _option(f: dataclasses.Field, name: str | None = None) -> inspect.Parameter:
    flag = "--" + (name or f.name).replace("_", "-")
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    shown = "" if default in (None, [], {}) else f" [default: {default}]"
    if f.name in _LISTS:
        return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[_LISTS[f.name]],
                                 default=typer.Option(None, flag, help=f.metadata["help"] + " Repeatable." + shown, show_default=False))
    decls = [f"{flag}/--no-{flag[2:]}"] if f.type == "bool" else [flag]
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=_SCALARS[f.type],
                             default=typer.Option(None, *decls, help=f.metadata["help"] + shown, show_default=False))


_CONFIG = inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                            default=typer.Option(None, "--config", help="YAML file of field: value (flags override it)."))


def _fields(cls, names) -> list[dataclasses.Field]:
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    return [by_name[n] for n in names]


def _method_command(method: str):
    fields = _fields(OptimizeConfig, METHOD_FIELDS[method])

    def command(**kwargs):
        from rewardlab.optimize.run import optimize

        path = kwargs.pop("config")
        try:
            cfg = load_config(OptimizeConfig, path, **{k: v for k, v in kwargs.items() if v not in (None, [])}, method=method)
            summary = optimize(cfg, log=lambda m: typer.echo(m, err=True))
        except (ValueError, TypeError, FileNotFoundError, OSError) as e:
            _fail(str(e))
        typer.echo(json.dumps(summary, default=str))

    command.__signature__ = inspect.Signature([_CONFIG] + [_option(f) for f in fields])
    command.__doc__ = _HELP[method] + " Writes log.jsonl, summary.json, config.yaml and policy/ to --output."
    app.command(method, help=command.__doc__)(command)


for _m in METHODS:
    _method_command(_m)


def _policy_command():
    from rewardlab.optimize.policy import PolicyConfig

    fields = dataclasses.fields(PolicyConfig)

    def command(**kwargs):
        from rewardlab.optimize.policy import train_policy

        path = kwargs.pop("config")
        try:
            cfg = load_config(PolicyConfig, path, **{k: v for k, v in kwargs.items() if v is not None})
            meta = train_policy(cfg, log=lambda m: typer.echo(m, err=True))
        except (ValueError, TypeError, OSError) as e:
            _fail(str(e))
        save_config(cfg, Path(cfg.output) / "config.yaml")
        typer.echo(json.dumps({"output": cfg.output, **meta}, default=str))

    command.__signature__ = inspect.Signature([_CONFIG] + [_option(f) for f in fields])
    command.__doc__ = ("Train the tiny causal-LM policy of the built-in task (SFT on responses of mixed quality, "
                       "seconds to a minute on CPU); the initial policy and reference of every optimiser.")
    app.command("policy", help=command.__doc__)(command)


_policy_command()

_OVEROPT_SKIP = {"method", "reward", "reward_weight", "output", "prompts", "prompt_field", "gold", "n", "resume", "save_every"}
_OVEROPT_FIELDS = [n for n in dict.fromkeys(sum((METHOD_FIELDS[m] for m in ("ppo", "reinforce", "rwr", "raft")), ()))
                   if n not in _OVEROPT_SKIP]


def _pairs(items: list[str] | None, what: str) -> list[tuple[str, str]]:
    out = []
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"{what}: expected NAME=DIR, got {item!r}")
        name, folder = item.split("=", 1)
        out.append((name, folder))
    return out


def _overopt_command():
    fields = _fields(OptimizeConfig, _OVEROPT_FIELDS)
    own = [
        inspect.Parameter("rm", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[List[str]], default=typer.Option(
            None, "--rm", help="Proxy reward model folder (or a reward spec such as ensemble:A,B;agg=min). Repeatable: one curve pair per RM.")),
        inspect.Parameter("name", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[List[str]], default=typer.Option(
            None, "--name", help="Label of each --rm in the figure (default: the folder name). Repeatable.")),
        inspect.Parameter("output", inspect.Parameter.KEYWORD_ONLY, annotation=Path, default=typer.Option(
            Path("runs/overopt"), "--output", help="Output folder: overopt.png, overopt.json, overopt.md, overopt_config.yaml, one run folder per RM.")),
        inspect.Parameter("rl_method", inspect.Parameter.KEYWORD_ONLY, annotation=str, default=typer.Option(
            "ppo", "--rl-method", help="RL optimiser of the RL curve: ppo, reinforce, rloo, rwr or raft.")),
        inspect.Parameter("bon_n", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[List[int]], default=typer.Option(
            None, "--bon-n", help="N values of the best-of-N curve (must include 1). Repeatable. [default: 1 2 4 8 16 32 64]")),
        inspect.Parameter("bon_run", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[List[str]], default=typer.Option(
            None, "--bon-run", help="Add an existing best-of-N run as NAME=DIR (its summary.json) instead of running it. Repeatable.")),
        inspect.Parameter("rl_run", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[List[str]], default=typer.Option(
            None, "--rl-run", help="Add an existing RL run as NAME=DIR (its log.jsonl eval lines) instead of running it. Repeatable.")),
    ]

    def command(**kwargs):
        from rewardlab.optimize.overopt import curve_from_bon, curve_from_log, report, run_overopt

        path = kwargs.pop("config")
        rms, names, output = kwargs.pop("rm") or [], kwargs.pop("name") or [], kwargs.pop("output")
        rl_method, bon_n = kwargs.pop("rl_method"), kwargs.pop("bon_n") or [1, 2, 4, 8, 16, 32, 64]
        try:
            bon_runs, rl_runs = _pairs(kwargs.pop("bon_run"), "--bon-run"), _pairs(kwargs.pop("rl_run"), "--rl-run")
            if rl_method not in ("ppo", "reinforce", "rloo", "rwr", "raft"):
                raise ValueError(f"unknown --rl-method {rl_method!r}; known: ppo, reinforce, rloo, rwr, raft")
            if not rms and not bon_runs and not rl_runs:
                raise ValueError("give --rm (to run) or --bon-run / --rl-run (existing runs)")
            base = load_config(OptimizeConfig, path, **{k: v for k, v in kwargs.items() if v not in (None, [])},
                               method=rl_method, output=str(output))
            output.mkdir(parents=True, exist_ok=True)
            save_config(base, output / "overopt_config.yaml")
            (output / "overopt_config.yaml").write_text((output / "overopt_config.yaml").read_text() + "\n# overopt\n" + json.dumps(
                {"rm": rms, "name": names, "rl_method": rl_method, "bon_n": bon_n, "bon_run": bon_runs, "rl_run": rl_runs}) + "\n")
            curves = [curve_from_bon(json.loads((Path(d) / "summary.json").read_text()), n) for n, d in bon_runs]
            curves += [curve_from_log(Path(d) / "log.jsonl", n) for n, d in rl_runs]
            if rms:
                summary = run_overopt(base, rms, names, output, rl_method, bon_n, log=lambda m: typer.echo(m, err=True),
                                      extra_curves=curves)
            else:
                summary = report(curves, output)
        except (ValueError, TypeError, FileNotFoundError, OSError) as e:
            _fail(str(e))
        short = [{"rm": c["rm"], "form": c["form"], "gold_alpha": c["fits"]["gold"]["alpha"], "gold_beta": c["fits"]["gold"]["beta"],
                  "max_gold_gain": c["max_gold_gain"], "final_kl": c["final_kl"]} for c in summary["curves"]]
        typer.echo(json.dumps({"output": str(output), "figure": summary["figure"], "curves": short}, default=str))

    command.__signature__ = inspect.Signature([_CONFIG] + own + [_option(f) for f in fields])
    command.__doc__ = ("Over-optimisation on the built-in task: for each proxy RM, best-of-N and an RL run; gold and proxy "
                       "gain vs d = √KL with Gao et al.'s fits (BoN: d(α − βd), RL: d(α − β log d)); overopt.png/.json/.md.")
    app.command("overopt", help=command.__doc__)(command)


_overopt_command()
