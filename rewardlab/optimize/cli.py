"""``rewardlab optimize …``: improve a policy with a reward, and measure over-optimisation.

Subcommands: ``policy`` (train the tiny initial policy of the built-in task), ``bon``, ``rwr``,
``raft``, ``reinforce``, ``rloo``, ``ppo``, ``mle_rl``, ``distill`` (one per optimiser; options generated from
:class:`~rewardlab.config.OptimizeConfig`, only those the method reads), and ``overopt``
(gold and proxy vs √KL for one or several RMs, with Gao et al.'s fits). Options come from the same
generator as the other verbs (:func:`rewardlab.config.add_config_command`, one rule for list
options). Every command reads ``--config FILE.yaml`` (flags override it), writes its resolved config
as ``rewardlab_config.yaml`` in its output folder and prints a JSON summary. The lead mounts ``app``
as ``rewardlab optimize``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from rewardlab.config import (CONFIG_FILE, METHOD_FIELDS, METHODS, OptimizeConfig, OveroptConfig, add_config_command, fields_of,
                              load_config, save_config, to_dict)

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Improve a policy with a reward (best-of-N, RWR, RAFT, REINFORCE, RLOO, PPO, MLE + λ·RL) or distil a "
                       "teacher into it, and measure over-optimisation.")

_HELP = {
    "bon": "Best-of-N: sample N per prompt, keep the reward's best; reports gold/proxy per N and KL = log N − (N−1)/N.",
    "rwr": "Reward-weighted MLE: fine-tune on own samples weighted exp(r/β), in rounds.",
    "raft": "RAFT / ReST-style filtering: keep the top --keep of --k samples per prompt, fine-tune, repeat.",
    "reinforce": "REINFORCE with a moving-average baseline and a KL penalty to the reference.",
    "rloo": "REINFORCE leave-one-out: --k samples per prompt, baseline = mean reward of the others.",
    "ppo": "PPO: value head, GAE, clipped losses, per-token KL penalty (fixed or adaptive β); --advantage grpo for GRPO.",
    "mle_rl": "MLE + λ·RL: NLL of reference completions (--prompts rows' --reference-field, or the built-in task's quality-1 "
              "responses) − λ·RLOO policy-gradient term of --reward; --lambda 0 is plain MLE. Logs ref_nll.",
    "distill": "Sequence-level knowledge distillation (Kim & Rush 2016): MLE on --teacher's sampled or greedy outputs; logs the "
               "teacher–student KL (train: on the teacher's outputs; eval: on the student's samples).",
}


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg="red", err=True)
    raise typer.Exit(2)


def _method_command(method: str):
    def run(path, values):
        from rewardlab.optimize.run import optimize

        try:
            cfg = load_config(OptimizeConfig, path, **values, method=method)
            summary = optimize(cfg, log=lambda m: typer.echo(m, err=True))
        except (ValueError, TypeError, FileNotFoundError, OSError) as e:
            _fail(str(e))
        if int(os.environ.get("RANK", "0")) == 0:  # one summary line, also under torchrun / accelerate launch
            typer.echo(json.dumps(summary, default=str))

    add_config_command(app, method, _HELP[method] + f" Writes log.jsonl, summary.json, {CONFIG_FILE} and policy/ to --output.",
                       fields_of(OptimizeConfig, METHOD_FIELDS[method]), run)


for _m in METHODS:
    _method_command(_m)


def _policy_command():
    from rewardlab.config import PolicyConfig

    def run(path, values):
        from rewardlab.optimize.policy import train_policy

        try:
            cfg = load_config(PolicyConfig, path, **values)
            meta = train_policy(cfg, log=lambda m: typer.echo(m, err=True))
        except (ValueError, TypeError, OSError) as e:
            _fail(str(e))
        save_config(cfg, Path(cfg.output) / CONFIG_FILE)
        typer.echo(json.dumps({"output": cfg.output, **meta}, default=str))

    add_config_command(app, "policy", "Train the tiny causal-LM policy of the built-in task (SFT on responses of mixed quality, "
                                      "seconds to a minute on CPU); the initial policy and reference of every optimiser.",
                       fields_of(PolicyConfig), run)


_policy_command()

def _own_and_base(own_cls, own_fields, path, values: dict, verb: str, method_of):
    """(own, base) for a verb that runs optimize: its own options (``own_cls``, popped from ``values``) and the
    OptimizeConfig of the rest with ``method_of(own)`` and the verb's --output. Writes OUTPUT/rewardlab_config.yaml:
    ``base`` (loadable by --config), then the verb's own options as a comment line."""
    own = own_cls(**{f.name: values.pop(f.name) for f, _ in own_fields if f.name in values})
    base = load_config(OptimizeConfig, path, **values, method=method_of(own), output=own.output)
    output = Path(own.output)
    output.mkdir(parents=True, exist_ok=True)
    save_config(base, output / CONFIG_FILE)
    with open(output / CONFIG_FILE, "a", encoding="utf-8") as f:
        f.write(f"# {verb}: " + json.dumps(to_dict(own)) + "\n")
    return own, base


