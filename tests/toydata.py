"""A separable toy preference task in every data form, for tests (no network, no files)."""

from __future__ import annotations

import json
import random
from pathlib import Path

GOOD = ["great", "excellent", "wonderful", "helpful", "clear", "kind", "delightful", "superb"]
BAD = ["awful", "terrible", "useless", "rude", "wrong", "horrible", "confusing", "bad"]
FILLER = ["the", "answer", "is", "about", "this", "topic", "and", "it", "seems", "quite", "really", "so"]
TOPICS = ["coffee", "the beach", "trains", "music", "gardening", "chess", "rain", "bread"]


def toy_pairs(n: int, seed: int = 0) -> list[dict]:
    """Separable pairs: the chosen response has praise words, the rejected one insults (lengths vary)."""
    rng = random.Random(seed)

    def response(words):
        k = rng.randint(3, 12)
        body = [rng.choice(FILLER) for _ in range(k)]
        for _ in range(rng.randint(1, 3)):
            body.insert(rng.randint(0, len(body)), rng.choice(words))
        return " ".join(body) + "."

    return [{"prompt": f"What do you think of {rng.choice(TOPICS)}?", "chosen": response(GOOD), "rejected": response(BAD)}
            for _ in range(n)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def toy_corpus() -> list[str]:
    rows = toy_pairs(300, seed=123)
    return [r["prompt"] for r in rows] + [r["chosen"] for r in rows] + [r["rejected"] for r in rows]




def toy_forms(n: int, seed: int) -> dict[str, list[dict]]:
    """The toy task in every data form: praise words are good, insults bad, plain filler in between.

    pairs (with margin and some ties), rankings (K = 3: good ≻ neutral ≻ bad), ratings (score 1 / 0 / −1),
    labels (good = 1, bad = 0).
    """
    rng = random.Random(seed)

    def response(words):
        body = [rng.choice(FILLER) for _ in range(rng.randint(3, 10))]
        for _ in range(rng.randint(1, 2) if words else 0):
            body.insert(rng.randint(0, len(body)), rng.choice(words))
        return " ".join(body) + "."

    out = {"pairs": [], "rankings": [], "ratings": [], "labels": []}
    for i in range(n):
        prompt = f"What do you think of {rng.choice(TOPICS)}?"
        good, neutral, bad = response(GOOD), response([]), response(BAD)
        tie = i % 10 == 0  # every tenth pair: two neutral responses, labelled a tie
        out["pairs"].append({"prompt": prompt, "chosen": neutral if tie else good, "rejected": response([]) if tie else bad,
                             "margin": 0.0 if tie else float(rng.choice([1, 2, 3])), "tie": tie})
        out["rankings"].append({"prompt": prompt, "responses": [good, neutral, bad]})
        for text, score in ((good, 1.0), (neutral, 0.0), (bad, -1.0)):
            out["ratings"].append({"prompt": prompt, "response": text, "score": score})
        out["labels"].append({"prompt": prompt, "response": good, "label": 1})
        out["labels"].append({"prompt": prompt, "response": bad, "label": 0})
    return out
