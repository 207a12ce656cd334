"""The built-in preference task: generated prompts and responses, and a programmatic gold reward.

In the spirit of Gao, Schulman & Hilton 2022 ("Scaling Laws for Reward Model Overoptimization"):
a gold reward labels the data that a proxy reward model learns from, so anything learned from the
data (accuracy, best-of-N gains, overoptimisation) can be checked against the truth. Here the gold
is a short formula over the response's words, cheap enough for a CPU and readable by a person.

Notation (per response): n words (lower-case alphabetic tokens), v(w) VADER valence of word w
(0 when absent from the lexicon; Hutto & Gilbert 2014), n_on words from the prompt's topic,
n_off words from other topics, n* target length, w length width.

    S   = Σ_w v(w) / n                              sentiment: mean valence of the words (0 if n = 0)
    R   = (n_on − n_off) / (n_on + n_off + 1)       relevance, in (−1, 1): on-topic up, off-topic down
    L   = exp(−(n − n*)² / (2 w²))                  length: peaks at n = n*, falls on both sides
    raw = w_S·S + w_R·R + w_L·L
    g   = (raw − offset) / scale                    gold reward; offset, scale = mean, std of raw

offset and scale are measured once per task config on 4,000 responses drawn with a fixed seed
(independent of ``GoldTask.seed``), so g has mean ≈ 0 and std ≈ 1 over random responses and is a
pure function of (prompt, response) for a given config. Defaults: n* = 20, w = 10,
w_S = 3, w_R = 1, w_L = 1 (each term then moves g by a similar amount).

Because L is not monotone in n, longer is not better: a labeler's length bias (see
:mod:`rewardlab.tasks.labeler`) is a spurious signal, not part of the gold.

Prompts look like ``"Question: What do you think of coffee?\\nAnswer:"``; responses are 8–60 words
of plain English sentences varying in sentiment, relevance, length and filler, drawn with a
``quality`` knob in [0, 1] (1 = positive, on-topic, near n* words, no filler).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple, Sequence

import numpy as np

from rewardlab.tasks import vocab
from rewardlab.tasks.labeler import DEFAULT_LENGTH_SCALE, label_pair, plackett_luce_ranks
from rewardlab.types import LabelRecord, PairRecord, RankRecord, RatingRecord

CALIBRATION_SEED = 20220601
CALIBRATION_SIZE = 4000
OFF_TOPIC_SHARE = 0.6
"""Of the nouns that are not on-topic, the share drawn from other topics (the rest are generic)."""
MARGIN_MODES = ("gap", "bucket", "none")
MARGIN_BUCKETS = (0.25, 0.75, 1.5)
"""|Δg| thresholds of the bucketed margin 0, 1/3, 2/3, 1 (Llama 2's "small" margin scale for
negligibly / slightly / clearly / significantly better; Touvron et al. 2023)."""
_STREAMS = {"prompts": 1, "pairs": 2, "rankings": 3, "ratings": 4, "labels": 5, "best_of_n": 6, "calibration": 7}


class GoldTerms(NamedTuple):
    """The gold reward of N responses and the terms it is made of (see the module docstring)."""

    sentiment: np.ndarray  # (N,) S, mean VADER valence per word
    relevance: np.ndarray  # (N,) R in (−1, 1)
    length: np.ndarray  # (N,) L in (0, 1]
    n_words: np.ndarray  # (N,) int
    raw: np.ndarray  # (N,) w_S·S + w_R·R + w_L·L
    gold: np.ndarray  # (N,) (raw − offset) / scale


@dataclass(frozen=True)
class _Template:
    text: str
    has_second_noun: bool
    verb: bool  # sentiment slot is {v} (else {a})
    n_words: int


def _parse_template(text: str) -> _Template:
    return _Template(text, "{m}" in text, "{v}" in text, len(vocab.words(text.replace("{", "").replace("}", ""))))


_TEMPLATES = tuple(_parse_template(t) for t in vocab.TEMPLATES)
_PREFIX_WORDS = tuple(len(vocab.words(p)) for p in vocab.FILLER_PREFIXES)
_FILLER_WORDS = tuple(len(vocab.words(s)) for s in vocab.FILLER_SENTENCES)
_MAX_PART_WORDS = max(t.n_words for t in _TEMPLATES) + max(_PREFIX_WORDS)
_MIN_PART_WORDS = min(min(t.n_words for t in _TEMPLATES), min(_FILLER_WORDS))


def _pick(u: float, p_first: float, first: Sequence[str], rest: Sequence[str]) -> str:
    """Pick from ``first`` with probability p_first, else from ``rest``; u ~ U(0, 1) also picks the index."""
    if u < p_first:
        lst, r = first, u / p_first
    else:
        lst, r = rest, (u - p_first) / (1.0 - p_first)
    return lst[min(int(r * len(lst)), len(lst) - 1)]


@dataclass(frozen=True)
class GoldTask:
    """Config and generator of the built-in preference task (see the module docstring for the gold)."""

    seed: int = 0
    """Default seed of every generator method (each method draws from its own stream of it)."""
    n_topics: int = 10
    """Topics prompts are drawn from: the first n_topics of ``vocab.TOPICS`` (2–12)."""
    min_words: int = 8
    """Shortest response, in words."""
    max_words: int = 60
    """Longest response, in words."""
    target_words: int = 20
    """n*: the length at which the gold's length term peaks."""
    length_width: float = 10.0
    """w: width (std) of the Gaussian length term, in words."""
    w_sentiment: float = 3.0
    """w_S: weight of the mean-valence term S."""
    w_relevance: float = 1.0
    """w_R: weight of the relevance term R."""
    w_length: float = 1.0
    """w_L: weight of the length term L."""
    attribute_spread: float = 0.25
    """Std of each attribute's own quality around a response's quality (0 = attributes move together)."""

    def __post_init__(self) -> None:
        if not 2 <= self.n_topics <= len(vocab.TOPICS):
            raise ValueError(f"n_topics must lie in [2, {len(vocab.TOPICS)}], got {self.n_topics}")
        if self.min_words < 1 or self.max_words - self.min_words < _MAX_PART_WORDS:
            raise ValueError(
                f"need min_words >= 1 and max_words - min_words >= {_MAX_PART_WORDS} (longest sentence), "
                f"got min_words={self.min_words}, max_words={self.max_words}"
            )
        if not self.min_words <= self.target_words <= self.max_words:
            raise ValueError(f"target_words must lie in [min_words, max_words], got {self.target_words}")
        if self.length_width <= 0:
            raise ValueError(f"length_width must be > 0, got {self.length_width}")
        if self.attribute_spread < 0:
            raise ValueError(f"attribute_spread must be >= 0, got {self.attribute_spread}")
        vocab.check_vocabulary()

    # ------------------------------------------------------------------ vocabulary and topics
    @property
    def topics(self) -> tuple[vocab.Topic, ...]:
        """The topics prompts are drawn from."""
        return vocab.TOPICS[: self.n_topics]

    @cached_property
    def _keyword_topic(self) -> dict[str, int]:
        return {w: i for i, t in enumerate(vocab.TOPICS) for w in t.keywords}

    @cached_property
    def _off_nouns(self) -> list[tuple[str, ...]]:
        """Per active topic: the nouns of the other active topics."""
        return [tuple(w for j, o in enumerate(self.topics) if j != i for w in o.nouns) for i in range(self.n_topics)]

    @cached_property
    def _prompt_topic_cache(self) -> dict[str, int]:
        return {}

    def topic_index(self, prompt: str) -> int:
        """Index into ``vocab.TOPICS`` of the topic a prompt names; ValueError when none or several."""
        if not isinstance(prompt, str):
            raise TypeError(f"the gold task scores plain-text prompts, got {type(prompt).__name__}")
        cache = self._prompt_topic_cache
        if prompt in cache:
            return cache[prompt]
        found = {self._keyword_topic[w] for w in vocab.words(prompt) if w in self._keyword_topic}
        if len(found) != 1:
            known = ", ".join(t.name for t in vocab.TOPICS)
            what = "no topic" if not found else f"several topics {sorted(vocab.TOPICS[i].name for i in found)}"
            raise ValueError(f"prompt names {what}: {prompt!r}; known topics: {known}")
        topic = found.pop()
        if len(cache) < 100_000:  # task prompts are a few hundred strings; bound the cache for others
            cache[prompt] = topic
        return topic

    def topic_of(self, prompt: str) -> str:
        """Name of the topic a prompt names (e.g. ``"coffee"``)."""
        return vocab.TOPICS[self.topic_index(prompt)].name

    # ------------------------------------------------------------------ gold reward
    def _raw_terms(self, prompts: Sequence[str], responses: Sequence[str]) -> tuple[np.ndarray, ...]:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        lex, owner = vocab.vader_lexicon(), self._keyword_topic
        n = len(responses)
        valence, n_words, n_on, n_off = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)  # (N,) each
        for i, (prompt, response) in enumerate(zip(prompts, responses)):
            topic = self.topic_index(prompt)
            if not isinstance(response, str):
                raise TypeError(f"the gold task scores plain-text responses, got {type(response).__name__}")
            toks = vocab.words(response)
            n_words[i] = len(toks)
            valence[i] = sum(lex.get(w, 0.0) for w in toks)
            for w in toks:
                t = owner.get(w)
                if t is not None:
                    if t == topic:
                        n_on[i] += 1
                    else:
                        n_off[i] += 1
        sentiment = np.divide(valence, n_words, out=np.zeros(n), where=n_words > 0)  # (N,)
        relevance = (n_on - n_off) / (n_on + n_off + 1.0)  # (N,)
        length = np.exp(-((n_words - self.target_words) ** 2) / (2.0 * self.length_width**2))  # (N,)
        raw = self.w_sentiment * sentiment + self.w_relevance * relevance + self.w_length * length  # (N,)
        return sentiment, relevance, length, n_words.astype(int), raw

    @cached_property
    def calibration(self) -> dict[str, float]:
        """offset and scale of g (mean and std of raw over CALIBRATION_SIZE random responses drawn
        with CALIBRATION_SEED), plus the std of each term (used to scale attribute noise)."""
        rng = np.random.default_rng([CALIBRATION_SEED, _STREAMS["calibration"]])
        prompts, topics = self._sample_prompts(CALIBRATION_SIZE, rng)
        responses = self._generate(topics, rng.random(CALIBRATION_SIZE), rng)
        s, r, length, _, raw = self._raw_terms(prompts, responses)
        return {
            "offset": float(raw.mean()),
            "scale": float(raw.std()),
            "std_sentiment": float(s.std()),
            "std_relevance": float(r.std()),
            "std_length": float(length.std()),
        }

    def gold_terms_many(self, prompts: Sequence[str], responses: Sequence[str]) -> GoldTerms:
        """The gold reward of each (prompt, response) and its terms, as (N,) arrays."""
        s, r, length, n_words, raw = self._raw_terms(prompts, responses)
        cal = self.calibration
        return GoldTerms(s, r, length, n_words, raw, (raw - cal["offset"]) / cal["scale"])

    def gold_many(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """g for each pair of strings; (N,) float."""
        return self.gold_terms_many(prompts, responses).gold

    def gold(self, prompt: str, response: str) -> float:
        """g(prompt, response): the gold reward of one response (std ≈ 1 over random responses)."""
        return float(self.gold_many([prompt], [response])[0])

    def length_term(self, n_words: np.ndarray | int) -> np.ndarray:
        """L(n) = exp(−(n − n*)² / (2 w²)), maximal (= 1) at n = n* = ``target_words``."""
        return np.exp(-((np.asarray(n_words, dtype=float) - self.target_words) ** 2) / (2.0 * self.length_width**2))

    # ------------------------------------------------------------------ generation
    def _rng(self, stream: str, seed: int | None) -> np.random.Generator:
        return np.random.default_rng([self.seed if seed is None else seed, _STREAMS[stream]])

    def _sample_prompts(self, n: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
        topics = rng.integers(0, self.n_topics, size=n)  # (n,)
        forms = rng.integers(0, len(vocab.PROMPT_TEMPLATES), size=n)  # (n,)
        prompts = [
            vocab.PROMPT_FORMAT.format(q=vocab.PROMPT_TEMPLATES[f].format(p=self.topics[t].phrase))
            for t, f in zip(topics.tolist(), forms.tolist())
        ]
        return prompts, topics

    def prompts(self, n: int, seed: int | None = None) -> list[str]:
        """n prompts, topic and wording uniform; ``seed`` defaults to the task's seed."""
        return self._sample_prompts(n, self._rng("prompts", seed))[0]

    def _generate(self, topics: np.ndarray, quality: np.ndarray, rng: np.random.Generator) -> list[str]:
        """One response per entry of ``topics`` (indices of active topics) at the given quality (N,).

        Per response, each attribute gets its own quality q_x = clip(q + spread·N(0, 1), 0, 1):
        sentiment words are positive with prob 0.05 + 0.9·q_S; nouns are on-topic with prob
        0.1 + 0.85·q_R (else 60 % off-topic, 40 % generic); a sentence gets filler (a prefix or a
        filler sentence) with prob 0.5·(1 − q_F); and the target length moves from n* (q_F = 1) to a
        draw with median n* (q_F = 0): uniform on [min_words, n*] or on [n*, max_words], each half the
        time. Sentences are added until the target is reached.
        """
        n = len(topics)
        z = rng.standard_normal((n, 4))  # (n, 4)
        q = np.clip(np.asarray(quality, dtype=float)[:, None] + self.attribute_spread * z[:, :3], 0.0, 1.0)  # (n, 3)
        p_pos = (0.05 + 0.90 * q[:, 0]).tolist()
        p_on = (0.10 + 0.85 * q[:, 1]).tolist()
        p_fill = (0.50 * (1.0 - q[:, 2])).tolist()
        u_len = rng.random(n)  # (n,) half below n*, half above: length alone says nothing of quality
        lo, mid, hi = self.min_words, self.target_words, self.max_words
        wild = np.where(u_len < 0.5, lo + 2.0 * u_len * (mid - lo), mid + (2.0 * u_len - 1.0) * (hi - mid))  # (n,)
        target = self.target_words + (1.0 - q[:, 2]) * (wild - self.target_words) + 2.0 * z[:, 3]
        target = np.clip(np.rint(target), self.min_words, self.max_words).astype(int).tolist()
        max_parts = self.max_words // _MIN_PART_WORDS + 2
        uniforms = rng.random((n, max_parts, 7))  # (n, parts, 7)

        generic = vocab.GENERIC_NOUNS
        pos_adj, neg_adj = vocab.POSITIVE_ADJECTIVES, vocab.NEGATIVE_ADJECTIVES
        pos_verb, neg_verb = vocab.POSITIVE_VERBS, vocab.NEGATIVE_VERBS
        n_fill, n_pre, n_tmpl = len(vocab.FILLER_SENTENCES), len(vocab.FILLER_PREFIXES), len(_TEMPLATES)
        out: list[str] = []
        for i, t in enumerate(topics.tolist()):
            on, off = self.topics[t].nouns, self._off_nouns[t]
            parts: list[str] = []
            counts: list[int] = []
            total = 0
            for u0, u1, u2, u3, u4, u5, u6 in uniforms[i].tolist():
                if total >= target[i]:
                    break
                prefix, n_prefix = "", 0
                if u0 < p_fill[i] and u1 < 0.5:  # a filler sentence instead of content
                    k = min(int(u2 * n_fill), n_fill - 1)
                    parts.append(vocab.FILLER_SENTENCES[k])
                    counts.append(_FILLER_WORDS[k])
                    total += _FILLER_WORDS[k]
                    continue
                if u0 < p_fill[i]:  # a filler prefix before the content sentence
                    k = min(int(u2 * n_pre), n_pre - 1)
                    prefix, n_prefix = vocab.FILLER_PREFIXES[k], _PREFIX_WORDS[k]
                tmpl = _TEMPLATES[min(int(u3 * n_tmpl), n_tmpl - 1)]
                noun = self._noun(u4, p_on[i], on, off, generic)
                second = ""
                if tmpl.has_second_noun:
                    second = self._noun(u5, p_on[i], on, off, generic)
                    if second == noun:  # never "the sand and the sand"
                        second = generic[min(int(u5 * len(generic)), len(generic) - 1)]
                        if second == noun:
                            second = generic[(generic.index(second) + 1) % len(generic)]
                if tmpl.verb:
                    word = _pick(u6, p_pos[i], pos_verb, neg_verb)
                else:
                    word = _pick(u6, p_pos[i], pos_adj, neg_adj)
                sentence = tmpl.text.format(n=noun, m=second, a=word, v=word)
                if prefix:
                    if not sentence.startswith("I "):
                        sentence = sentence[0].lower() + sentence[1:]
                    sentence = prefix + " " + sentence
                parts.append(sentence)
                counts.append(tmpl.n_words + n_prefix)
                total += counts[-1]
            while total > self.max_words and len(parts) > 1:
                total -= counts.pop()
                parts.pop()
            out.append(" ".join(parts))
        return out

    @staticmethod
    def _noun(u: float, p_on: float, on: Sequence[str], off: Sequence[str], generic: Sequence[str]) -> str:
        """On-topic with prob p_on, else off-topic (share OFF_TOPIC_SHARE) or generic; u also picks the word."""
        if u < p_on:
            return _pick(u, p_on, on, on)
        r = (u - p_on) / (1.0 - p_on)
        return _pick(r, OFF_TOPIC_SHARE, off, generic)

    def _quality(
        self, quality: float | Sequence[float] | np.ndarray | None, n: int, rng: np.random.Generator
    ) -> np.ndarray:
        if quality is None:
            return rng.random(n)  # (n,)
        q = np.broadcast_to(np.asarray(quality, dtype=float), (n,)).copy()
        if np.any((q < 0) | (q > 1)) or np.any(np.isnan(q)):
            raise ValueError("quality must lie in [0, 1]")
        return q

    def sample_responses(
        self,
        prompt: str,
        n: int,
        rng: np.random.Generator,
        quality: float | Sequence[float] | np.ndarray | None = None,
    ) -> list[str]:
        """n responses to ``prompt``; ``quality`` in [0, 1] (scalar or (n,)), None = uniform per response.

        Quality 1 gives positive, on-topic responses near the target length without filler; quality
        0 negative, mostly off-topic, filler-laden responses of random length.
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        t = self.topic_index(prompt)
        if t >= self.n_topics:
            raise ValueError(f"topic {vocab.TOPICS[t].name!r} is not among this task's {self.n_topics} topics")
        return self._generate(np.full(n, t), self._quality(quality, n, rng), rng)

    # ------------------------------------------------------------------ datasets
    def make_pairs(
        self,
        n: int,
        *,
        seed: int | None = None,
        temperature: float = 0.0,
        flip_rate: float = 0.0,
        tie_gap: float = 0.0,
        length_bias: float = 0.0,
        length_scale: float = DEFAULT_LENGTH_SCALE,
        margin: str = "gap",
        quality: float | None = None,
    ) -> tuple[list[PairRecord], dict[str, np.ndarray]]:
        """n preference pairs labelled by :func:`~rewardlab.tasks.labeler.label_pair` from the gold.

        Each pair: a random prompt, two responses of independent quality (uniform unless given).
        ``margin``: "gap" = |g_chosen − g_rejected|, "bucket" = 0, 1/3, 2/3, 1 by |Δg| thresholds
        MARGIN_BUCKETS, "none" = no margin; ties get margin 0. Defaults give clean labels.

        info (all (n,)): ``gold_chosen``, ``gold_rejected``, ``len_chosen``, ``len_rejected``,
        ``tie``, ``agrees_with_gold`` (g_chosen > g_rejected; meaningful on non-ties), ``topic``.
        """
        if margin not in MARGIN_MODES:
            raise ValueError(f"unknown margin mode {margin!r}; known: {', '.join(MARGIN_MODES)}")
        rng = self._rng("pairs", seed)
        prompts, topics = self._sample_prompts(n, rng)
        responses = self._generate(np.repeat(topics, 2), self._quality(quality, 2 * n, rng), rng)
        terms = self.gold_terms_many(np.repeat(np.array(prompts, dtype=object), 2).tolist(), responses)
        g, length = terms.gold.reshape(n, 2), terms.n_words.reshape(n, 2)  # (n, 2) each
        a_pref, tie = label_pair(
            g[:, 0], g[:, 1], length[:, 0], length[:, 1], rng,
            temperature=temperature, flip_rate=flip_rate, tie_gap=tie_gap,
            length_bias=length_bias, length_scale=length_scale,
        )  # (n,) each
        ci = np.where(a_pref, 0, 1)  # (n,) column of the chosen response
        rows = np.arange(n)
        g_c, g_r = g[rows, ci], g[rows, 1 - ci]  # (n,)
        gap = np.abs(g_c - g_r)  # (n,)
        if margin == "gap":
            margins = np.where(tie, 0.0, gap).tolist()
        elif margin == "bucket":
            margins = np.where(tie, 0.0, np.searchsorted(MARGIN_BUCKETS, gap, side="right") / 3.0).tolist()
        else:
            margins = [None] * n
        ci_l, tie_l = ci.tolist(), tie.tolist()
        records = [
            PairRecord(
                prompt=prompts[i],
                chosen=responses[2 * i + ci_l[i]],
                rejected=responses[2 * i + 1 - ci_l[i]],
                margin=margins[i],
                tie=bool(tie_l[i]),
                source=f"gold-task:pairs:{i}",
            )
            for i in range(n)
        ]
        info = {
            "gold_chosen": g_c,
            "gold_rejected": g_r,
            "len_chosen": length[rows, ci],
            "len_rejected": length[rows, 1 - ci],
            "tie": tie,
            "agrees_with_gold": g_c > g_r,
            "topic": topics,
        }
        return records, info

    def tie_gap_for_rate(self, rate: float, n: int = 4000) -> float:
        """The tie_gap at which a fraction ``rate`` of random pairs are ties: the ``rate``-quantile of
        |g_a − g_b| over n calibration pairs (fixed seed)."""
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must lie in [0, 1), got {rate}")
        rng = np.random.default_rng([CALIBRATION_SEED, _STREAMS["pairs"]])
        prompts, topics = self._sample_prompts(n, rng)
        responses = self._generate(np.repeat(topics, 2), rng.random(2 * n), rng)
        g = self.gold_many(np.repeat(np.array(prompts, dtype=object), 2).tolist(), responses).reshape(n, 2)
        return float(np.quantile(np.abs(g[:, 0] - g[:, 1]), rate))

    def make_rankings(
        self,
        n: int,
        k: int = 4,
        *,
        seed: int | None = None,
        temperature: float = 0.0,
        length_bias: float = 0.0,
        length_scale: float = DEFAULT_LENGTH_SCALE,
        quality: float | None = None,
    ) -> tuple[list[RankRecord], dict[str, np.ndarray]]:
        """n prompts with k responses ranked by a Plackett–Luce labeler on u = g + λ·ℓ/s (T = 0: sorted).

        Ranks are 1 (best) … k. info: ``gold`` (n, k), ``ranks`` (n, k), ``gold_ranks`` (n, k) the
        noiseless ranks, ``pair_agreement`` (n,) share of the k(k−1)/2 pairs with distinct gold that
        the ranks order as the gold does, ``agrees_with_gold`` (n,) ranks == gold_ranks, ``topic`` (n,).
        """
        if k < 2:
            raise ValueError(f"k must be >= 2, got {k}")
        rng = self._rng("rankings", seed)
        prompts, topics = self._sample_prompts(n, rng)
        responses = self._generate(np.repeat(topics, k), self._quality(quality, n * k, rng), rng)
        terms = self.gold_terms_many(np.repeat(np.array(prompts, dtype=object), k).tolist(), responses)
        g, length = terms.gold.reshape(n, k), terms.n_words.reshape(n, k)  # (n, k) each
        ranks = plackett_luce_ranks(g + length_bias * length / length_scale, rng, temperature)  # (n, k)
        gold_ranks = plackett_luce_ranks(g, rng, 0.0)  # (n, k)
        better_gold = g[:, :, None] > g[:, None, :]  # (n, k, k)
        better_label = ranks[:, :, None] < ranks[:, None, :]  # (n, k, k)
        n_strict = better_gold.sum(axis=(1, 2))  # (n,)
        agree = (better_gold & better_label).sum(axis=(1, 2)) / np.maximum(n_strict, 1)  # (n,)
        rank_rows = ranks.tolist()
        records = [
            RankRecord(
                prompt=prompts[i],
                responses=tuple(responses[i * k : (i + 1) * k]),
                ranks=tuple(rank_rows[i]),
                source=f"gold-task:rankings:{i}",
            )
            for i in range(n)
        ]
        info = {
            "gold": g,
            "ranks": ranks,
            "gold_ranks": gold_ranks,
            "pair_agreement": np.where(n_strict > 0, agree, 1.0),
            "agrees_with_gold": (ranks == gold_ranks).all(axis=1),
            "topic": topics,
        }
        return records, info

    def make_ratings(
        self,
        n: int,
        *,
        seed: int | None = None,
        noise: float = 0.0,
        length_bias: float = 0.0,
        length_scale: float = DEFAULT_LENGTH_SCALE,
        quality: float | None = None,
    ) -> tuple[list[RatingRecord], dict[str, np.ndarray]]:
        """n rated responses: score = g + λ·(ℓ − n*)/s + noise·N(0, 1).

        ``scores`` holds the attributes {"sentiment": S, "relevance": R, "length": L} (the gold's
        terms, see the module docstring), each plus noise·std(term)·N(0, 1). info: ``gold``,
        ``score``, ``error`` (score − gold), ``sentiment``, ``relevance``, ``length`` (true terms),
        ``n_words``, ``topic``; all (n,).
        """
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        rng = self._rng("ratings", seed)
        prompts, topics = self._sample_prompts(n, rng)
        responses = self._generate(topics, self._quality(quality, n, rng), rng)
        terms = self.gold_terms_many(prompts, responses)
        eps = rng.standard_normal((n, 4))  # (n, 4): score, S, R, L
        bias = length_bias * (terms.n_words - self.target_words) / length_scale  # (n,)
        score = terms.gold + bias + noise * eps[:, 0]  # (n,)
        cal = self.calibration
        attrs = {
            "sentiment": terms.sentiment + noise * cal["std_sentiment"] * eps[:, 1],
            "relevance": terms.relevance + noise * cal["std_relevance"] * eps[:, 2],
            "length": terms.length + noise * cal["std_length"] * eps[:, 3],
        }
        attr_rows = {name: a.tolist() for name, a in attrs.items()}
        score_l = score.tolist()
        records = [
            RatingRecord(
                prompt=prompts[i],
                response=responses[i],
                score=score_l[i],
                scores={name: attr_rows[name][i] for name in attr_rows},
                source=f"gold-task:ratings:{i}",
            )
            for i in range(n)
        ]
        info = {
            "gold": terms.gold,
            "score": score,
            "error": score - terms.gold,
            "sentiment": terms.sentiment,
            "relevance": terms.relevance,
            "length": terms.length,
            "n_words": terms.n_words,
            "topic": topics,
        }
        return records, info

    def make_labels(
        self,
        n: int,
        threshold: float = 0.0,
        *,
        seed: int | None = None,
        noise: float = 0.0,
        flip_rate: float = 0.0,
        length_bias: float = 0.0,
        length_scale: float = DEFAULT_LENGTH_SCALE,
        quality: float | None = None,
    ) -> tuple[list[LabelRecord], dict[str, np.ndarray]]:
        """n responses labelled good (1) / bad (0): label = 1[g + λ·(ℓ − n*)/s + noise·N(0, 1) > threshold],
        then flipped with probability ``flip_rate``.

        info (all (n,)): ``gold``, ``label``, ``gold_label`` (1[g > threshold]),
        ``agrees_with_gold`` (label == gold_label), ``topic``.
        """
        if noise < 0 or not 0.0 <= flip_rate <= 1.0:
            raise ValueError(f"need noise >= 0 and flip_rate in [0, 1], got {noise}, {flip_rate}")
        rng = self._rng("labels", seed)
        prompts, topics = self._sample_prompts(n, rng)
        responses = self._generate(topics, self._quality(quality, n, rng), rng)
        terms = self.gold_terms_many(prompts, responses)
        bias = length_bias * (terms.n_words - self.target_words) / length_scale  # (n,)
        noisy = terms.gold + bias + noise * rng.standard_normal(n)  # (n,)
        label = (noisy > threshold) ^ (rng.random(n) < flip_rate)  # (n,) bool
        gold_label = terms.gold > threshold  # (n,)
        label_l = label.astype(int).tolist()
        records = [
            LabelRecord(prompt=prompts[i], response=responses[i], label=label_l[i], source=f"gold-task:labels:{i}")
            for i in range(n)
        ]
        info = {
            "gold": terms.gold,
            "label": label.astype(int),
            "gold_label": gold_label.astype(int),
            "agrees_with_gold": label == gold_label,
            "topic": topics,
        }
        return records, info

    def best_of_n_candidates(
        self,
        n_prompts: int,
        n_candidates: int,
        seed: int | None = None,
        quality: float | None = None,
    ) -> list[tuple[str, list[str], np.ndarray]]:
        """For best-of-N evaluation: per prompt, ``n_candidates`` responses of varying quality (uniform
        unless given) with their gold, as ``(prompt, [responses], gold (n_candidates,))``."""
        rng = self._rng("best_of_n", seed)
        prompts, topics = self._sample_prompts(n_prompts, rng)
        k = n_candidates
        responses = self._generate(np.repeat(topics, k), self._quality(quality, n_prompts * k, rng), rng)
        g = self.gold_many(np.repeat(np.array(prompts, dtype=object), k).tolist(), responses).reshape(n_prompts, k)
        return [(prompts[i], responses[i * k : (i + 1) * k], g[i]) for i in range(n_prompts)]


def print_examples(n: int = 5, seed: int = 1) -> None:
    """Print n example pairs with their gold (``python -m rewardlab.tasks``)."""
    records, info = GoldTask().make_pairs(n, seed=seed)
    for rec, gc, gr in zip(records, info["gold_chosen"], info["gold_rejected"]):
        print(rec.prompt)
        print(f"  chosen   (g={gc:+.2f}): {rec.chosen}")
        print(f"  rejected (g={gr:+.2f}): {rec.rejected}")
        print()


def default_corpus(n: int = 2000, seed: int = 0) -> list[str]:
    """Prompts and responses of the built-in task: text to train a tiny model's tokenizer on."""
    task = GoldTask(seed=seed)
    pairs, _ = task.make_pairs(n, seed=seed)
    return [t for p in pairs for t in (p.prompt, p.chosen, p.rejected)]
