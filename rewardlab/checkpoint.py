"""Checkpoints: Hugging Face folders (safetensors) + ``rewardlab.json``, written atomically.

Layout of a training output directory::

    DIR/                      final model: config.json, model.safetensors, tokenizer files,
                              rewardlab.json (metadata), rewardlab_config.yaml (resolved config)
    DIR/checkpoints/step-N/   the same plus trainer_state.pt (optimizer, scheduler, RNG, position)

A folder is written under a temporary name and renamed into place, so a killed run never leaves a
half-written checkpoint where ``--resume`` would find it. Weights and optimizer state are whole even when
training sharded them (FSDP, DeepSpeed ZeRO-3): the trainer gathers them and the main process writes
(docs/scale.md).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
from pathlib import Path

import torch

METADATA = "rewardlab.json"
STATE = "trainer_state.pt"


def versions() -> dict:
    import transformers

    import rewardlab

    return {"rewardlab": rewardlab.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


def read_metadata(path: str | Path) -> dict:
    """``rewardlab.json`` of a checkpoint folder, or {} for a folder (or hub id) rewardlab did not write."""
    file = Path(path) / METADATA
    return json.loads(file.read_text()) if file.is_file() else {}


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def save_model_folder(folder: Path, model, tokenizer, metadata: dict, state: dict | None = None,
                      weights: dict | None = None) -> Path:
    """Write model + tokenizer + metadata (+ trainer state) to ``folder`` atomically (tmp folder, then rename).

    ``weights``: the model's state dict to write instead of ``model.state_dict()`` — a sharded model's (FSDP,
    DeepSpeed ZeRO-3) own parameters are this process's shards, so the trainer gathers the full one first
    (``rewardlab.train.loop.model_weights``); ``model`` then gives the config and the file layout."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True, state_dict=weights)
    tokenizer.save_pretrained(tmp)
    (tmp / METADATA).write_text(json.dumps(metadata, indent=2, default=str) + "\n")
    if state is not None:
        torch.save(state, tmp / STATE)
    if folder.exists():
        old = folder.with_name(folder.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old)
    else:
        os.replace(tmp, folder)
    return folder


def save_final(output: Path, model, tokenizer, metadata: dict, weights: dict | None = None) -> None:
    """The final model goes to the top of ``output`` (beside ``checkpoints/``), file by file via a tmp folder
    (``weights`` as in ``save_model_folder``)."""
    output = Path(output)
    staged = save_model_folder(output / ".final", model, tokenizer, metadata, weights=weights)
    for f in staged.iterdir():
        os.replace(f, output / f.name)
    staged.rmdir()


def checkpoint_steps(output: Path) -> list[int]:
    root = Path(output) / "checkpoints"
    if not root.is_dir():
        return []
    steps = [int(m.group(1)) for p in root.iterdir() if (m := re.fullmatch(r"step-(\d+)", p.name)) and (p / STATE).is_file()]
    return sorted(steps)


def latest_checkpoint(output: Path) -> Path | None:
    steps = checkpoint_steps(output)
    return Path(output) / "checkpoints" / f"step-{steps[-1]}" if steps else None


def safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file is not whole (its header names more bytes than the file has), or None."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
    except (OSError, ValueError) as e:
        return f"{path.name}: unreadable header ({type(e).__name__})"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    size = path.stat().st_size
    return None if size == 8 + n + end else f"{path.name}: {size} bytes, its header needs {8 + n + end}"


def checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be resumed from (a missing, truncated or unreadable file), or None when it can."""
    import zipfile

    folder = Path(folder)
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        return "no .safetensors weights"
    for w in weights:
        if problem := safetensors_problem(w):
            return problem
    try:
        json.loads((folder / METADATA).read_text())
        with zipfile.ZipFile(folder / STATE) as z:  # torch.save writes a zip archive; testzip checks every member's CRC
            bad = z.testzip()
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        return f"{METADATA} or {STATE} unreadable ({type(e).__name__}: {e})"
    return f"{STATE}: member {bad} is corrupt" if bad else None


def latest_good_checkpoint(output: Path, say=print) -> Path | None:
    """The newest checkpoint under ``output`` that is whole; a damaged one is named (with what is wrong) and passed
    over for the one before it."""
    for step in reversed(checkpoint_steps(output)):
        folder = Path(output) / "checkpoints" / f"step-{step}"
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder
        say(f"checkpoint {folder} is damaged ({problem}); resuming from the one before it instead")
    return None


def prune_checkpoints(output: Path, keep: int) -> None:
    for step in checkpoint_steps(output)[:-keep] if keep > 0 else []:
        shutil.rmtree(Path(output) / "checkpoints" / f"step-{step}", ignore_errors=True)


def refuse_existing_output(output: str | Path, names=("",), *, overwrite: bool, resume: bool | None = None) -> list[str]:
    """The ``names`` that exist in the output folder ``output`` (``""``: ``output`` itself, an output file); if there
    are any, a ValueError unless ``overwrite`` (or ``resume``): a run's results are never replaced unasked. ``resume``
    None: the verb cannot resume, and the message offers only --overwrite. Used by every verb that writes an output."""
    held = [name for name in names if (Path(output) / name).exists()]
    if held and not (overwrite or resume):
        what = f"{output} already exists" if held == [""] else f"{output} already holds a run ({', '.join(held)})"
        how = "--resume to continue it, --overwrite to replace it" if resume is not None else "--overwrite to replace it"
        raise ValueError(f"{what}; pass {how}, or another --output")
    return held
