"""Data of a loss study: every data form labelled from the same gold, on the same responses.

Notation: P prompts, K responses per prompt (``ranking_k``, default 4), N = P·K responses,
g gold reward (``rewardlab.tasks.gold``), ℓ response length in words, s = 10 words (the labelers'
length scale), n* the gold's target length, ε flip rate, λ length bias.

Budget rule (equal footing). A run's training-set size n is a number of *labelled responses*.
One pool of P = n / K prompts with K responses each (uniform random quality, drawn by
``GoldTask.best_of_n_candidates`` with the run's seed) is labelled in each loss family's form:

    form       what is labelled                       examples from n responses
    pairs      (r_0, r_1), (r_2, r_3), … per prompt    n / 2 pairs
    rankings   the K responses of each prompt           n / K rankings
    ratings    every response                           n ratings
    labels     every response (good / bad)              n labels

so all losses of a seed see exactly the same texts and the same gold, and differ only in the
form of the labels (and in what the loss makes of them).

Noise, with one meaning of ε for every form — the share of the comparisons implied by the labels
that disagree with the labeler's utility u = g + λ·ℓ/s:

    pairs      Bradley–Terry labeler at T = 0 on u (``tasks.labeler.label_pair``), each label then
               flipped with probability ε.
    rankings   sorted by u (``plackett_luce_ranks`` at T = 0); with probability 2ε the ranking is
               replaced by a uniformly random permutation (each implied pair is then wrong with
               probability ½, so ε overall; at K = 2 this is exactly the pair labeler).
    ratings    score = g + λ·(ℓ − n*)/s (as ``GoldTask.make_ratings``); with probability
               p = 2 − √(4 − 6ε) a score is replaced by the score of a uniformly drawn response
               of the pool. A pair with one replaced score is wrong with probability
               E[2U(1 − U)] = 1/3 (U = the rank of the kept score, uniform), with both replaced ½, so
               ε(p) = 2p(1 − p)/3 + p²/2 = 2p/3 − p²/6, solved for p (ε = 0.3 → p = 0.517; ε → ½: p → 1).
    labels     label = 1[g + λ·(ℓ − n*)/s > 0] (as ``GoldTask.make_labels``), flipped with
               probability ε (a label is one comparison with the threshold).

The test set is a separate pool (``test_seed``) of ``test_prompts`` prompts × ``candidates``
responses: best-of-N draws from its candidates, and its consecutive responses (0, 1), (2, 3), …
form the held-out pairs for accuracy and calibration.

User data (``load_user_data``): pairs or rankings from a file, split once into train / test by a
seeded permutation; ε then flips training labels on top of the human ones (synthetic extra noise),
and there is no gold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from rewardlab.data.convert import rankings_to_pairs
from rewardlab.data.formats import load_records
from rewardlab.data.render import render
from rewardlab.tasks.gold import MARGIN_BUCKETS, MARGIN_MODES, GoldTask
from rewardlab.tasks.labeler import DEFAULT_LENGTH_SCALE, label_pair, plackett_luce_ranks
from rewardlab.types import LabelRecord, PairRecord, RankRecord, RatingRecord

FORMS = ("pairs", "rankings", "ratings", "labels")
_FORM_STREAM = {"pairs": 11, "rankings": 12, "ratings": 13, "labels": 14, "test": 15, "user": 16}
LABEL_THRESHOLD = 0.0
"""Gold threshold of a good label (g has mean ≈ 0, so labels are about balanced)."""


@dataclass(frozen=True)
class Pool:
    """P prompts with K responses each and their gold; flat index i = p·K + k."""

    prompts: tuple  # (P,) str
    responses: tuple  # (P·K,) str, row-major
    gold: np.ndarray  # (P, K)
    n_words: np.ndarray  # (P, K)

    @property
    def shape(self) -> tuple[int, int]:
        return self.gold.shape

    def pairs_of_texts(self) -> list[tuple]:
        """(prompt, response) of every response, flat (P·K,)."""
        k = self.gold.shape[1]
        return [(self.prompts[i // k], r) for i, r in enumerate(self.responses)]


@dataclass
class FormData:
    """Labelled training (or test) data of one form, as indices into a flat list of texts.

    pairs:    index (B, 2) [chosen, rejected]; margin (B,); tie (B,) bool
    rankings: index (G, K); ranks (G, K) float, 1 = best
    ratings:  index (N,); target (N,) score
    labels:   index (N,); target (N,) 0 / 1
    ``records`` are the same examples as rewardlab records (for full / LoRA training);
    ``agreement`` is the share of implied comparisons (labels: of labels) that agree with the gold
    (None without gold).
    """

    form: str
    texts: list  # (T,) (prompt, response)
    index: np.ndarray
    records: list
    margin: np.ndarray | None = None
    tie: np.ndarray | None = None
    ranks: np.ndarray | None = None
    target: np.ndarray | None = None
    agreement: float | None = None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.index)


@lru_cache(maxsize=1)
def default_task() -> GoldTask:
    """The built-in task with its default config (the study's gold)."""
    return GoldTask()


@lru_cache(maxsize=16)
def task_pool(n_prompts: int, k: int, seed: int) -> Pool:
    """P = ``n_prompts`` prompts × ``k`` responses of uniform random quality (deterministic by seed)."""
    if n_prompts < 1 or k < 2:
        raise ValueError(f"need n_prompts >= 1 and k >= 2, got {n_prompts}, {k}")
    task = default_task()
    rows = task.best_of_n_candidates(n_prompts, k, seed=seed)
    prompts = tuple(p for p, _, _ in rows)
    responses = tuple(r for _, rs, _ in rows for r in rs)
    terms = task.gold_terms_many([p for p in prompts for _ in range(k)], list(responses))
    return Pool(prompts, responses, terms.gold.reshape(n_prompts, k), terms.n_words.reshape(n_prompts, k))


def label_rng(seed: int, form: str, flip_rate: float, length_bias: float) -> np.random.Generator:
    """Seeded stream of one labeler: (seed, form, ε, λ) → generator (ε, λ in millionths)."""
    return np.random.default_rng([int(seed), _FORM_STREAM[form], int(round(flip_rate * 1e6)), int(round(length_bias * 1e6))])


def _margins(gap: np.ndarray, tie: np.ndarray, mode: str) -> np.ndarray:
    """Pair margins from the gold gap |Δg| as ``GoldTask.make_pairs`` makes them ("none" → zeros)."""
    if mode == "gap":
        return np.where(tie, 0.0, gap)
    if mode == "bucket":
        return np.where(tie, 0.0, np.searchsorted(MARGIN_BUCKETS, gap, side="right") / 3.0)
    if mode == "none":
        return np.zeros_like(gap)
    raise ValueError(f"unknown margin mode {mode!r}; known: {', '.join(MARGIN_MODES)}")


def ratings_replace_rate(flip_rate: float) -> float:
    """p = 2 − √(4 − 6ε): the share of resampled ratings at which a share ε of rating pairs is misordered."""
    return float(2.0 - np.sqrt(4.0 - 6.0 * flip_rate))


def consecutive_pairs(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the pairs (0, 1), (2, 3), … within each prompt of a (P, K) pool; K even."""
    p, k = shape
    if k % 2:
        raise ValueError(f"pairs need an even number of responses per prompt, got {k}")
    flat = np.arange(p * k).reshape(p, k)
    return flat[:, 0::2].ravel(), flat[:, 1::2].ravel()  # (P·K/2,) each


def label_pool(pool: Pool, form: str, flip_rate: float, length_bias: float, seed: int, *, margin: str = "bucket",
               length_scale: float = DEFAULT_LENGTH_SCALE) -> FormData:
    """Label a pool in ``form`` with flip rate ε and length bias λ (see the module docstring)."""
    if form not in FORMS:
        raise ValueError(f"unknown data form {form!r}; known: {', '.join(FORMS)}")
    if not 0.0 <= flip_rate < 0.5:
        raise ValueError(f"flip_rate must lie in [0, 0.5), got {flip_rate}")
    rng = label_rng(seed, form, flip_rate, length_bias)
    g, n_words = pool.gold.ravel(), pool.n_words.ravel().astype(float)  # (N,)
    texts = pool.pairs_of_texts()
    n_star = default_task().target_words
    if form == "pairs":
        a, b = consecutive_pairs(pool.shape)
        a_pref, tie = label_pair(g[a], g[b], n_words[a], n_words[b], rng, flip_rate=flip_rate,
                                 length_bias=length_bias, length_scale=length_scale)  # (B,) each
        chosen, rejected = np.where(a_pref, a, b), np.where(a_pref, b, a)  # (B,)
        m = _margins(np.abs(g[a] - g[b]), tie, margin)
        strict = ~tie
        agree = float(np.mean(g[chosen][strict] > g[rejected][strict])) if strict.any() else None
        records = [PairRecord(texts[c][0], texts[c][1], texts[r][1], margin=float(mm), tie=bool(t), source=f"study:pairs:{i}")
                   for i, (c, r, mm, t) in enumerate(zip(chosen.tolist(), rejected.tolist(), m.tolist(), tie.tolist()))]
        return FormData(form, texts, np.stack([chosen, rejected], 1), records, margin=m, tie=tie, agreement=agree)
    if form == "rankings":
        p, k = pool.shape
        u = pool.gold + length_bias * pool.n_words / length_scale  # (P, K)
        ranks = plackett_luce_ranks(u, rng, 0.0).astype(float)  # (P, K)
        shuffled = rng.random(p) < 2.0 * flip_rate  # (P,)
        random_ranks = rng.permuted(np.tile(np.arange(1.0, k + 1.0), (p, 1)), axis=1)  # (P, K)
        ranks = np.where(shuffled[:, None], random_ranks, ranks)
        better_gold = pool.gold[:, :, None] > pool.gold[:, None, :]  # (P, K, K)
        better_label = ranks[:, :, None] < ranks[:, None, :]  # (P, K, K)
        agree = float((better_gold & better_label).sum() / max(1, better_gold.sum()))
        index = np.arange(p * k).reshape(p, k)
        records = [RankRecord(pool.prompts[i], tuple(pool.responses[i * k:(i + 1) * k]), tuple(ranks[i].tolist()),
                              source=f"study:rankings:{i}") for i in range(p)]
        return FormData(form, texts, index, records, ranks=ranks, agreement=agree)
    bias = length_bias * (n_words - n_star) / length_scale  # (N,)
    if form == "ratings":
        score = g + bias  # (N,)
        p_replace = ratings_replace_rate(flip_rate)
        replace = rng.random(len(g)) < p_replace  # (N,)
        donor = rng.integers(0, len(g), size=len(g))  # (N,)
        score = np.where(replace, score[donor], score)
        a, b = consecutive_pairs(pool.shape)
        distinct = g[a] != g[b]
        agree = float(np.mean(np.sign(score[a] - score[b])[distinct] == np.sign(g[a] - g[b])[distinct]))
        records = [RatingRecord(t[0], t[1], score=float(s), source=f"study:ratings:{i}") for i, (t, s) in enumerate(zip(texts, score.tolist()))]
        return FormData(form, texts, np.arange(len(g)), records, target=score, agreement=agree)
    label = ((g + bias) > LABEL_THRESHOLD) ^ (rng.random(len(g)) < flip_rate)  # (N,) bool
    agree = float(np.mean(label == (g > LABEL_THRESHOLD)))
    records = [LabelRecord(t[0], t[1], int(y), source=f"study:labels:{i}") for i, (t, y) in enumerate(zip(texts, label.tolist()))]
    return FormData(form, texts, np.arange(len(g)), records, target=label.astype(float), agreement=agree)


def held_out_pairs(pool: Pool, flip_rate: float, length_bias: float, test_seed: int) -> dict:
    """Held-out pairs of the test pool: gold order, and the order the study's noisy labeler gives.

    Returns {"gold": (B, 2) flat indices [better, worse] by gold (gold ties left out),
    "labels": (B, 2) [chosen, rejected] by the labeler with (ε, λ)} — the same B pairs in both.
    """
    a, b = consecutive_pairs(pool.shape)
    g, n_words = pool.gold.ravel(), pool.n_words.ravel().astype(float)
    a_pref, _ = label_pair(g[a], g[b], n_words[a], n_words[b], label_rng(test_seed, "test", flip_rate, length_bias),
                           flip_rate=flip_rate, length_bias=length_bias)
    keep = g[a] != g[b]
    a, b, a_pref = a[keep], b[keep], a_pref[keep]
    better = g[a] > g[b]
    gold = np.stack([np.where(better, a, b), np.where(better, b, a)], 1)  # (B, 2)
    labels = np.stack([np.where(a_pref, a, b), np.where(a_pref, b, a)], 1)  # (B, 2)
    return {"gold": gold, "labels": labels}


# --------------------------------------------------------------------------- user data


def _text_words(text) -> int:
    """Length in words of a response: whitespace tokens of its text (chat: of its messages' content)."""
    if isinstance(text, str):
        return len(text.split())
    return sum(len(str(m.get("content", "")).split()) for m in text)


def _key(prompt, response) -> str:
    import json

    return json.dumps([prompt, response], sort_keys=True)


@dataclass
class UserData:
    """A user's preference data split once into train / test records (pairs or rankings); ``n_skipped`` bad records
    were skipped (``on_bad_record="skip"``), the first of them described in ``skipped``."""

    form: str
    train: list
    test: list
    source: str
    n_loaded: int
    n_skipped: int = 0
    skipped: list = field(default_factory=list)


def load_user_data(source: str, form: str, columns: dict, test_fraction: float, seed: int,
                   on_bad_record: str = "error") -> UserData:
    """Load pairs or rankings from ``source`` (``data.formats.load_records``: a bad record is a DataError naming file,
    line and field, or with ``on_bad_record="skip"`` a counted skip) and split them by a permutation seeded with ``seed``."""
    if form not in ("pairs", "rankings"):
        raise ValueError(f"a study on user data takes pairs or rankings (human comparisons), got data form {form!r}")
    records, report = load_records(source, form=form, columns=columns or None, on_bad_record=on_bad_record)
    if len(records) < 4:
        skipped = f", {report.n_skipped} skipped as bad (the first: {report.skipped[0]})" if report.n_skipped else ""
        raise ValueError(f"{source}: {len(records)} records loaded{skipped}; a study needs at least 4")
    perm = np.random.default_rng([int(seed), _FORM_STREAM["user"]]).permutation(len(records))
    n_test = max(1, int(round(test_fraction * len(records))))
    test = [records[i] for i in sorted(perm[:n_test].tolist())]
    train = [records[i] for i in sorted(perm[n_test:].tolist())]
    return UserData(form, train, test, str(source), report.n_loaded, report.n_skipped, list(report.skipped))


def responses_per_example(form: str, k: int) -> int:
    return 2 if form == "pairs" else k


def user_train_data(data: UserData, form: str, n: int, flip_rate: float, seed: int) -> FormData:
    """The run's training data from user records: a seeded subsample of n labelled responses (0 = all),
    in ``form`` (rankings become pairs for pairwise losses, ``data.convert.rankings_to_pairs``), with
    labels flipped at rate ε (pairs: swapped; rankings: a random permutation with probability 2ε)."""
    rng = np.random.default_rng([int(seed), _FORM_STREAM["user"], int(round(flip_rate * 1e6))])
    records = list(data.train)
    size = sum(len(r.responses) if isinstance(r, RankRecord) else 2 for r in records)
    if n:
        if n > size:
            raise ValueError(f"train size {n} labelled responses, but the training split of {data.source} has {size}; "
                             f"pass --train-sizes 0 to use all of it")
        order = rng.permutation(len(records))
        chosen, total = [], 0
        for i in order.tolist():
            if total >= n:
                break
            chosen.append(i)
            total += len(records[i].responses) if isinstance(records[i], RankRecord) else 2
        records = [records[i] for i in sorted(chosen)]
    if data.form == "rankings":
        flip = rng.random(len(records)) < 2.0 * flip_rate
        records = [RankRecord(r.prompt, r.responses, tuple(rng.permutation(np.asarray(r.ranks, float)).tolist()), r.source) if f else r
                   for r, f in zip(records, flip.tolist())]
        if form == "pairs":
            records = rankings_to_pairs(records)
    elif form != "pairs":
        raise ValueError(f"user data of form pairs cannot train a loss on {form}; losses on pairs only (or give rankings)")
    else:
        flip = rng.random(len(records)) < flip_rate
        records = [PairRecord(r.prompt, r.rejected, r.chosen, r.margin, r.tie, r.source) if f else r
                   for r, f in zip(records, flip.tolist())]
    return records_to_form(records, form)


def records_to_form(records: list, form: str) -> FormData:
    """Index pairs or rankings records into a flat text table (for head features)."""
    texts, where = [], {}

    def slot(prompt, response) -> int:
        key = _key(prompt, response)
        if key not in where:
            where[key] = len(texts)
            texts.append((prompt, response))
        return where[key]

    if form == "pairs":
        index = np.array([[slot(r.prompt, r.chosen), slot(r.prompt, r.rejected)] for r in records], dtype=np.int64).reshape(-1, 2)
        margin = np.array([0.0 if r.margin is None else float(r.margin) for r in records])
        tie = np.array([bool(r.tie) for r in records], dtype=bool)
        return FormData(form, texts, index, records, margin=margin, tie=tie)
    k = max(len(r.responses) for r in records)
    if any(len(r.responses) != k for r in records):
        raise ValueError("the study's head training needs rankings of one size K; these vary in size")
    index = np.array([[slot(r.prompt, x) for x in r.responses] for r in records], dtype=np.int64)
    ranks = np.array([list(map(float, r.ranks)) for r in records])
    return FormData(form, texts, index, records, ranks=ranks)


def user_held_out_pairs(data: UserData) -> FormData:
    """Held-out human comparisons as pairs (rankings: every strictly ordered pair); ties left out."""
    records = data.test if data.form == "pairs" else rankings_to_pairs(data.test)
    records = [r for r in records if not r.tie]
    if not records:
        raise ValueError(f"{data.source}: the test split has no strict comparisons")
    out = records_to_form(records, "pairs")
    out.extra["n_words"] = np.array([_text_words(resp) for _, resp in out.texts], dtype=float)
    return out


def rendered(texts: list, tokenizer=None) -> list[str]:
    """The strings a backbone reads for (prompt, response) texts (``data.render.render``)."""
    return [render(p, r, tokenizer) for p, r in texts]
