"""Shared fixtures: a separable toy preference set and tiny models built offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from toydata import toy_corpus, toy_pairs, write_jsonl  # noqa: F401  (tests/ is on pythonpath)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

@pytest.fixture
def one_thread():
    """One torch thread for the test: on a shared 2-core CPU, OpenMP spin-waiting makes tiny models slow. Modules
    that want it for every test say ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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

