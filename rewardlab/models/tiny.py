"""Tiny random models and tokenizers trained on the fly, for tests and for users without a hub.

``build_tiny(arch, corpus)`` returns (model, tokenizer) where the tokenizer is a byte-level BPE
trained offline on ``corpus`` and the model is a small random 1-label sequence classifier whose
vocabulary matches the tokenizer. Sizes are named (``SIZES``) like litgpt's configs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    GPT2Config,
    LlamaConfig,
    PreTrainedTokenizerFast,
)

SPECIAL = {"pad": "<pad>", "bos": "<s>", "eos": "</s>", "unk": "<unk>", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}

# A minimal chat template so conversational data works with tiny models too.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

# name -> (layers, width, heads, intermediate)
SIZES = {
    "nano": (2, 32, 2, 64),
    "micro": (2, 64, 4, 128),
    "mini": (4, 256, 4, 1024),  # ~5M parameters with an 8k vocabulary: the performance benchmark's size
    "small": (6, 512, 8, 1536),  # ~19M non-embedding parameters: the ~20M benchmark model
    "0.5b": (28, 1024, 16, 4096),  # ~0.47B non-embedding parameters: the GPU benchmark's size (bench/bench_gpu.py)
}
ARCHS = ("llama", "gpt2", "bert")


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 2000) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on ``corpus``; any text encodes (no unknown bytes)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=SPECIAL["pad"],
        bos_token=SPECIAL["bos"],
        eos_token=SPECIAL["eos"],
        unk_token=SPECIAL["unk"],
        cls_token=SPECIAL["cls"],
        sep_token=SPECIAL["sep"],
        mask_token=SPECIAL["mask"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "right"
    fast.model_max_length = 1024
    return fast


def tiny_config(arch: str, vocab_size: int, size: str = "nano", max_positions: int = 1024, tokenizer=None):
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; known: {', '.join(ARCHS)}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; known: {', '.join(SIZES)}")
    layers, width, heads, inter = SIZES[size]
    ids = {}
    if tokenizer is not None:
        ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    common = dict(vocab_size=vocab_size, num_labels=1, **ids)
    if arch == "llama":
        return LlamaConfig(hidden_size=width, intermediate_size=inter, num_hidden_layers=layers, num_attention_heads=heads,
                           num_key_value_heads=heads, max_position_embeddings=max_positions, tie_word_embeddings=False, **common)
    if arch == "gpt2":
        return GPT2Config(n_embd=width, n_layer=layers, n_head=heads, n_inner=inter, n_positions=max_positions, **common)
    return BertConfig(hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=inter,
                      max_position_embeddings=max_positions, **common)


def build_tiny(arch: str = "llama", corpus: Iterable[str] = (), size: str = "nano", vocab_size: int = 2000, seed: int = 0):
    """(model, tokenizer): a random ``arch`` sequence classifier of ``size`` and a BPE tokenizer trained on ``corpus``."""
    import torch

    corpus = list(corpus)
    if not corpus:
        raise ValueError("build_tiny needs some text to train its tokenizer on (corpus is empty)")
    tokenizer = train_tokenizer(corpus, vocab_size=vocab_size)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(tiny_config(arch, len(tokenizer), size, tokenizer=tokenizer))
    return model, tokenizer


def save_tiny(output: str | Path, arch: str = "llama", corpus: Iterable[str] = (), size: str = "nano",
              vocab_size: int = 2000, seed: int = 0) -> Path:
    model, tokenizer = build_tiny(arch, corpus, size, vocab_size, seed)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    return output


def texts_of(records) -> list[str]:
    """Every string in a list of records (or plain dicts), for training a tokenizer."""
    out = []

    def walk(x):
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        elif hasattr(x, "__dataclass_fields__"):
            for k in x.__dataclass_fields__:
                walk(getattr(x, k))

    for r in records:
        walk(r)
    return out
