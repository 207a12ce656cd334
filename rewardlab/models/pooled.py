"""The last layer of a decoder RM, computed at the pooled token only.

A reward pooled at the last token reads one hidden state per sequence. Every layer but the last
must run at every position (the next layer attends to all of them), but the last layer only feeds
the pooled position: it needs its keys and values everywhere and its query, attention output and
MLP at that one token. The rest of that layer's work is skipped: ≈ 14/16 of one layer, so 22% of
the forward FLOPs of a 4-layer model and 14% of a 6-layer one (Llama MLP at 4× width). The result
is the same computation, so the rewards equal the full forward's within float rounding.

Supported: Llama-style layers (Llama, Mistral, Qwen2/3, SmolLM: ``input_layernorm``, ``self_attn``
with ``q/k/v/o_proj`` and optional ``q_norm``/``k_norm``, rotary embeddings,
``post_attention_layernorm``, ``mlp``) and GPT-2 blocks. Anything else runs in full. The first call
on a model is checked against the full forward (``RewardModel`` does this) and the shortcut is
turned off, with a warning, if they differ.

How: the last layer's ``forward`` is replaced on the instance (weights and state dict untouched).
Inside ``with pooled_call(layer, last, key_mask)`` (per thread, so concurrent callers of one model do
not see each other's batches), it returns the output at the pooled positions, (N, 1, C) (GPT-2: broadcast to (N, T, C), as its model reshapes to
the input's shape); otherwise it runs the class's forward.
"""

from __future__ import annotations

import threading
import types
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def _attend(q, k, v, key_mask, scale):
    # q (N, H, 1, D); k, v (N, KV, T, D); key_mask (N, T) bool -> (N, H*D)
    if k.shape[1] != q.shape[1]:  # grouped-query attention: share each key/value head
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :], scale=scale)  # (N, H, 1, D)
    return out.transpose(1, 2).reshape(q.shape[0], -1)


def _llama_pooled(layer, h, last, key_mask, position_embeddings):
    # h (N, T, C) input of the last layer; last (N,) pooled position; cos, sin (N or 1, T, D)
    attn = layer.self_attn
    N, T, _ = h.shape
    D = attn.head_dim
    rows = torch.arange(N, device=h.device)
    x = layer.input_layernorm(h)  # (N, T, C)
    q = attn.q_proj(x[rows, last]).view(N, 1, -1, D)  # query at the pooled token only
    k = attn.k_proj(x).view(N, T, -1, D)
    v = attn.v_proj(x).view(N, T, -1, D).transpose(1, 2)  # (N, KV, T, D)
    if getattr(attn, "q_norm", None) is not None:  # Qwen3: RMSNorm over head_dim before the rotation
        q, k = attn.q_norm(q), attn.k_norm(k)
    q, k = q.transpose(1, 2), k.transpose(1, 2)
    cos, sin = position_embeddings
    cos, sin = cos.expand(N, -1, -1), sin.expand(N, -1, -1)  # (N, T, D)
    cq, sq = cos[rows, last][:, None, None], sin[rows, last][:, None, None]  # (N, 1, 1, D)
    q = q * cq + _rotate_half(q) * sq
    k = k * cos[:, None] + _rotate_half(k) * sin[:, None]
    y = h[rows, last] + attn.o_proj(_attend(q, k, v, key_mask, attn.scaling))  # (N, C)
    y = y + layer.mlp(layer.post_attention_layernorm(y))
    return y[:, None]  # (N, 1, C)


def _gpt2_pooled(block, h, last, key_mask, position_embeddings):
    attn = block.attn
    N, T, C = h.shape
    D = attn.head_dim
    rows = torch.arange(N, device=h.device)
    x = block.ln_1(h)
    w, b = attn.c_attn.weight, attn.c_attn.bias  # Conv1D: (C, 3C), x @ w + b
    q = torch.addmm(b[:C], x[rows, last], w[:, :C]).view(N, 1, -1, D).transpose(1, 2)  # (N, H, 1, D)
    k, v = (x @ w[:, C:] + b[C:]).split(C, dim=-1)
    k, v = (t.view(N, T, -1, D).transpose(1, 2) for t in (k, v))  # (N, H, T, D)
    y = h[rows, last] + attn.c_proj(_attend(q, k, v, key_mask, attn.scaling))
    y = y + block.mlp(block.ln_2(y))
    return y[:, None].expand(N, T, C)  # GPT2Model reshapes to the input's shape; every position holds the pooled state


