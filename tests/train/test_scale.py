"""Past one process and past full fine-tuning: DDP on CPU (gloo) and LoRA through peft."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file


def _args(data, model, out, *extra):
    return ["-m", "rewardlab", "train", "--data", str(data), "--model", str(model), "--output", str(out), "--epochs", "1",
            "--lr", "3e-3", "--batch-size", "8", "--eval-split", "0", "--max-length", "48", "--mixed-precision", "no",
            "--backward-groups", "1", "--no-progress", *extra]


@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None, reason="torchrun not installed")
def test_ddp_two_processes_equals_one_process_same_global_batch(toy_data, tiny_llama, tmp_path):
    """2 processes × batch 8 (gradients averaged by DDP) == 1 process × batch 8 × 2 accumulation steps.

    Bit-exact only with one backward per batch: with --backward-groups 2 the two runs add the same gradients
    in another order, and AdamW's g/√v turns float rounding on near-zero gradients into ±lr steps (measured:
    max weight difference 5e-3 after an epoch, also between two 1-process runs that differ only in grouping).
    tests/train/test_backward_groups.py checks the grouped gradient itself."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # gloo on CPU, also on a machine with one GPU
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    two, one = tmp_path / "two", tmp_path / "one"
    subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29533", *_args(toy_data["train"], tiny_llama, two)],
                   check=True, env=env, capture_output=True, timeout=300)
    subprocess.run([sys.executable, *_args(toy_data["train"], tiny_llama, one, "--grad-accum", "2")],
                   check=True, env=env, capture_output=True, timeout=300)
    a, b, init = (load_file(p / "model.safetensors") for p in (one, two, tiny_llama))
    moved = max((a[k] - init[k]).abs().max().item() for k in a)
    assert moved > 1e-3  # training did something
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    meta_two = json.loads((two / "rewardlab.json").read_text())
    assert meta_two["total_updates"] == json.loads((one / "rewardlab.json").read_text())["total_updates"] == 25


def test_lora_trains_adapters_and_head_and_saves_merged(toy_data, tiny_llama, tmp_path):
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "lora"
    proc = subprocess.run([sys.executable, *_args(toy_data["train"], tiny_llama, out, "--lora-r", "8", "--lora-alpha", "16",
                                                   "--epochs", "3", "--eval-data", str(toy_data["test"]))],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((out / "rewardlab.json").read_text())
    assert meta["lora"]["r"] == 8 and meta["metrics"]["accuracy"] >= 0.8
    trained, init = load_file(out / "model.safetensors"), load_file(tiny_llama / "model.safetensors")
    assert trained.keys() == init.keys()  # merged: a plain HF checkpoint, no adapter keys
    assert torch.equal(trained["model.embed_tokens.weight"], init["model.embed_tokens.weight"])  # not a LoRA target
    assert not torch.equal(trained["score.weight"], init["score.weight"])  # the head is trained in full
    assert not torch.equal(trained["model.layers.0.self_attn.q_proj.weight"], init["model.layers.0.self_attn.q_proj.weight"])
    AutoModelForSequenceClassification.from_pretrained(out)  # loads with plain transformers


def test_shipped_accelerate_configs_parse():
    """Every config under configs/accelerate is a valid `accelerate launch --config_file` file."""
    from pathlib import Path

    from accelerate.commands.config.config_args import load_config_from_file

    files = sorted((Path(__file__).resolve().parents[2] / "configs" / "accelerate").glob("*.yaml"))
    assert len(files) >= 3
    kinds = {str(load_config_from_file(str(f)).distributed_type).split(".")[-1] for f in files}
    assert {"MULTI_GPU", "FSDP", "DEEPSPEED"} <= kinds


def test_train_after_another_accelerator_with_other_settings(toy_data, tiny_llama, tmp_path):
    """An Accelerator made earlier in the process (an optimize run, a notebook) must not pin train's settings:
    on a GPU machine the earlier one says mixed precision 'no' and train's 'auto' resolves to bf16."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from rewardlab.config import TrainConfig
    from rewardlab.train.loop import train

    AcceleratorState._reset_state()  # set-up: whatever an earlier test left
    Accelerator(cpu=True, mixed_precision="fp16")  # any setting train will not ask for
    cfg = TrainConfig(data=str(toy_data["train"]), model=str(tiny_llama), output=str(tmp_path / "rm"), loss="bt", epochs=1,
                      batch_size=16, max_length=48, eval_split=0.0, progress=False, mixed_precision="no", log_every=3)
    meta = train(cfg, log=lambda *a: None)
    assert meta["mixed_precision"] == "no" and meta["length_chunks"] == 4 and meta["backward_groups"] == 2  # auto on a CPU
    updates = [h["update"] for h in meta["train"]["history_tail"]]
    assert updates[-1] == meta["total_updates"] and all(u % 3 == 0 for u in updates[:-1])
