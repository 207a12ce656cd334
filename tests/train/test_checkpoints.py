"""Damaged checkpoints: found at load with what is wrong, and --resume falls back to the one before, ending with the
weights of an uninterrupted run."""

from __future__ import annotations

import os
import shutil

import torch
from safetensors.torch import load_file

from rewardlab import checkpoint as ckpt


def _cfg(toy_data, tiny_llama, out, **kw):
    from rewardlab.config import TrainConfig

    return TrainConfig(data=str(toy_data["train"]), model=str(tiny_llama), output=str(out), loss="bt", epochs=1, batch_size=16,
                       max_length=48, eval_split=0.0, progress=False, mixed_precision="no", limit=96, save_every=2,
                       save_total_limit=3, **kw)


def test_truncated_weights_and_state_are_named(tmp_path, toy_data, tiny_llama):
    from rewardlab.train.loop import train

    train(_cfg(toy_data, tiny_llama, tmp_path / "run"), log=lambda *a: None)
    folder = tmp_path / "run" / "checkpoints" / "step-6"
    assert ckpt.checkpoint_problem(folder) is None
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    os.truncate(weights, size - 100)
    assert ckpt.checkpoint_problem(folder) == f"model.safetensors: {size - 100} bytes, its header needs {size}"
    state = tmp_path / "run" / "checkpoints" / "step-4" / ckpt.STATE
    os.truncate(state, state.stat().st_size // 2)
    assert "trainer_state.pt unreadable" in ckpt.checkpoint_problem(state.parent)
    said = []
    assert ckpt.latest_good_checkpoint(tmp_path / "run", said.append) == tmp_path / "run" / "checkpoints" / "step-2"
    assert len(said) == 2 and "step-6 is damaged" in said[0] and "step-4 is damaged" in said[1]


def test_resume_passes_over_a_damaged_checkpoint_and_ends_like_an_uninterrupted_run(tmp_path, toy_data, tiny_llama):
    from rewardlab.train.loop import train

    straight = train(_cfg(toy_data, tiny_llama, tmp_path / "straight"), log=lambda *a: None)
    run = tmp_path / "run"
    train(_cfg(toy_data, tiny_llama, run), log=lambda *a: None)
    for f in run.iterdir():  # as if killed after the last checkpoint: no final model
        if f.is_file():
            f.unlink()
    weights = run / "checkpoints" / "step-6" / "model.safetensors"
    os.truncate(weights, weights.stat().st_size - 1)  # the newest checkpoint is damaged
    said = []
    meta = train(_cfg(toy_data, tiny_llama, run, resume=True), log=said.append)
    assert any("step-6 is damaged" in m for m in said) and any("resumed from" in m and "step-4" in m for m in said)
    assert meta["update"] == straight["update"] == 6
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(run / "model.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6)


def test_resume_without_a_checkpoint_says_it_starts_fresh(tmp_path, toy_data, tiny_llama):
    from rewardlab.train.loop import train

    said = []
    train(_cfg(toy_data, tiny_llama, tmp_path / "fresh", resume=True, max_steps=1), log=said.append)
    assert any("no checkpoint to resume" in m for m in said)
    shutil.rmtree(tmp_path / "fresh")
