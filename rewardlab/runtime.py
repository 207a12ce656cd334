"""Where and how rewardlab runs: device, precision, Accelerate state, and the allocator setting the command
line applies first. Every layer may import this module; it imports nothing of rewardlab.

glibc's malloc serves every allocation above 128 KiB (rising with use) from fresh ``mmap`` pages and
returns them on ``free``; an activation tensor is such an allocation, so each forward pays a page
fault per 4 KiB it writes. Keeping freed memory for reuse (allocations up to 32 MiB from the heap,
trim only above 1 GiB free, grow the heap 64 MiB at a time) removes most of that: scoring the CPU
benchmark's 4.5M model ran 1.2× faster (bench/results/score.md). The cost is that up to 1 GiB of freed
memory stays with the process until it exits. ``REWARDLAB_MALLOC_TUNING=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # mallopt parameters (malloc.h)
MALLOC_SETTINGS = {M_MMAP_THRESHOLD: 32 * 2**20, M_TRIM_THRESHOLD: 2**30, M_TOP_PAD: 64 * 2**20}


def tune_allocator() -> bool:
    """Apply ``MALLOC_SETTINGS`` with glibc's ``mallopt``; True when applied (glibc only, else a no-op)."""
    if os.environ.get("REWARDLAB_MALLOC_TUNING", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(k, v) == 1 for k, v in MALLOC_SETTINGS.items())


def resolve_device(device: str) -> torch.device:
    """"auto" → cuda when available, else cpu; anything else as given."""
    import torch  # here, not at the top: `rewardlab --help` loads this module and should not wait for torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cpu_has_fast_bf16() -> bool:
    """AVX-512 BF16 or AMX: a bf16 matrix multiply beats fp32 on this CPU."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:  # not Linux: stay in fp32
        return False
    # Not oneDNN's own check: it also says yes for AVX-512 without BF16, where bf16 runs slower than fp32.
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    """``auto`` → bf16 where the hardware runs it fast (measured: bench/results/train.md), else no."""
    if precision != "auto":
        return precision
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_fast_bf16() else "no"


def reset_accelerator_state() -> None:
    """Forget the settings an earlier Accelerator in this process fixed (mixed precision, say), so a ``train`` can
    follow an ``optimize`` run or another ``train`` with other settings. The process group (PartialState) stays."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def fsdp_on_cpu(accelerator) -> bool:
    """Turn on the FSDP that an ``accelerate launch`` config asked for, where the processes run on CPUs; True when it did.

    Accelerate 1.15 enables FSDP only on GPU-like process groups (``AcceleratorState.__init__`` sets
    ``DistributedType.FSDP`` for MULTI_GPU, MULTI_XPU, … but not MULTI_CPU): on CPUs an FSDP config runs as DDP,
    silently. torch's FSDP2 (``fully_shard``) itself runs on CPUs over gloo, so this sets what Accelerate would have
    set — the distributed type (also in the ``PartialState`` that every ``AcceleratorState()`` copies it from) and the
    plugin read from the FSDP_* variables — before anything is prepared. FSDP1 cannot run here: Accelerate's plugin
    asks for a GPU-like device to sync module states. tests/train/test_fsdp.py trains with it (2 CPU processes).
    """
    import os

    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true" or accelerator.distributed_type != DistributedType.MULTI_CPU:
        return False
    plugin = FullyShardedDataParallelPlugin()  # from the FSDP_* variables `accelerate launch` set
    if plugin.fsdp_version != 2:
        raise ValueError("FSDP on CPUs needs fsdp_version: 2 in the accelerate config (Accelerate's FSDP1 needs a GPU)")
    if accelerator.mixed_precision != "no":
        plugin.set_mixed_precision(accelerator.mixed_precision)
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    accelerator.state.distributed_type, accelerator.state.fsdp_plugin = DistributedType.FSDP, plugin
    return True


def is_sharded(accelerator) -> bool:
    """The model is split over the processes (FSDP, DeepSpeed): gathering its weights and running its forward need
    every process, not the main one alone."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


@contextlib.contextmanager
def hf_progress_bars(show: bool):
    """Within the block, Hugging Face's own progress bars (transformers' "Loading weights" and "Writing model shards",
    huggingface_hub's downloads) are off unless ``show``, so that a verb's --no-progress is silent throughout; the
    setting before is restored after. ``show`` leaves them as they are (HF_HUB_DISABLE_PROGRESS_BARS still counts)."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    if not show:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown and not show:
            hf_logging.enable_progress_bar()
