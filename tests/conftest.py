"""Shared fixtures: a separable toy preference set and tiny models built offline."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

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


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("toy")
    return {"train": write_jsonl(d / "train.jsonl", toy_pairs(400, seed=1)),
            "test": write_jsonl(d / "test.jsonl", toy_pairs(100, seed=2))}


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    from rewardlab.models.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny-llama"), "llama", toy_corpus(), "nano", vocab_size=400)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, tiny_llama) -> dict:
    from rewardlab.models.tiny import save_tiny

    out = {"llama": tiny_llama}
    for arch in ("gpt2", "bert"):
        out[arch] = save_tiny(tmp_path_factory.mktemp(f"tiny-{arch}"), arch, toy_corpus(), "nano", vocab_size=400)
    return out
