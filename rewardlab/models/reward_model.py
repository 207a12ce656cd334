"""A reward model is a Hugging Face backbone plus a scalar head (or a head of A attributes and their weights).

Any ``AutoModelForSequenceClassification`` with ``num_labels=1`` works. A multi-attribute RM (HelpSteer2-style
ratings, ``rewardlab train --attributes``) has ``num_labels = A``: its head gives A attribute values, its config
names them (``id2label``) and holds the weights of its reward (``attribute_weights``):
r = Σ_a w_a·value_a (the regression RMs of SteerLM / NeMo-Aligner, scalarised by fixed weights; ArmoRM's
prompt-dependent gating of the weights is not implemented). Two poolings:

- ``last_token`` (decoders: Llama, GPT-2, Qwen, …): the head is applied to the hidden state of the
  rightmost token that is neither padding (attention mask 0) nor the pad token id
  (``reward_positions``), wherever the padding is (left or right). That is transformers' own rule, so
  the saved folder gives the same rewards in plain ``transformers`` and TRL (with pad == EOS, an
  appended EOS is skipped there and here alike). Position ids are derived from the attention mask, so
  rewards do not depend on the padding side or on the batch's padding.
- ``model`` (encoders: BERT, RoBERTa, DeBERTa, …): the model's own pooling (e.g. [CLS] + pooler).

The saved folder is a plain Hugging Face checkpoint: ``AutoModelForSequenceClassification.from_pretrained``
loads it and gives the same rewards.
"""

from __future__ import annotations

import inspect
import math

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from rewardlab.checkpoint import read_metadata
from rewardlab.data.sequence import describe, resolve_append_eos
from rewardlab.models import pooled as pooled_mod
from rewardlab.models.gguf import model_kwargs
from rewardlab.models.loading import load_pretrained
from rewardlab.types import RewardOutput

POOLINGS = ("last_token", "model")
ATTRIBUTE_WEIGHTS = "attribute_weights"  # the HF config key of a multi-attribute RM's reward weights


def set_attributes(config, names: list[str], weights: list[float] | None = None) -> list[float]:
    """Make ``config`` (of an A-label sequence classifier) describe a multi-attribute RM: ``id2label`` /
    ``label2id`` name the A outputs, ``attribute_weights`` (default 1/A each: the mean) make its reward
    r = Σ_a w_a·value_a, and ``problem_type`` "regression" (plain transformers then fits the outputs by MSE).
    Returns the weights."""
    names = [str(n) for n in names]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"attributes must be distinct and non-empty, got {names}")
    if config.num_labels != len(names):
        raise ValueError(f"{len(names)} attributes but the head has {config.num_labels} outputs")
    weights = [1.0 / len(names)] * len(names) if not weights else [float(w) for w in weights]
    if len(weights) != len(names) or not all(math.isfinite(w) for w in weights):
        raise ValueError(f"attribute weights must be {len(names)} finite numbers (one per attribute), got {weights}")
    config.id2label = dict(enumerate(names))
    config.label2id = {n: i for i, n in enumerate(names)}
    setattr(config, ATTRIBUTE_WEIGHTS, weights)
    config.problem_type = "regression"
    return weights


def attribute_spec(config) -> tuple[list[str], list[float]] | None:
    """(names, weights) of a multi-attribute RM's config (``set_attributes``); None for a scalar RM."""
    weights = getattr(config, ATTRIBUTE_WEIGHTS, None)
    if weights is None:
        return None
    names = [str(config.id2label[i]) for i in range(config.num_labels)]
    if len(weights) != len(names):
        raise ValueError(f"config.{ATTRIBUTE_WEIGHTS} has {len(weights)} weights for {len(names)} outputs")
    return names, [float(w) for w in weights]


def default_pooling(model: PreTrainedModel) -> str:
    """Decoders (a ``score`` head over the base model's last hidden states) pool at the last token."""
    return "last_token" if hasattr(model, "score") and isinstance(model.score, nn.Linear) else "model"


def _head(model: PreTrainedModel) -> nn.Module:
    for name in ("score", "classifier", "classification_head"):
        if hasattr(model, name):
            return getattr(model, name)
    raise ValueError(f"{type(model).__name__} has no score/classifier head; pass a sequence-classification model")


