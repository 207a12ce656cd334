"""Loading user models without running their code: the one way rewardlab calls ``from_pretrained``.

Two things in a model folder (or hub repo) can run code when it is loaded:

- **pickle weights** (``pytorch_model.bin``, ``*.pt``): unpickling can call any Python function the file
  names. rewardlab asks transformers for safetensors only (``use_safetensors=True``, plain tensors) unless
  ``allow_pickle`` (``--allow-pickle``) is given; a folder that has only pickle weights is refused with
  a message naming that flag, before transformers opens anything.
- **remote code** (``auto_map`` in ``config.json`` naming a ``.py`` file beside it): imported only with
  ``trust_remote_code`` (``--trust-remote-code``). rewardlab always passes it, ``False`` by default: left
  at None, transformers would stop and ask on a terminal.

GGUF files (:mod:`rewardlab.models.gguf`) are parsed, not unpickled; they load as they always did.
"""

from __future__ import annotations

from pathlib import Path

PICKLE_WEIGHTS = ("pytorch_model", "adapter_model")
"""Name prefixes of the pickle weight files transformers and peft load (``pytorch_model.bin``, its shards
``pytorch_model-00001-of-00002.bin`` and their ``.bin.index.json``)."""


class UnsafeModelError(ValueError):
    """A model would need pickle weights or its own code to load, and the user did not allow it."""


def pickle_only(folder: str | Path) -> list[str]:
    """Names of the pickle weight files of a local ``folder`` that has no ``.safetensors`` ([] otherwise, and for a hub id).
    Other pickles beside safetensors weights (a Trainer's ``training_args.bin``) are never loaded as weights."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    if any(n.endswith(".safetensors") or n.endswith(".safetensors.index.json") for n in names):
        return []
    return [n for n in names if n.startswith(PICKLE_WEIGHTS) and (n.endswith(".bin") or n.endswith(".bin.index.json"))]


def _pickle_refusal(name: str, files: list[str]) -> UnsafeModelError:
    found = f"only PyTorch pickle weights ({', '.join(files)})" if files else "no safetensors weights (model.safetensors)"
    return UnsafeModelError(f"{name} has {found}. Loading a pickle file can run code hidden in it, so rewardlab loads "
                            f"safetensors only. If you trust this file, pass --allow-pickle (allow_pickle=True in Python); "
                            f"better, convert it once: load it in transformers and save_pretrained() it (writes model.safetensors).")


def load_pretrained(auto_cls, name_or_path: str, *, trust_remote_code: bool = False, allow_pickle: bool = False,
                    weights: bool = True, **kwargs):
    """``auto_cls.from_pretrained(name_or_path, **kwargs)`` with safetensors only (unless ``allow_pickle``) and
    ``trust_remote_code`` passed explicitly. ``weights=False`` for tokenizers (nothing to unpickle); a ``gguf_file``
    in ``kwargs`` loads that GGUF file and leaves the weight format alone. Refusals are :class:`UnsafeModelError`,
    naming the flag that would allow the load."""
    name = str(name_or_path)
    safetensors_only = weights and kwargs.get("gguf_file") is None and not allow_pickle
    if safetensors_only:
        files = pickle_only(name)
        if files:
            raise _pickle_refusal(name, files)
        kwargs["use_safetensors"] = True
    try:
        return auto_cls.from_pretrained(name, trust_remote_code=bool(trust_remote_code), **kwargs)
    except OSError as e:
        if safetensors_only and "safetensors" in str(e):  # a hub repo (or folder) without safetensors weights
            raise _pickle_refusal(name, []) from None
        raise
    except ValueError as e:
        if not trust_remote_code and "trust_remote_code" in str(e):
            raise UnsafeModelError(f"{name} ships its own model code (auto_map in its config.json) and rewardlab does not run a "
                                   f"model's code unless you pass --trust-remote-code (trust_remote_code=True in Python); "
                                   f"read that code first.") from None
        raise