_OVEROPT_SKIP = {"method", "reward", "reward_weight", "output", "prompts", "prompt_field", "gold", "n", "resume", "save_every"}
_OVEROPT_FIELDS = [n for n in dict.fromkeys(sum((METHOD_FIELDS[m] for m in ("ppo", "reinforce", "rwr", "raft")), ()))
                   if n not in _OVEROPT_SKIP]


def _overopt_command():
    own_fields = fields_of(OveroptConfig)

    def run(path, values):
        from rewardlab.optimize.overopt import curve_from_bon, curve_from_log, report, run_overopt

        try:
            own, base = _own_and_base(OveroptConfig, own_fields, path, values, "overopt", lambda o: o.rl_method)
            output = Path(own.output)
            curves = [curve_from_bon(json.loads((Path(d) / "summary.json").read_text()), n) for n, d in own.bon_run.items()]
            curves += [curve_from_log(Path(d) / "log.jsonl", n) for n, d in own.rl_run.items()]
            if own.rm:
                summary = run_overopt(base, own.rm, own.name, output, own.rl_method, own.bon_n, log=lambda m: typer.echo(m, err=True),
                                      extra_curves=curves)
            else:
                summary = report(curves, output)
        except (ValueError, TypeError, FileNotFoundError, OSError) as e:
            _fail(str(e))
        short = [{"rm": c["rm"], "form": c["form"], "gold_alpha": c["fits"]["gold"]["alpha"], "gold_beta": c["fits"]["gold"]["beta"],
                  "max_gold_gain": c["max_gold_gain"], "final_kl": c["final_kl"]} for c in summary["curves"]]
        typer.echo(json.dumps({"output": str(output), "figure": summary["figure"], "curves": short}, default=str))

    add_config_command(app, "overopt", "Over-optimisation on the built-in task: for each proxy RM, best-of-N and an RL run; gold and "
                                       "proxy gain vs d = √KL with Gao et al.'s fits (BoN: d(α − βd), RL: d(α − β log d)); "
                                       "overopt.png/.json/.md.",
                       own_fields + fields_of(OptimizeConfig, _OVEROPT_FIELDS), run)


_overopt_command()

_SWEEP_FIELDS = [n for n in METHOD_FIELDS["mle_rl"] if n not in ("output", "mle_lambda", "resume", "save_every", "overwrite")]


def _sweep_command():
    from rewardlab.config import SweepConfig

    own_fields = fields_of(SweepConfig)

    def run(path, values):
        from rewardlab.optimize.sweep import lambda_sweep

        try:
            own, base = _own_and_base(SweepConfig, own_fields, path, values, "sweep", lambda o: "mle_rl")
            output = Path(own.output)
            summary = lambda_sweep(base, own.lambdas, output, log=lambda m: typer.echo(m, err=True))
        except (ValueError, TypeError, FileNotFoundError, OSError) as e:
            _fail(str(e))
        typer.echo(json.dumps(summary, default=str))

    add_config_command(app, "sweep", "The λ trade-off of mle_rl: one run per --lambda (same settings and seed), then reference "
                                     "NLL against gold and proxy reward; sweep.png/.json/.md.",
                       own_fields + fields_of(OptimizeConfig, _SWEEP_FIELDS), run)


_sweep_command()