def reward_positions(input_ids: torch.Tensor, attention_mask: torch.Tensor, pad_id: int | None) -> torch.Tensor:
    """(N,) where a decoder's reward is read: the rightmost token with mask 1 that is not ``pad_id``
    (transformers' sequence-classification rule, made independent of the padding side by the mask).
    A row with no such token reads position 0."""
    real = attention_mask.bool()  # (N, T)
    if pad_id is not None:
        real = real & (input_ids != pad_id)
    index = torch.arange(input_ids.shape[1], device=input_ids.device)
    return (index * real).argmax(-1)


def no_cache(base: nn.Module) -> dict:
    """``{"use_cache": False}`` where the base model's forward takes it (every transformers decoder does): a reward is
    one forward, and a key/value cache would only hold every layer's keys and values until it returns."""
    return {"use_cache": False} if "use_cache" in inspect.signature(base.forward).parameters else {}


def _at(hidden: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """(N, C) rows of ``hidden`` (N, T, C) at positions ``last`` (N,)."""
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


# Attention implementations that read packed sequences from position ids restarting at 0 (attention_mask None):
# eager, sdpa and flex build a block-diagonal causal mask (transformers' masking_utils), flash-attention its varlen kernels.
PACKING_ATTENTION = ("eager", "sdpa", "flex_attention", "flash_attention_2", "flash_attention_3")


def packing_plan(attention_mask: torch.Tensor, last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where N padded rows go in one padding-free row: (tokens (S,), indices into the flattened (N*T) rows in row
    order; position ids (S,), restarting at 0 for each row; ends (N,), where each row's reward token lands).

    A row keeps its tokens of mask 1 up to its reward position ``last`` (N,) and ``last`` itself: under causal
    attention a later token cannot reach the reward, and a row with no real token (a ranking's padding row) still
    reads one. Position ids count the kept tokens, as the padded forward's cumsum of the mask does, so every
    token sees the same positions and keys as there, whatever the padding side."""
    index = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    keep = (attention_mask.bool() & (index <= last[:, None])) | (index == last[:, None])  # (N, T)
    tokens = keep.flatten().nonzero().squeeze(-1)  # (S,)
    positions = (keep.long().cumsum(-1) - 1).flatten()[tokens]  # (S,)
    ends = keep.sum(-1).cumsum(0) - 1  # (N,) the last kept token of each row is its reward token
    return tokens, positions, ends


def packing_problem(model: PreTrainedModel, pooling: str) -> str | None:
    """Why a packed forward cannot give this model's padded rewards, or None when it can."""
    attn = getattr(model.config, "_attn_implementation", None)
    if pooling != "last_token":
        return (f"packing needs pooling 'last_token' (a decoder with a plain linear score head); this "
                f"{type(model).__name__} pools in its own forward: an encoder (it attends in both directions, and "
                f"transformers builds no packed mask for it), or a head wrapped by LoRA (--lora-r)")
    if not getattr(model.config, "is_causal", True):
        return f"packing needs causal attention; {type(model).__name__} has config.is_causal = False"
    if attn not in PACKING_ATTENTION:
        return (f"attention implementation {attn!r} does not read packed sequences from position ids; "
                f"packing works with {', '.join(PACKING_ATTENTION)}")
    return None


class RewardModel(nn.Module):
    """Backbone + head. ``forward`` returns rewards of shape (N,); a multi-attribute RM also its A attribute
    values (``RewardOutput.attributes``, (N, A)), whose weighted sum the rewards are (``head_rewards``).

    On a CPU, a ``last_token`` RM runs its last layer at the pooled token only
    (:mod:`rewardlab.models.pooled`; same rewards and gradients, 14–22% fewer FLOPs on the benchmark
    models), in training too unless gradient checkpointing or dropout is on. The first such call is
    checked against the full forward. ``pooled_last_layer``: "auto" (CPU only: on an H200, where the
    0.5B benchmark is launch-bound and the shortcut saves 1/28 of the work, training ran 0.85× as fast
    with it), True or False.

    ``forward(..., packed=True)`` (``--packing``) runs a decoder RM's rows as one padding-free row: the same rewards
    with no padding computed (:func:`packing_plan`; refused where that cannot hold, :func:`packing_problem`).
    """

    pooled_last_layer: bool | str = "auto"

    def __init__(self, model: PreTrainedModel, pooling: str | None = None, append_eos: bool = False):
        super().__init__()
        spec = attribute_spec(model.config)
        if spec is None and model.config.num_labels != 1:
            raise ValueError(f"a reward model needs num_labels=1, or one label per attribute with their weights "
                             f"(config.{ATTRIBUTE_WEIGHTS}, as `rewardlab train --attributes` writes it); the backbone has "
                             f"{model.config.num_labels} labels and no weights")
        pooling = pooling or default_pooling(model)
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; known: {', '.join(POOLINGS)}")
        if pooling == "last_token" and default_pooling(model) != "last_token":
            raise ValueError(f"pooling 'last_token' needs a decoder with a linear `score` head, got {type(model).__name__}")
        self.model = model
        self.pooling = pooling
        self.append_eos = append_eos  # the sequence convention this RM reads (rewardlab.data.sequence)
        self._pooled_state = None  # None: not tried yet; "on": checked against the full forward; "off": not used
        self._packing_checked = False  # the first packed forward is checked against the padded one
        self.attributes = spec[0] if spec else None  # names of the head's A outputs; None for a scalar RM
        self.register_buffer("attribute_weights", torch.tensor(spec[1]) if spec else None, persistent=False)  # (A,)

    @property
    def config(self):
        return self.model.config

    def head_rewards(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(rewards (N,), attribute values (N, A) or None) from the head's output (N, 1) or (N, A): a scalar RM's
        one output, or a multi-attribute RM's weighted sum r = Σ_a w_a·logits_a."""
        if self.attribute_weights is None:
            return logits.squeeze(-1), None
        return logits @ self.attribute_weights.to(logits.dtype), logits  # (N,), (N, A)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, return_hidden: bool = False,
                packed: bool = False) -> RewardOutput:
        # input_ids, attention_mask: (N, T)
        if packed:
            return self._packed_forward(input_ids, attention_mask, return_hidden)
        if self.pooling == "last_token":
            positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (N, T)
            base = getattr(self.model, self.model.base_model_prefix)
            last = reward_positions(input_ids, attention_mask, self.model.config.pad_token_id)  # (N,)
            pooled = None
            use = input_ids.device.type == "cpu" if self.pooled_last_layer == "auto" else bool(self.pooled_last_layer)
            if use and self._pooled_state != "off" and (not torch.is_grad_enabled() or self._pooled_trainable(base)):
                pooled = self._pooled_forward(base, input_ids, attention_mask, positions, last)
            if pooled is None:
                # use_cache=False: a decoder would otherwise keep every layer's keys and values in a cache nobody reads
                # (measured: 124 MB of the peak while scoring SmolLM2-135M, batch 16, HH-RLHF texts)
                hidden = base(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                              **no_cache(base)).last_hidden_state  # (N, T, C)
                pooled = _at(hidden, last)  # (N, C)
            rewards, attributes = self.head_rewards(self.model.score(pooled))  # (N,), (N, A) or None
            return RewardOutput(rewards, pooled if return_hidden else None, attributes)
        captured = {}
        hook = None
        if return_hidden:
            hook = _head(self.model).register_forward_hook(lambda m, args, out: captured.setdefault("h", args[0]))
        try:
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits  # (N, 1) or (N, A)
        finally:
            if hook is not None:
                hook.remove()
        hidden = captured.get("h")
        if hidden is not None and hidden.dim() == 3:  # heads that pool inside (e.g. RoBERTa): take the first token
            hidden = hidden[:, 0]
        rewards, attributes = self.head_rewards(logits)
        return RewardOutput(rewards, hidden, attributes)

    def _packed_forward(self, input_ids, attention_mask, return_hidden: bool) -> RewardOutput:
        """The rows as one padding-free row (:func:`packing_plan`), attention_mask None so that transformers reads
        the sequences from the restarting position ids: the padded rewards without computing any padding. The
        pooled-last-layer shortcut is not used: it runs the last layer at one token per row, a packed row holds N."""
        problem = packing_problem(self.model, self.pooling)
        if problem:
            raise ValueError(problem)
        if not self._packing_checked:
            self._check_packing(input_ids, attention_mask)
        last = reward_positions(input_ids, attention_mask, self.model.config.pad_token_id)  # (N,)
        tokens, positions, ends = packing_plan(attention_mask, last)  # (S,), (S,), (N,)
        base = getattr(self.model, self.model.base_model_prefix)
        hidden = base(input_ids=input_ids.flatten()[tokens][None], attention_mask=None, position_ids=positions[None],
                      use_cache=False).last_hidden_state  # (1, S, C); with a cache transformers would not look for packing
        pooled = hidden[0, ends]  # (N, C)
        rewards, attributes = self.head_rewards(self.model.score(pooled))  # (N,), (N, A) or None
        return RewardOutput(rewards, pooled if return_hidden else None, attributes)

    def _check_packing(self, input_ids, attention_mask) -> None:
        """The first packed forward against the padded one (in eval mode, no dropout): a backbone whose code builds
        its attention mask without transformers' packed-sequence detection (remote code, say) would let the
        sequences of a packed row attend to each other; refuse it instead of training on wrong rewards."""
        training = self.training
        self._packing_checked = True
        try:
            with torch.no_grad():
                self.eval()
                full = self(input_ids, attention_mask).rewards.float()
                packed = self(input_ids, attention_mask, packed=True).rewards.float()
        finally:
            self.train(training)
        low = next(self.parameters()).dtype != torch.float32 or torch.is_autocast_enabled(input_ids.device.type)
        err = ((packed - full).norm() / full.norm().clamp(min=1e-12)).item()
        if err > (3e-2 if low else 1e-4):
            self._packing_checked = False
            raise ValueError(f"packed rewards differ from the padded forward's (relative error {err:.1e}) on "
                             f"{type(self.model).__name__}: its attention does not keep packed sequences apart; use --packing off")

    def _pooled_trainable(self, base) -> bool:
        """With gradients, the pooled last layer is the same computation unless activations are recomputed
        (gradient checkpointing re-runs the layer outside this call) or the model drops anything in training
        (dropout would also make the first-call check compare two different random draws)."""
        layer = pooled_mod.last_layer(base)
        if any(getattr(m, "gradient_checkpointing", False) for m in (base, layer)):
            return False
        return not self.training or not pooled_mod.has_dropout(base)

    def _pooled_forward(self, base, input_ids, attention_mask, positions, last):
        """(N, C) final hidden states at ``last`` with the last layer run there only; None when not possible."""
        layer = pooled_mod.install(base)
        if layer is None:
            self._pooled_state = "off"
            return None
        index = torch.arange(input_ids.shape[1], device=input_ids.device)
        key_mask = attention_mask.bool() & (index <= last[:, None])  # (N, T) causal: nothing after the pooled token
        with pooled_mod.pooled_call(layer, last, key_mask) as call:
            hidden = base(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, **no_cache(base)).last_hidden_state
        if not call["used"]:
            return _at(hidden, last)
        out = hidden[:, 0]  # (N, C)
        if self._pooled_state is None:  # first call: the same numbers as the full forward, or never again
            with torch.no_grad():
                full = base(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, **no_cache(base)).last_hidden_state
            full = _at(full, last).float()
            low = next(self.parameters()).dtype != torch.float32 or torch.is_autocast_enabled(input_ids.device.type)
            err = ((out.float() - full).norm() / full.norm().clamp(min=1e-12)).item()
            if err > (3e-2 if low else 1e-4):
                import warnings

                warnings.warn(f"last layer at the pooled token differs from the full forward (relative error {err:.1e}) "
                              f"on {type(layer).__name__}; running the full forward instead")
                self._pooled_state = "off"
                return None
            self._pooled_state = "on"
        return out

    def save_pretrained(self, path, **kwargs):
        self.model.save_pretrained(path, **kwargs)


def load_backbone(
    name_or_path: str,
    *,
    trust_remote_code: bool = False,
    dtype: torch.dtype | None = None,
    tokenizer_name: str | None = None,
    gguf_file: str | None = None,
    allow_pickle: bool = False,
    num_labels: int | None = 1,
    attn_implementation: str | None = None,
):
    """Load (model, tokenizer) from a local folder or a hub id, as a ``num_labels``-label sequence classifier
    (default 1; None: the checkpoint's own head when its config holds attribute weights, else 1).

    A causal LM checkpoint gets a fresh, randomly initialised score head (transformers warns about it).
    A tokenizer without a pad token gets one: its EOS token, or a new ``<pad>`` token if it has no EOS
    (then the embeddings are resized). ``gguf_file``: load from that GGUF file inside ``name_or_path``, dequantised
    (see :mod:`rewardlab.models.gguf`). Safetensors weights only unless ``allow_pickle``, and the model's own code
    only with ``trust_remote_code`` (:mod:`rewardlab.models.loading`). ``attn_implementation``: transformers'
    (eager, sdpa, flash_attention_2, …); None = transformers' choice (sdpa where the model supports it).
    """
    tokenizer = load_pretrained(AutoTokenizer, tokenizer_name or name_or_path, trust_remote_code=trust_remote_code, weights=False,
                                gguf_file=None if tokenizer_name else gguf_file)
    head = {"num_labels": 1}
    if num_labels is None:  # a saved multi-attribute RM loads as it was saved: its A outputs and their names
        config = load_pretrained(AutoConfig, name_or_path, trust_remote_code=trust_remote_code, weights=False,
                                 **({"gguf_file": gguf_file} if gguf_file else {}))
        head = {} if attribute_spec(config) else head
    elif num_labels != 1:  # a head of another size than the checkpoint's starts fresh (transformers reports it)
        head = {"id2label": {i: f"LABEL_{i}" for i in range(num_labels)}, "ignore_mismatched_sizes": True}
    if attn_implementation:
        head["attn_implementation"] = attn_implementation
    model = load_pretrained(AutoModelForSequenceClassification, name_or_path, trust_remote_code=trust_remote_code,
                            allow_pickle=allow_pickle, dtype=dtype, **head, **model_kwargs(gguf_file))
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        else:
            tokenizer.add_special_tokens({"pad_token": "<pad>"})
            model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    tokenizer.padding_side = "right"
    return model, tokenizer


def reward_stats(meta: dict, config) -> dict | None:
    """Mean and std of the training rewards saved with a model: rewardlab.json's ``reward_stats``, else OpenRLHF's
    ``mean`` / ``std`` in the HF config; None when neither is there (e.g. a TRL checkpoint)."""
    if meta.get("reward_stats"):
        return dict(meta["reward_stats"])
    mean, std = getattr(config, "mean", None), getattr(config, "std", None)
    if isinstance(mean, (int, float)) and isinstance(std, (int, float)):
        return {"mean": float(mean), "std": float(std), "source": "config"}
    return None


def check_reward_stats(stats: dict | None, where: str = "the model") -> dict:
    """``stats`` if they can normalise rewards; else a ValueError saying why (raised before any scoring)."""
    if not stats:
        raise ValueError(f"--normalize: {where} has no saved reward statistics (rewardlab.json `reward_stats`, or `mean`/`std` "
                         f"in config.json as OpenRLHF writes them); retrain it with rewardlab or drop --normalize")
    if not stats["std"] > 0:
        raise ValueError(f"--normalize: {where} has reward std {stats['std']}; cannot divide by it")
    return stats


def normalize_rewards(rewards, stats: dict | None, where: str = "the model"):
    """(r - mean) / std with the saved training-reward statistics (``reward_stats``)."""
    stats = check_reward_stats(stats, where)
    return (rewards - stats["mean"]) / stats["std"]


def load_reward_model(name_or_path: str, *, trust_remote_code: bool = False, dtype: torch.dtype | None = None,
                      append_eos: bool | None = None, allow_pickle: bool = False):
    """Load a saved reward model (rewardlab's, TRL's, OpenRLHF's or any 1-label HF classifier): (RewardModel, tokenizer, meta).
    A multi-attribute RM loads with its A outputs and gives their weighted sum as its reward (``RewardModel.head_rewards``);
    ``meta["attributes"]`` is then {"names", "weights"} (None for a scalar RM).

    The sequence convention is resolved here (:func:`rewardlab.data.sequence.resolve_append_eos`: the
    ``append_eos`` argument, else what ``rewardlab.json`` recorded, else the ecosystem's default) and set on the
    model; ``meta["sequence"]`` says what was chosen and why, ``meta["reward_stats"]`` the saved reward mean/std.
    """
    model, tokenizer = load_backbone(name_or_path, trust_remote_code=trust_remote_code, dtype=dtype, allow_pickle=allow_pickle,
                                     num_labels=None)
    meta = read_metadata(name_or_path)
    model.eval()
    rm = RewardModel(model, pooling=meta.get("pooling"))
    rm.append_eos, source = resolve_append_eos(append_eos, meta, tokenizer, rm.pooling)
    meta = {**meta, "sequence": {**describe(rm.append_eos, tokenizer, rm.pooling), "source": source},
            "reward_stats": reward_stats(meta, model.config),
            "attributes": dict(zip(("names", "weights"), attribute_spec(model.config))) if rm.attributes else None}
    return rm, tokenizer, meta
