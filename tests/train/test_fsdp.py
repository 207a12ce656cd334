"""Sharded training on CPUs: FSDP2 over gloo gives DDP's model, resumes, and the saver gathers through Accelerate.

The launched test runs `accelerate launch --config_file configs/accelerate/fsdp-cpu.yaml -m rewardlab train` (2
processes, each holding half of every weight, gradient and AdamW moment), the same run under DDP (torchrun, 2
processes, same seed and global batch), and the FSDP run resumed from its first checkpoint. The quick test checks,
without DeepSpeed, that the final model and the checkpoints are written from ``accelerator.get_state_dict`` — the
call that gathers FSDP's shards and DeepSpeed ZeRO-3's partitions — and not from the module's own state dict.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train.test_scale import _args  # the DDP test's `rewardlab train` arguments: batch 8, lr 3e-3, one backward per batch

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(*cmd) -> dict:
    """Run a launcher command to the end; its rewardlab.json."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # gloo on CPU, also on a machine with a GPU
    proc = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = Path(cmd[cmd.index("--output") + 1])
    return json.loads((out / "rewardlab.json").read_text()) | {"log": proc.stdout + proc.stderr}


@pytest.mark.slow
@pytest.mark.skipif(not (BIN / "accelerate").exists() or not (BIN / "torchrun").exists(), reason="accelerate / torchrun not installed")
def test_fsdp_on_two_cpu_processes_equals_ddp_and_resumes(toy_data, tiny_llama, tmp_path):
    """FSDP == DDP after 25 updates up to float summation order: both average the same 2 × 8 pairs' gradients, FSDP by
    reduce-scatter of shards, DDP by all-reduce (measured: their AdamW moments are bit-identical after updates 1 and 2).
    Once a rounding difference appears, AdamW's g/√v turns it on near-zero gradients into steps of up to ±lr (3e-3;
    see the DDP test in test_scale.py), and they add up: measured max |Δw| = 2.5e-4,
    mean 1.0e-5 over the 33,472 weights, while training moved weights by up to 3.4e-2. Bounds: max 1e-3, mean 5e-5 —
    a process that trained on its own gradients alone would be off by the movement itself.
    The resumed FSDP run (from step-10: whole weights, the gathered AdamW moments cut back into shards) ends on the
    uninterrupted FSDP run's weights within 1e-6 (measured: bit-identical). ~60 s on a shared 2-core CPU: three 2-process launches."""
    fsdp, ddp = tmp_path / "fsdp", tmp_path / "ddp"
    accelerate = [BIN / "accelerate", "launch", "--config_file", ROOT / "configs/accelerate/fsdp-cpu.yaml", "--main_process_port"]
    meta = _launch(*accelerate, _free_port(), *_args(toy_data["train"], tiny_llama, fsdp, "--save-every", "10"))
    assert meta["distributed"] == {"type": "FSDP", "processes": 2}  # sharded for real, not Accelerate's DDP fallback
    _launch(BIN / "torchrun", "--nproc_per_node", "2", "--master_port", _free_port(), *_args(toy_data["train"], tiny_llama, ddp))
    a, b, init = (load_file(p / "model.safetensors") for p in (fsdp, ddp, tiny_llama))
    assert a.keys() == b.keys() == init.keys()  # whole: every weight of the backbone, none a shard
    assert all(a[k].shape == init[k].shape for k in a)
    moved = max((b[k] - init[k]).abs().max().item() for k in b)
    diff = torch.cat([(a[k] - b[k]).abs().flatten() for k in a])
    assert moved > 1e-2 and diff.max() < 1e-3 and diff.mean() < 5e-5, (moved, diff.max(), diff.mean())
    assert meta["total_updates"] == meta["update"] == 25

    for f in fsdp.iterdir():  # killed after step-10: no final model, no later checkpoint
        if f.is_file():
            f.unlink()
    shutil.rmtree(fsdp / "checkpoints" / "step-20")
    state = torch.load(fsdp / "checkpoints" / "step-10" / "trainer_state.pt", weights_only=False)
    moments = state["optimizer"]["state"]["model.model.embed_tokens.weight"]["exp_avg"]
    assert moments.shape == init["model.embed_tokens.weight"].shape  # gathered: the whole tensor, not a process's half
    resumed = _launch(*accelerate, _free_port(), *_args(toy_data["train"], tiny_llama, fsdp, "--save-every", "10", "--resume"))
    assert "resumed from" in resumed["log"] and "step-10" in resumed["log"] and resumed["update"] == 25
    c = load_file(fsdp / "model.safetensors")
    for k in a:
        torch.testing.assert_close(c[k], a[k], rtol=0, atol=1e-6)


def test_saver_writes_what_accelerator_get_state_dict_returns(toy_data, tiny_llama, tmp_path):
    """The final model and a checkpoint hold ``accelerator.get_state_dict``'s tensors. Under FSDP / ZeRO-3 a module's own
    parameters are this process's shards and only that call returns whole ones; here (one process) it returns the
    module's weights, so the spy adds 1 to what it returns: the files must show the +1, which the module does not hold."""
    from rewardlab.config import TrainConfig
    from rewardlab.data.formats import load_records
    from rewardlab.models.reward_model import RewardModel, load_backbone
    from rewardlab.train.loop import Position, make_accelerator, make_optimizer, save_checkpoint, save_final

    cfg = TrainConfig(data=str(toy_data["train"]), model=str(tiny_llama), output=str(tmp_path / "rm"), loss="bt", limit=16,
                      max_length=48, mixed_precision="no", progress=False)
    accelerator = make_accelerator(cfg, "no")
    model, tokenizer = load_backbone(str(tiny_llama))
    rm = RewardModel(model)
    rm.length_head = torch.nn.Linear(model.config.hidden_size, 1)  # ODIN's: trained, never saved
    optimizer, scheduler = make_optimizer(rm, cfg, 4)
    rm, optimizer = accelerator.prepare(rm, optimizer)
    real, calls = accelerator.get_state_dict, []

    def gathered(model, unwrap=True):
        calls.append(model)
        return {k: v + 1 for k, v in real(model, unwrap).items()}

    accelerator.get_state_dict = gathered
    records, _ = load_records(cfg.data[0], form="pairs", limit=16)
    save_checkpoint(accelerator, rm, tokenizer, {"update": 1}, optimizer, scheduler, Position(update=1), cfg)
    save_final(accelerator, rm, None, tokenizer, records, {}, cfg)
    assert calls == [rm, rm]
    own = accelerator.unwrap_model(rm).model.state_dict()
    for folder in (tmp_path / "rm" / "checkpoints" / "step-1", tmp_path / "rm"):
        saved = load_file(folder / "model.safetensors")
        assert saved.keys() == load_file(tiny_llama / "model.safetensors").keys()  # the backbone's names, no length head
        for k in saved:
            torch.testing.assert_close(saved[k], own[k] + 1, rtol=0, atol=0)
