"""The explain page (``report.html``) and the section ``rewardlab eval --explain N`` embeds.

Each response is shown with its tokens highlighted by attribution: green raises the reward, red lowers
it, the colour's strength is |attribution| relative to the largest of the record (hover for the value).
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from rewardlab import report as R

METHOD_NAMES = {"ig": "integrated gradients", "occlusion": "occlusion", "shap": "Shapley value sampling"}


def highlight(side: dict, scale: float | None = None) -> str:
    """The response text with each attributed token in a coloured span (``side``: one entry of explanations.jsonl)."""
    text = side.get("response", "")
    tokens = side.get("tokens", [])
    scale = scale or max([abs(t["attribution"]) for t in tokens] + [1e-12])
    out, at = [], 0
    for t in sorted(tokens, key=lambda t: t["start"]):
        if t["start"] < at:  # overlapping spans (merged tokens): show the text once
            continue
        out.append(html.escape(text[at: t["start"]]))
        a = t["attribution"]
        alpha = min(1.0, abs(a) / scale) * 0.85
        rgb = "22,163,74" if a >= 0 else "220,38,38"
        out.append(f'<span style="background:rgba({rgb},{alpha:.2f});border-radius:3px" title="{a:+.4f}">'
                   f'{html.escape(text[t["start"]: t["end"]])}</span>')
        at = t["end"]
    out.append(html.escape(text[at:]))
    body = "".join(out) or "<i>(empty response)</i>"
    return f'<div style="white-space:pre-wrap;background:#fff;border:1px solid #e4e7eb;border-radius:6px;padding:8px 10px;margin:4px 0">{body}</div>'


def _side_caption(name: str, side: dict) -> str:
    return (f"<div style='color:#616e7c;font-size:13px;margin-top:8px'><b>{html.escape(name)}</b>: reward "
            f"{side['reward']:+.3f} (baseline {side['baseline_reward']:+.3f}, attributions sum "
            f"{sum(t['attribution'] for t in side['tokens']):+.3f}, completeness gap {side['completeness']:+.3f})</div>")


def record_html(rec: dict, prompt_chars: int = 400) -> str:
    """One record: its prompt (shortened) and each response highlighted on one shared colour scale."""
    sides = [(k, rec[k]) for k in ("chosen", "rejected") if k in rec] or [("response", rec)]
    scale = max([abs(t["attribution"]) for _, s in sides for t in s["tokens"]] + [1e-12])
    prompt = str(rec.get("prompt_text", ""))
    verdict = f": margin {rec['margin']:+.3f} ({'right' if rec['margin'] > 0 else 'WRONG'})" if "margin" in rec else ""
    head = f"<div><b>record {rec['index']}</b>{verdict}</div>"
    short = prompt if len(prompt) <= prompt_chars else "…" + prompt[-prompt_chars:]
    parts = [head, f"<div style='color:#616e7c;font-size:13px;white-space:pre-wrap'>prompt: {html.escape(short)}</div>"]
    for name, side in sides:
        parts += [_side_caption(name, side), highlight(side, scale)]
    return "<div style='margin:18px 0 26px'>" + "".join(parts) + "</div>"


def order_for_report(records: list[dict]) -> list[dict]:
    """Pairs the RM gets most wrong first (smallest chosen − rejected margin); single responses as given."""
    if records and "margin" in records[0]:
        return sorted(records, key=lambda r: r["margin"])
    return list(records)


def probe_table(rows: list[dict]) -> str:
    return R.table(["probe", "edit", "n", "mean Δ reward", "95% CI", "share up", "words changed"],
                   [[r["probe"], r["description"], r["n"], r["mean_delta"], f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]",
                     r["share_up"], r["mean_words_changed"]] for r in rows])


def plot_probes(rows: list[dict], path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 0.45 * len(rows) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    m = np.array([r["mean_delta"] for r in rows])
    lo, hi = np.array([r["ci_low"] for r in rows]), np.array([r["ci_high"] for r in rows])
    ax.barh(y, m, color=["#16a34a" if v >= 0 else "#dc2626" for v in m], alpha=0.8)
    ax.errorbar(m, y, xerr=[np.maximum(m - lo, 0), np.maximum(hi - m, 0)], fmt="none", ecolor="#1f2933", capsize=3)
    ax.set_yticks(y, [r["description"] for r in rows])
    ax.axvline(0, color="#616e7c", lw=0.8)
    ax.set_xlabel("mean reward change (edited − original), 95% CI")
    for s in ("top", "right"):
        ax.spines[s].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_prefix(records: list[dict], path: Path, max_panels: int = 6) -> Path | None:
    """Reward read at every prefix of the response, one panel per record (chosen solid, rejected dashed)."""
    shown = [r for r in records if any((r.get(k) or {}).get("prefix_rewards") for k in ("chosen", "rejected"))
             or r.get("prefix_rewards")][:max_panels]
    if not shown:
        return None
    from matplotlib.figure import Figure

    cols = min(3, len(shown))
    rows = (len(shown) + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols, 2.8 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, rec in zip(axes, shown):
        sides = [(k, rec[k]) for k in ("chosen", "rejected") if k in rec] or [("response", rec)]
        for (name, side), style in zip(sides, ("-", "--")):
            curve = side.get("prefix_rewards") or []
            ax.plot(np.arange(1, len(curve) + 1), curve, style, label=f"{name} ({side['reward']:+.2f})")
        ax.set_title(f"record {rec['index']}", fontsize=10)
        ax.set_xlabel("response tokens read")
        ax.set_ylabel("reward")
        ax.legend(fontsize=8, frameon=False)
        for s in ("top", "right"):
            ax.spines[s].set_visible(False)
    for ax in axes[len(shown):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def explain_section(records: list[dict], probes: list[dict], out: Path, top: int, method: str,
                    heading: str = "What the reward model responds to") -> str:
    """Probe table + bar chart, prefix-reward curves and the ``top`` highlighted records (worst pairs first)."""
    parts = []
    if probes:
        png = plot_probes(probes, out / "probes.png")
        parts += [R.section("Counterfactual probes", R.paragraph(
            "Each response edited one way; the change of its reward (edited − original), mean over the responses "
            "with a 95% bootstrap interval. A positive 'filler' row is length hacking waiting for a policy to find it."),
            probe_table(probes), R.figure(png, "mean reward change per edit"), level=3)]
    ordered = order_for_report(records)[:top]
    png = plot_prefix(ordered, out / "prefix_rewards.png")
    if png is not None:
        parts.append(R.section("Reward along the response", R.figure(
            png, "reward read after each response token (decoder RMs; one forward pass)"), level=3))
    if ordered:
        what = "pairs the reward model gets most wrong first" if "margin" in ordered[0] else "records in input order"
        parts.append(R.section(f"Token attributions ({METHOD_NAMES.get(method, method)})",
                               R.paragraph(f"Green raises the reward, red lowers it; {what}."),
                               *[record_html(r) for r in ordered], level=3))
    return R.section(heading, *parts)
