"""Counterfactual probes: controlled edits of each response and the reward change they cause.

Each probe is a pure function ``edit(text, words) -> str`` (``words``: the filler size of ``length``). The
table reports, per probe, the mean of reward(edited) − reward(original) over the input's responses with a
95% bootstrap interval (``scipy.stats.bootstrap``), the share of responses whose reward went up, and the
mean words added or removed. A length-hacked RM shows as a positive ``length`` row
("+30 words of filler: +0.41 reward [0.33, 0.49]") before any policy finds the hack.

RATE (Reber et al. 2024, arXiv 2410.11348): with a user's ``rewrite(text, on: bool) -> str`` that turns an
attribute on or off, the effect of the attribute is estimated as the mean of
R(rewrite(rewrite(x, off), on)) − R(rewrite(x, off)): both sides have been through the rewriter, so its
side effects cancel (``rate_effect``; the naive R(x) − R(rewrite(x, off)) is reported beside it).
"""

from __future__ import annotations

import importlib
import re
from typing import Callable

import numpy as np

FILLER = ("In other words,", "as noted above,", "this is", "the", "answer", "to", "the", "question", "that", "was", "asked.")
"""Neutral filler: no sentiment, no topic word; appended as whole sentences."""


def _filler(words: int) -> str:
    out = []
    while len(out) < words:
        out += " ".join(FILLER).split()
    return " ".join(out[:words])


def append_filler(text: str, words: int = 30) -> str:
    """The response with ``words`` words of neutral filler appended."""
    return (text.rstrip() + " " + _filler(words)).strip()


_SENTENCE = re.compile(r"[^.!?]+[.!?]*\s*")


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.findall(text) if s.strip()]


def repeat_sentence(text: str, words: int = 0) -> str:
    """The response with its last sentence said twice."""
    parts = sentences(text)
    if not parts:
        return text
    return text.rstrip() + " " + parts[-1].strip()


