"""Policy optimisation against rewards: sampling, best-of-N, RWR, RAFT, REINFORCE, RLOO, PPO, MLE + λ·RL
(``mle_rl``, with its λ sweep), sequence-level distillation from a teacher (``distill``), and
over-optimisation curves (gold and proxy vs √KL with Gao et al.'s fits).

    >>> from rewardlab.optimize import OptimizeConfig, optimize
    >>> summary = optimize(OptimizeConfig(method="ppo", policy="runs/policy", reward=["rm:runs/rm"]))  # doctest: +SKIP

See :mod:`rewardlab.optimize.run` for the loops, :mod:`rewardlab.optimize.algorithms` for the maths.
"""

from rewardlab.config import METHODS, OptimizeConfig
from rewardlab.optimize.run import RUNNERS, optimize

__all__ = ["METHODS", "OptimizeConfig", "RUNNERS", "optimize"]
