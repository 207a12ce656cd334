"""Loss curves, expected gradients under label flips, stationary margins, the table, describe, plots.

Closed forms used below (ℓ(x) = −log σ(x), ℓ'(x) = −σ(−x)); E'(Δ) = (1 − ε) L'(Δ) − ε L'(−Δ):
  bt:               E' = −(1 − ε) σ(−Δ) + ε σ(Δ) = 0  ⇔  e^Δ = (1 − ε)/ε  ⇒  Δ* = log((1 − ε)/ε)
  squared:          E' = 2[(1 − ε)(Δ − t) + ε(Δ + t)] = 2[Δ − t(1 − 2ε)]  ⇒  Δ* = t(1 − 2ε)
  hinge (ε < 1/2):  E' = −(1 − ε) on (−m, m)… jumps to +ε at Δ = m  ⇒  Δ* = m
  label_smoothing:  E' = (1 − q) ℓ'(Δ) − q ℓ'(−Δ), q = α + ε − 2αε  ⇒  Δ* = log((1 − q)/q)
  robust (flip ε_f, noise ε_n): E' ∝ −(1 − ε_n − ε_f) σ(−Δ) − (ε_f − ε_n) σ(Δ)
                    ⇒ Δ* = log((1 − ε_n − ε_f)/(ε_n − ε_f)) if ε_n > ε_f, else ∞ (ε_n = ε_f: E' = clean BT).
"""

import csv
import math

import numpy as np
import pytest

from rewardlab.analysis import (CURVE_MARGIN, PROPERTIES, describe, expected_gradient, loss_curve, loss_table,
                                plot_losses, stationary_margin)
from rewardlab.losses import LOSSES, REGULARIZERS

CURVED = [n for n, s in LOSSES.items() if s.family in ("pairwise", "listwise")]


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_bt_curve_and_gradient():
    """bt: L(0) = log 2, L'(Δ) = −σ(−Δ) (−1/2 at 0)."""
    d = np.linspace(-5, 5, 11)
    loss, grad = loss_curve("bt", d)
    np.testing.assert_allclose(loss, np.log1p(np.exp(-d)), rtol=1e-12)
    np.testing.assert_allclose(grad, -sigmoid(-d), rtol=1e-12)
    assert loss[5] == pytest.approx(math.log(2)) and grad[5] == pytest.approx(-0.5)


@pytest.mark.parametrize("name", ["kwise_bt", "plackett_luce", "infonce"])
def test_listwise_curves_are_bt(name):
    """Listwise curves use the K = 2 list [Δ, 0] with ranks [0, 1]: identical to bt."""
    d = np.linspace(-8, 8, 33)
    for a, b in zip(loss_curve(name, d), loss_curve("bt", d)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_margin_losses_use_curve_margin_or_given_margin():
    """bt_margin: L(Δ) = ℓ(Δ − m); default m = CURVE_MARGIN = 1, so L(1) = log 2; margin=2 → L(2) = log 2.
    Hyperparameters pass through: robust(flip_rate=0) = bt."""
    assert CURVE_MARGIN == 1.0
    assert loss_curve("bt_margin", np.array([1.0]))[0][0] == pytest.approx(math.log(2))
    assert loss_curve("bt_margin", np.array([2.0]), margin=2.0)[0][0] == pytest.approx(math.log(2))
    np.testing.assert_allclose(loss_curve("robust", np.array([0.3, 2.0]), flip_rate=0.0)[0],
                               loss_curve("bt", np.array([0.3, 2.0]))[0])


def test_curve_errors():
    with pytest.raises(ValueError, match="not a function of Δ"):
        loss_curve("mse", np.zeros(3))
    with pytest.raises(ValueError, match="not a function of Δ"):
        loss_curve("center", np.zeros(3))
    with pytest.raises(ValueError, match="unknown loss 'nope'; known: bt"):
        loss_curve("nope", np.zeros(3))
    with pytest.raises(ValueError, match="valid: alpha"):
        loss_curve("label_smoothing", np.zeros(3), beta=1.0)


def test_expected_gradient_bt():
    """E'(Δ) = −(1 − ε) σ(−Δ) + ε σ(Δ); at Δ = 0: (2ε − 1)/2 = −0.3 for ε = 0.2."""
    d = np.linspace(-6, 6, 25)
    np.testing.assert_allclose(expected_gradient("bt", d, 0.2), -0.8 * sigmoid(-d) + 0.2 * sigmoid(d), rtol=1e-12)
    assert expected_gradient("bt", np.array([0.0]), 0.2)[0] == pytest.approx(-0.3)
    with pytest.raises(ValueError, match="eps"):
        expected_gradient("bt", d, 1.5)


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.2, 0.3, 0.45])
def test_stationary_margin_bt(eps):
    """Δ* = log((1 − ε)/ε): 2.944, 2.197, 1.386, 0.847, 0.201."""
    assert stationary_margin("bt", eps) == pytest.approx(math.log((1 - eps) / eps), abs=1e-9)


