"""Policy optimisation against rewards: sampling, best-of-N, RWR, RAFT, REINFORCE, RLOO, PPO, MLE + λ·RL
(``mle_rl``, with its λ sweep), sequence-level distillation from a teacher (``distill``), and
over-optimisation curves (gold and proxy vs √KL with Gao et al.'s fits).

    >>> from rewardlab.optimize import OptimizeConfig, optimize
    >>> summary = optimize(OptimizeConfig(method="ppo", policy="runs/policy", reward=["rm:runs/rm"]))  # doctest: +SKIP

See :mod:`rewardlab.optimize.run` for the loops, :mod:`rewardlab.optimize.algorithms` for the maths.
"""

from rewardlab.config import METHODS, OptimizeConfig

__all__ = ["METHODS", "OptimizeConfig", "RUNNERS", "optimize"]


def __getattr__(name: str):
    """``optimize`` and ``RUNNERS`` are imported on first use: the loops bring torch, and ``rewardlab --help``
    (whose ``optimize`` commands live in :mod:`rewardlab.optimize.cli`, inside this package) should not wait for it."""
    if name in ("optimize", "RUNNERS"):
        from rewardlab.optimize import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
