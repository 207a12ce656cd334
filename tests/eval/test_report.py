"""The HTML report: self-contained page with embedded plots, metrics and comparison tables."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from rewardlab.eval import metrics as M
from rewardlab.eval import report as R

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _data(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    len_c = rng.integers(10, 300, n).astype(float)
    len_r = rng.integers(10, 300, n).astype(float)
    r_c = rng.normal(0.8, 1.0, n) + 0.003 * len_c
    r_r = rng.normal(0.0, 1.0, n) + 0.003 * len_r
    strength = rng.integers(1, 4, n).astype(float)
    return r_c, r_r, len_c, len_r, strength


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    r_c, r_r, len_c, len_r, strength = _data()
    metrics = {
        "pairwise": M.pairwise_accuracy(r_c, r_r),
        "bt_loss": M.pairwise_loss_bt(r_c, r_r),
        "length_bias": M.length_bias(r_c, r_r, len_c, len_r),
    }
    compare = {
        "rm-small": {"accuracy": 0.61, "ece": 0.08, "bt_loss": 0.66},
        "rm-large": {"accuracy": 0.72, "ece": 0.05, "bt_loss": 0.58},
    }
    out = tmp_path_factory.mktemp("report")
    path = R.write_report(out, metrics, r_c, r_r, len_c, len_r, strength=strength,
                          title="Test <report> & co", compare=compare)
    return path, metrics


def test_report_embeds_every_plot_and_writes_pngs(full_report):
    """Five plots (reliability, distributions, margins, length, strength): each written as a PNG of
    real size and embedded byte for byte as a base64 <img>."""
    path, _ = full_report
    page = path.read_text(encoding="utf-8")
    embedded = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == 5
    for name in R.PLOT_FILES.values():
        png = path.parent / name
        assert png.exists(), name
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, name
        assert base64.b64encode(data).decode("ascii") in embedded, name


def test_report_is_self_contained(full_report):
    """No external resources: no http(s) links, scripts, stylesheets or image files referenced."""
    page = full_report[0].read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page
    assert not re.search(r'src="(?!data:)', page)


def test_report_shows_metrics_and_escapes(full_report):
    """The flattened metric names and their formatted values appear; the title is HTML-escaped."""
    path, metrics = full_report
    page = path.read_text(encoding="utf-8")
    assert "pairwise.accuracy" in page
    assert R.format_value(metrics["pairwise"]["accuracy"]) in page
    assert "length_bias.accuracy_chosen_longer" in page
    assert R.format_value(metrics["bt_loss"]) in page
    assert "Test &lt;report&gt; &amp; co" in page and "<report>" not in page


def test_comparison_table_marks_the_best(full_report):
    """Higher accuracy and lower ECE / loss are better: rm-large wins all three columns."""
    page = full_report[0].read_text(encoding="utf-8")
    assert "<h2>Comparison</h2>" in page and "rm-small" in page and "rm-large" in page
    for best in ("0.72", "0.05", "0.58"):
        assert f'<td class="num best">{best}</td>' in page
    for other in ("0.61", "0.08", "0.66"):
        assert f'<td class="num">{other}</td>' in page


def test_minimal_report_has_three_plots(tmp_path):
    """Without lengths and strengths: reliability, distributions and margins only; no comparison section."""
    r_c, r_r, *_ = _data(n=60, seed=1)
    path = R.write_report(tmp_path, {"accuracy": 0.7}, r_c, r_r)
    page = path.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 3
    assert not (tmp_path / R.PLOT_FILES["length"]).exists()
    assert "Comparison" not in page


def test_lengths_come_in_pairs(tmp_path):
    r_c, r_r, len_c, _, _ = _data(n=20)
    with pytest.raises(ValueError, match="both len_chosen and len_rejected"):
        R.write_report(tmp_path, {}, r_c, r_r, len_chosen=len_c)


def test_format_and_flatten():
    """4 significant digits, scientific outside [1e-3, 1e5), '—' for None; nested keys joined by dots."""
    assert R.format_value(0.123456) == "0.1235"
    assert R.format_value(1.5e-5) == "1.500e-05"
    assert R.format_value(None) == "—" and R.format_value(True) == "yes" and R.format_value(7) == "7"
    assert R.flatten_metrics({"a": {"b": 1, "c": {"d": 2}}, "e": [1, 2]}) == {"a.b": 1, "a.c.d": 2, "e": [1, 2]}