def truncate_half(text: str, words: int = 0) -> str:
    """The first half of the response's words."""
    w = text.split()
    return " ".join(w[: len(w) // 2])


def empty(text: str, words: int = 0) -> str:
    return ""


def upper(text: str, words: int = 0) -> str:
    return text.upper()


def lower(text: str, words: int = 0) -> str:
    return text.lower()


def bullets(text: str, words: int = 0) -> str:
    """Each sentence as a markdown bullet on its own line."""
    parts = sentences(text)
    return "\n".join("- " + s.strip() for s in parts) if parts else text


PROBES: dict[str, tuple[Callable[[str, int], str], str]] = {
    "length": (append_filler, "+{words} words of filler"),
    "repeat": (repeat_sentence, "last sentence repeated"),
    "truncate": (truncate_half, "cut to the first half"),
    "empty": (empty, "empty response"),
    "upper": (upper, "UPPER CASE"),
    "lower": (lower, "lower case"),
    "bullets": (bullets, "sentences as bullets"),
}
DEFAULT_PROBES = ("length", "repeat", "truncate", "empty", "upper", "bullets")


def check_probes(names) -> list[str]:
    unknown = [n for n in names if n not in PROBES]
    if unknown:
        raise ValueError(f"unknown probe(s) {', '.join(unknown)}; known: {', '.join(PROBES)}")
    return list(names)


def mean_interval(deltas: np.ndarray, seed: int = 0, resamples: int = 1000) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its 95% percentile-bootstrap interval (NaN interval for < 2 values)."""
    from scipy.stats import bootstrap

    deltas = np.asarray(deltas, dtype=float)
    m = float(deltas.mean()) if deltas.size else float("nan")
    if deltas.size < 2 or resamples < 1 or np.all(deltas == deltas[0]):
        return m, (m if deltas.size else float("nan")), (m if deltas.size else float("nan"))
    res = bootstrap((deltas,), np.mean, confidence_level=0.95, n_resamples=resamples, method="percentile",
                    random_state=np.random.default_rng(seed))
    return m, float(res.confidence_interval.low), float(res.confidence_interval.high)


def probe_row(name: str, description: str, base: np.ndarray, edited: np.ndarray, words_changed: np.ndarray,
              seed: int = 0, resamples: int = 1000) -> dict:
    deltas = np.asarray(edited, dtype=float) - np.asarray(base, dtype=float)
    mean, low, high = mean_interval(deltas, seed, resamples)
    return {"probe": name, "description": description, "n": int(deltas.size), "mean_delta": mean, "ci_low": low,
            "ci_high": high, "share_up": float((deltas > 0).mean()) if deltas.size else float("nan"),
            "mean_words_changed": float(np.mean(words_changed)) if len(words_changed) else 0.0}


def run_probes(score: Callable[[list, list], np.ndarray], prompts: list, responses: list[str], names=DEFAULT_PROBES,
               words: int = 30, seed: int = 0, resamples: int = 1000, rewrite: Callable | None = None,
               rewrite_name: str = "rewrite") -> list[dict]:
    """One row per probe (and a RATE row with ``rewrite``): the reward change over (prompt, response) pairs.

    ``score(prompts, responses) -> (N,) rewards`` is called once for the originals and all edits together.
    """
    names = check_probes(names)
    edits = {n: [PROBES[n][0](r, words) for r in responses] for n in names}
    all_p, all_r = list(prompts), list(responses)
    for n in names:
        all_p += prompts
        all_r += edits[n]
    if rewrite is not None:
        off = [rewrite(r, False) for r in responses]
        on = [rewrite(r, True) for r in off]
        all_p += prompts + prompts
        all_r += off + on
    rewards = np.asarray(score(all_p, all_r), dtype=float)
    N = len(responses)
    base = rewards[:N]
    n_words = np.array([len(r.split()) for r in responses])
    rows = []
    for i, n in enumerate(names):
        got = rewards[N * (i + 1): N * (i + 2)]
        changed = np.array([len(e.split()) for e in edits[n]]) - n_words
        rows.append(probe_row(n, PROBES[n][1].format(words=words), base, got, changed, seed, resamples))
    if rewrite is not None:
        k = N * (len(names) + 1)
        r_off, r_on = rewards[k: k + N], rewards[k + N: k + 2 * N]
        rows.append(rate_row(rewrite_name, base, r_off, r_on, seed, resamples))
    return rows


def rate_row(name: str, r_x: np.ndarray, r_off: np.ndarray, r_on: np.ndarray, seed: int = 0, resamples: int = 1000) -> dict:
    """RATE's estimate of the attribute's effect: mean R(rewrite(rewrite(x, off), on)) − R(rewrite(x, off)),
    and the naive mean R(x) − R(rewrite(x, off)) beside it."""
    row = probe_row(f"rate:{name}", f"{name} on vs off (rewrite twice)", r_off, r_on, np.zeros(len(r_x)), seed, resamples)
    row["naive_delta"] = float(np.mean(np.asarray(r_x) - np.asarray(r_off)))
    return row


def load_rewrite(spec: str) -> Callable[[str, bool], str]:
    """``module:function`` → the function (e.g. ``rewardlab.explain.probes:polite``)."""
    if ":" not in spec:
        raise ValueError(f"--rewrite must be module:function, got {spec!r}")
    module, name = spec.split(":", 1)
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"--rewrite {spec}: cannot load it ({e})") from None
    if not callable(fn):
        raise ValueError(f"--rewrite {spec} is not a function")
    return fn


POLITE = "Thank you for asking! "


def polite(text: str, on: bool) -> str:
    """An example rewrite for RATE: add (on) or remove (off) a polite opening."""
    body = text[len(POLITE):] if text.startswith(POLITE) else text
    return POLITE + body if on else body


def format_row(row: dict) -> str:
    """'+30 words of filler: +0.41 reward [0.33, 0.49]'."""
    return f"{row['description']}: {row['mean_delta']:+.2f} reward [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