def _kind(layer: nn.Module) -> str | None:
    names = {n for n, _ in layer.named_children()}
    if names == {"input_layernorm", "self_attn", "post_attention_layernorm", "mlp"}:
        attn = layer.self_attn
        ok = all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj", "scaling", "head_dim"))
        extra = {n for n, _ in attn.named_children()} - {"q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm", "rotary_emb"}
        if ok and not extra and getattr(attn, "sliding_window", None) is None and not getattr(attn, "attn_logit_softcapping", None):
            return "llama"
    if names == {"ln_1", "attn", "ln_2", "mlp"} and hasattr(layer.attn, "c_attn") and not getattr(layer.attn, "is_cross_attention", False):
        if not getattr(layer.attn, "reorder_and_upcast_attn", False) and hasattr(layer.attn, "scaling"):
            return "gpt2"
    return None


def has_dropout(module: nn.Module) -> bool:
    """Whether ``module`` drops anything in training (a dropout module, or an attention's dropout rate)."""
    def drops(m):
        rate = getattr(m, "attention_dropout", 0.0)
        return (isinstance(m, nn.Dropout) and m.p > 0) or (isinstance(rate, (int, float)) and rate > 0)

    return any(drops(m) for m in module.modules())


def disable_dropout(module: nn.Module) -> None:
    """Set every rate ``has_dropout`` looks at to 0 (dropout modules and attention dropout rates)."""
    for m in module.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(getattr(m, "attention_dropout", None), (int, float)):
            m.attention_dropout = 0.0


POOLED = {"llama": _llama_pooled, "gpt2": _gpt2_pooled}


def last_layer(base: nn.Module) -> nn.Module | None:
    """The last decoder layer of a base model (``layers`` or GPT-2's ``h``), or None."""
    for name in ("layers", "h"):
        layers = getattr(base, name, None)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            n = getattr(base.config, "num_hidden_layers", len(layers))
            return layers[min(n, len(layers)) - 1]
    return None


_ACTIVE = threading.local()  # .spec: the pooled call this thread is inside, or None


@contextmanager
def pooled_call(layer: nn.Module, last: torch.Tensor, key_mask: torch.Tensor):
    """Within the block, ``layer`` (patched by ``install``) runs at ``last`` (N,) only, attending to the
    keys where ``key_mask`` (N, T) is True. Yields a dict whose "used" turns True if it did."""
    prev = getattr(_ACTIVE, "spec", None)
    _ACTIVE.spec = spec = {"layer": layer, "last": last, "key_mask": key_mask, "used": False}
    try:
        yield spec
    finally:
        _ACTIVE.spec = prev


def install(base: nn.Module) -> nn.Module | None:
    """Patch the last layer of ``base`` so it can run at the pooled tokens only; the layer, or None
    when its structure is not one this module knows (then nothing changes)."""
    layer = last_layer(base)
    if layer is None or getattr(layer, "_rewardlab_pooled", False):  # called on every forward: patched once
        return layer
    kind = _kind(layer)
    if kind is None:
        return None

    def forward(self, *args, **kwargs):  # the class's forward unless a pooled call is on (a deep copy stays correct)
        spec = getattr(_ACTIVE, "spec", None)
        position_embeddings = kwargs.get("position_embeddings")
        if spec is None or spec["layer"] is not self or (kind == "llama" and position_embeddings is None):
            return type(self).forward(self, *args, **kwargs)
        h = args[0] if args else kwargs["hidden_states"]
        spec["used"] = True
        return POOLED[kind](self, h, spec["last"], spec["key_mask"], position_embeddings)

    layer._rewardlab_pooled = True
    layer.forward = types.MethodType(forward, layer)
    return layer
