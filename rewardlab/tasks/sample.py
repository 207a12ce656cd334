"""Sample data of every form from the built-in task, with a held-out split (``rewardlab sample-data``).

Writes, under one folder, JSON lines that ``rewardlab train --data`` / ``eval --data`` read as they are
(fields as :mod:`rewardlab.tasks.jsonl` writes them):

    pairs/{train,test}.jsonl      prompt, chosen, rejected, margin, tie     (GoldTask.make_pairs)
    rankings/{train,test}.jsonl   prompt, responses (K = 4), ranks          (GoldTask.make_rankings)
    ratings/{train,test}.jsonl    prompt, response, score, scores           (GoldTask.make_ratings)
    labels/{train,test}.jsonl     prompt, response, label                   (GoldTask.make_labels)
    README.md                     what each file is, its fields, and how it was made

Notation: g gold reward of a response (std ≈ 1 over random responses; ``rewardlab.tasks.gold``),
σ = ``noise``. One meaning of σ for every form — the labeler sees g through noise of scale σ (Gumbel
noise for the orderings, Gaussian for the scores):

    pairs      Bradley–Terry at temperature σ: P(a ≻ b) = 1 / (1 + exp(−(g_a − g_b)/σ))
               (the order of g + Gumbel(0, σ) per response)
    rankings   Plackett–Luce at temperature σ (the order of g + Gumbel(0, σ) per response)
    ratings    score = g + σ·N(0, 1); each attribute of ``scores`` gets σ times its own std of noise
    labels     label = 1[g + σ·N(0, 1) > 0]

σ = 0 gives labels that all agree with the gold. The test split is labelled the same way as the
training split (a held-out sample of the same data, noise included). Training data is drawn with the
task seed, the test split with seed + :data:`TEST_SEED_OFFSET`; each form draws from its own random
stream, so the same arguments write the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from rewardlab.tasks.gold import GoldTask
from rewardlab.tasks.jsonl import to_jsonl

RANKING_K = 4
"""Responses per ranking."""
PAIR_MARGIN = "bucket"
"""Pair margins: 0, 1/3, 2/3, 1 by the gold gap (Llama 2's scale; ``gold.MARGIN_BUCKETS``)."""
LABEL_THRESHOLD = 0.0
"""Gold threshold of a good label (g has mean ≈ 0, so labels are about balanced)."""
TEST_SEED_OFFSET = 1_000_000
"""The test split is drawn with seed + this (its own draws, disjoint from the training split's)."""
SPLITS = ("train", "test")


def _pairs(task: GoldTask, n: int, seed: int, noise: float) -> list:
    return task.make_pairs(n, seed=seed, temperature=noise, margin=PAIR_MARGIN)[0]


def _rankings(task: GoldTask, n: int, seed: int, noise: float) -> list:
    return task.make_rankings(n, RANKING_K, seed=seed, temperature=noise)[0]


def _ratings(task: GoldTask, n: int, seed: int, noise: float) -> list:
    return task.make_ratings(n, seed=seed, noise=noise)[0]


def _labels(task: GoldTask, n: int, seed: int, noise: float) -> list:
    return task.make_labels(n, LABEL_THRESHOLD, seed=seed, noise=noise)[0]


MAKERS = {"pairs": _pairs, "rankings": _rankings, "ratings": _ratings, "labels": _labels}
"""Form → the generator of its records (the forms ``sample-data`` writes)."""
FORMS = tuple(MAKERS)

_ABOUT = {
    "pairs": ("one prompt and two responses, `chosen` preferred to `rejected`",
              "`prompt`, `chosen`, `rejected`, `margin` (0, 1/3, 2/3 or 1 by the gold gap, Llama 2's scale), "
              "`tie` (true only when both responses have the same gold)"),
    "rankings": (f"one prompt and {RANKING_K} responses ranked by the labeler",
                 f"`prompt`, `responses` (list of {RANKING_K}), `ranks` (list, 1 = best)"),
    "ratings": ("one prompt and one response with a numeric score",
                "`prompt`, `response`, `score` (the gold g, plus noise), `scores` (the gold's terms: "
                "`sentiment` S, `relevance` R, `length` L, plus noise)"),
    "labels": ("one prompt and one response labelled good or bad",
               f"`prompt`, `response`, `label` (1 when g + noise > {LABEL_THRESHOLD:g}, else 0)"),
}
_NOISE = {
    "pairs": "Bradley–Terry labeler at temperature σ: P(a ≻ b) = 1 / (1 + exp(−(g_a − g_b)/σ))",
    "rankings": "Plackett–Luce labeler at temperature σ (the order of g + Gumbel noise of scale σ)",
    "ratings": "score = g + σ·N(0, 1); each attribute gets σ times its own std of noise",
    "labels": "label = 1[g + σ·N(0, 1) > 0]",
}


def check_args(n_train: int, n_test: int, forms: Sequence[str], noise: float) -> None:
    """ValueError naming what is wrong with the arguments of :func:`write_sample_data`."""
    unknown = [f for f in forms if f not in MAKERS]
    if unknown:
        raise ValueError(f"unknown form(s) {', '.join(map(repr, unknown))}; known: {', '.join(FORMS)}")
    if not forms or len(set(forms)) != len(forms):
        raise ValueError(f"forms must be distinct and non-empty, got {list(forms)}")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be >= 1, got {n_train}, {n_test}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")


def write_sample_data(output: str | Path, n_train: int = 1000, n_test: int = 200, forms: Sequence[str] = FORMS,
                      seed: int = 0, noise: float = 0.0, progress: bool = False) -> dict[str, int]:
    """Write ``output/FORM/{train,test}.jsonl`` for each of ``forms`` and ``output/README.md``.

    ``n_train`` / ``n_test`` records per file (pairs, rankings, ratings or labels); ``seed`` is the task
    seed (test split: seed + TEST_SEED_OFFSET); ``noise`` is σ of the module docstring; ``progress`` shows a
    bar over the files. Returns {path relative to output: records written}.
    """
    from tqdm.auto import tqdm

    check_args(n_train, n_test, forms, noise)
    output = Path(output)
    task = GoldTask(seed=seed)
    sizes = {"train": (n_train, seed), "test": (n_test, seed + TEST_SEED_OFFSET)}
    counts: dict[str, int] = {}
    files = [(form, split) for form in forms for split in sizes]
    for form, split in tqdm(files, desc="sample-data", unit="file", disable=not progress, dynamic_ncols=True):
        n, split_seed = sizes[split]
        records = MAKERS[form](task, n, split_seed, noise)
        to_jsonl(records, output / form / f"{split}.jsonl")
        counts[f"{form}/{split}.jsonl"] = len(records)
    (output / "README.md").write_text(describe(task, counts, noise), encoding="utf-8")
    return counts


def describe(task: GoldTask, counts: dict[str, int], noise: float) -> str:
    """The README.md of a sample-data folder: each file, its fields, and how it was made."""
    forms = list(dict.fromkeys(path.split("/")[0] for path in counts))
    lines = [
        "# Sample preference data of rewardlab's built-in task",
        "",
        "Made by `rewardlab sample-data` (its settings are in `rewardlab_config.yaml` beside this file when written by "
        f"the command line). Prompts ask about one of {task.n_topics} topics; responses are plain English sentences of "
        f"{task.min_words}–{task.max_words} words. Every label comes from the task's **gold reward** g, a formula over "
        f"the response's words: mean sentiment, relevance to the prompt's topic, and closeness to {task.target_words} "
        "words (`rewardlab/tasks/gold.py`; g has mean ≈ 0 and std ≈ 1 over random responses).",
        "",
        f"- task seed: {task.seed} (training split); test split: seed {task.seed + TEST_SEED_OFFSET} (held out: its own draws)",
        f"- label noise σ = {noise:g}" + (" (every label agrees with the gold)" if noise == 0 else
                                          " (the test split is labelled with the same noise)"),
        "",
        "| folder | records | each record | fields |",
        "|---|---|---|---|",
    ]
    for form in forms:
        about, fields = _ABOUT[form]
        n = ", ".join(f"{split}.jsonl: {counts[f'{form}/{split}.jsonl']}" for split in SPLITS)
        lines.append(f"| `{form}/` | {n} | {about} | {fields} |")
    lines += ["", "How each form is labelled from the gold g with noise σ:", ""]
    lines += [f"- {form}: {_NOISE[form]}" for form in forms]
    lines += [
        "",
        "Each file is JSON lines that `rewardlab train --data FILE` and `rewardlab eval --data FILE` read. The loss",
        "names the form it trains on (`--loss bt`: pairs, `plackett_luce`: rankings, `mse`: ratings, `bce`: labels;",
        "`rewardlab losses list`); `eval` reads pairs unless given `--form`. Written again with the same settings,",
        "every file is identical.",
        "",
    ]
    return "\n".join(lines)