def test_stationary_margin_closed_forms():
    """See the module docstring for each derivation."""
    assert stationary_margin("bt", 0.0) == math.inf
    assert stationary_margin("squared", 0.2) == pytest.approx(0.6, abs=1e-9)
    assert stationary_margin("squared", 0.1, t=2.0) == pytest.approx(1.6, abs=1e-9)
    assert stationary_margin("hinge", 0.2) == pytest.approx(1.0, abs=1e-9)
    assert stationary_margin("hinge", 0.0, m=2.0) == pytest.approx(2.0, abs=1e-9)
    q = 0.1 + 0.2 - 2 * 0.1 * 0.2
    assert stationary_margin("label_smoothing", 0.2) == pytest.approx(math.log((1 - q) / q), abs=1e-9)
    assert stationary_margin("label_smoothing", 0.0) == pytest.approx(math.log(9.0), abs=1e-9)
    assert stationary_margin("robust", 0.1, flip_rate=0.1) == math.inf
    assert stationary_margin("robust", 0.05, flip_rate=0.1) == math.inf
    assert stationary_margin("robust", 0.2, flip_rate=0.1) == pytest.approx(math.log(7.0), abs=1e-9)
    for name in ("plackett_luce", "infonce", "kwise_bt"):
        assert stationary_margin(name, 0.0) == math.inf
        assert stationary_margin(name, 0.1) == pytest.approx(math.log(9.0), abs=1e-9)


def _grid_loss(name, d):
    return loss_curve(name, d)[0]


@pytest.mark.parametrize("name", CURVED)
def test_declared_properties_hold_numerically(name):
    """PROPERTIES (hand-derived) agree with the curve: convexity via second differences on [−20, 20]
    (any clearly negative one ⇒ not convex); boundedness via values out to |Δ| = 1e4."""
    p = PROPERTIES[name]
    d = np.linspace(-20, 20, 4001)
    loss = _grid_loss(name, d)
    second = loss[2:] - 2 * loss[1:-1] + loss[:-2]
    assert (second.min() > -1e-9) == p["convex"]
    wide = _grid_loss(name, np.array([-1e4, -1e3, 0.0, 1e3, 1e4]))
    assert (wide.min() > -100) == p["bounded_below"]
    assert (wide.max() < 100) == p["bounded_above"]


def test_loss_table():
    rows = loss_table()
    assert [r["name"] for r in rows] == [*LOSSES, *REGULARIZERS]
    by_name = {r["name"]: r for r in rows}
    assert by_name["robust"]["hyperparameters"] == {"flip_rate": 0.1}
    assert by_name["ties"]["handles_ties"] and by_name["ties"]["inputs"] == ["tie"]
    assert by_name["center"]["family"] == "regularizer"
    assert set(rows[0]) >= {"name", "family", "data_form", "hyperparameters", "paper"}
    assert [r["name"] for r in loss_table(include_regularizers=False)] == list(LOSSES)


def test_describe():
    text = describe("bt")
    assert "−log σ(Δ)" in text and "Stiennon" in text and "convex: yes" in text
    assert "ε=0.1: 2.197" in text and "ε=0: ∞" in text
    assert "bounded below: no" in describe("robust")
    assert "curves: none" in describe("mse") and "weights=None" in describe("mse")
    assert "length_rewards" in describe("odin")
    with pytest.raises(ValueError, match="known: bt"):
        describe("nope")


def test_plot_losses(tmp_path):
    """Writes a PNG and a long-format CSV with one row per (loss, Δ) and the stationary margin."""
    out = plot_losses(["bt", "squared", "robust"], tmp_path / "plots", eps=0.2, delta_range=(-4, 4), points=41)
    assert set(out) == {"png", "csv"}
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 41
    assert set(rows[0]) == {"name", "delta", "loss", "dloss_ddelta", "expected_grad", "eps", "stationary_margin"}
    bt0 = next(r for r in rows if r["name"] == "bt" and float(r["delta"]) == 0.0)
    assert float(bt0["loss"]) == pytest.approx(math.log(2)) and float(bt0["stationary_margin"]) == pytest.approx(
        math.log(4), abs=1e-5)
    assert next(r for r in rows if r["name"] == "squared")["stationary_margin"] == "0.6"


def test_plot_losses_rejects_bad_names(tmp_path):
    with pytest.raises(ValueError, match="not a function of Δ"):
        plot_losses(["bt", "bce"], tmp_path)
    assert not (tmp_path / "losses.png").exists()
