"""Gao et al.'s over-optimisation forms: least-squares fits recover known (α, β), peaks by hand, and the
report (PNG + JSON + markdown) is written from run outputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rewardlab.optimize.overopt import Curve, curve_from_bon, curve_from_log, fit, peak, predict, report


def test_fits_recover_known_parameters():
    """Noise-free points of d(1.2 − 0.4d) (best-of-N) and d(0.9 − 0.3 log d) (RL) give back α, β exactly;
    with N(0, 0.01²) noise within 0.05."""
    d = np.linspace(0.1, 3.0, 12)
    bon = fit(d, d * (1.2 - 0.4 * d), "bon")
    rl = fit(d, d * (0.9 - 0.3 * np.log(d)), "rl")
    assert (bon["alpha"], bon["beta"]) == pytest.approx((1.2, 0.4), abs=1e-9) and bon["r2"] == pytest.approx(1.0)
    assert (rl["alpha"], rl["beta"]) == pytest.approx((0.9, 0.3), abs=1e-9)
    noisy = fit(d, d * (1.2 - 0.4 * d) + np.random.default_rng(0).normal(0, 0.01, d.size), "bon")
    assert noisy["alpha"] == pytest.approx(1.2, abs=0.05) and noisy["beta"] == pytest.approx(0.4, abs=0.05)
    assert predict([0.0, 1.0], 1.2, 0.4, "bon").tolist() == pytest.approx([0.0, 0.8])
    assert predict([0.0, 1.0], 0.9, 0.3, "rl").tolist() == pytest.approx([0.0, 0.9])  # d log d → 0 at d = 0
    with pytest.raises(ValueError, match="known: bon, rl"):
        fit(d, d, "sft")


def test_peaks_by_hand():
    """BoN: d(α − βd) peaks at d* = α/(2β) = 1.5 with R* = α²/(4β) = 0.9 for α = 1.2, β = 0.4.
    RL: d(α − β log d) peaks where α − β log d − β = 0 → d* = e^{α/β − 1} = e² for α = 0.9, β = 0.3; R* = β d*."""
    assert peak(1.2, 0.4, "bon") == pytest.approx((1.5, 0.9))
    d_star, r_star = peak(0.9, 0.3, "rl")
    assert d_star == pytest.approx(math.exp(2)) and r_star == pytest.approx(0.3 * math.exp(2))
    assert r_star == pytest.approx(float(predict([d_star], 0.9, 0.3, "rl")[0]))
    assert peak(1.0, -0.1, "bon") == (math.inf, math.inf) == peak(-1.0, -0.1, "rl")
    assert peak(-1.0, 0.0, "rl") == (0.0, 0.0)


def test_curves_from_runs_and_report(tmp_path):
    """A best-of-N summary and an RL log become gain curves (vs N = 1 / step 0, proxy rescaled by
    σ_gold/σ_proxy = 0.5/2 = 0.25); the report writes a PNG, JSON and markdown with the fitted α, β."""
    bon = {"curve": [{"n": n, "kl": math.log(n) - (n - 1) / n, "proxy": 1.0 + 2 * math.log(n), "gold": 0.1 + 0.3 * math.log(n)}
                     for n in (1, 2, 4, 8, 16)], "proxy_std": 2.0, "gold_std": 0.5}
    c_bon = curve_from_bon(bon, "bt")
    assert c_bon.gold[0] == 0.0 and c_bon.proxy[1] == pytest.approx(2 * math.log(2) * 0.25)
    log = tmp_path / "log.jsonl"
    lines = [{"step": s, "split": "eval", "kl_k1": 0.5 * s, "gold": -0.5 + 0.2 * math.sqrt(s), "proxy": 0.3 * s,
              "proxy_std": 1.0, "gold_std": 1.0} for s in range(0, 6)]
    lines.insert(2, {"step": 1, "split": "train", "kl_k1": 9.0, "gold": 9.0, "proxy": 9.0})
    log.write_text("".join(json.dumps(x) + "\n" for x in lines))
    c_rl = curve_from_log(log, "bt")
    assert len(c_rl.d) == 6 and c_rl.d[2] == pytest.approx(1.0) and c_rl.gold[4] == pytest.approx(0.4)
    other = Curve("margin", "bon", d=c_bon.d, gold=[g * 0.5 for g in c_bon.gold], proxy=c_bon.proxy, kl=c_bon.kl)
    summary = report([c_bon, c_rl, other], tmp_path / "rep")
    png = tmp_path / "rep" / "overopt.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "rep" / "overopt.json").read_text())
    assert [c["rm"] for c in data["curves"]] == ["bt", "bt", "margin"]
    assert "| bt | bon |" in (tmp_path / "rep" / "overopt.md").read_text()
    page = (tmp_path / "rep" / "overopt.html").read_text()  # the same table on the one report page, the figure embedded
    assert "<td>margin</td>" in page and "data:image/png;base64," in page and page.count("<tr>") == 4
    assert summary["curves"][0]["fits"]["gold"]["alpha"] > 0
    with pytest.raises(ValueError, match="N = 1"):
        curve_from_bon({"curve": bon["curve"][1:]}, "x")
