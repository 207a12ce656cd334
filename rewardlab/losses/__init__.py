"""Reward-model losses and regularisers: pure functions of reward tensors, chosen by name.

    from rewardlab.losses import get_loss, resolve_hparams
    spec = get_loss("label_smoothing")
    per_pair = spec.fn(r_chosen, r_rejected, **resolve_hparams(spec, {"alpha": 0.05}))  # (B,)

Families: pairwise.py (pairs), listwise.py (rankings), pointwise.py (ratings / labels),
regularizers.py (added with a coefficient). catalogue.py is the single place a name maps to a
function. This package imports only torch (nothing else of rewardlab).
"""

from .catalogue import LOSSES, REGULARIZERS, LossSpec, get_loss, get_regularizer, resolve_hparams
from .pairwise import LLAMA2_MARGIN_LARGE, LLAMA2_MARGIN_SMALL

__all__ = ["LOSSES", "REGULARIZERS", "LossSpec", "get_loss", "get_regularizer", "resolve_hparams",
           "LLAMA2_MARGIN_SMALL", "LLAMA2_MARGIN_LARGE"]
