"""Analysis of reward-model losses: curves, gradients under label noise, the catalogue as a table.

    from rewardlab.analysis import describe, plot_losses, stationary_margin
    print(describe("robust"))
    stationary_margin("bt", 0.1)            # log(0.9 / 0.1) ≈ 2.197
    plot_losses(["bt", "robust", "squared"], "out/")   # losses.png + losses.csv
"""

from .curves import (CURVE_MARGIN, PROPERTIES, describe, expected_gradient, loss_curve, loss_table, plot_losses,
                     stationary_margin)

__all__ = ["CURVE_MARGIN", "PROPERTIES", "describe", "expected_gradient", "loss_curve", "loss_table", "plot_losses",
           "stationary_margin"]
