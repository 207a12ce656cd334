"""Hand-made tokenizers and reward models with known behaviour, for tests whose numbers are derived by hand."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from torch import nn
from transformers import PreTrainedTokenizerFast

from rewardlab.types import RewardOutput

WORDS = ["q", "a", "b", "x", "y", "z", "good", "bad", "fine", "ok"]


def word_tokenizer(words=WORDS) -> PreTrainedTokenizerFast:
    """One token per whitespace-separated word (no special tokens added), pad id 0, EOS id 1."""
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


class LengthRM(nn.Module):
    """reward = number of real tokens (prompt + response): in a pair the prompt cancels, so Δ = len_c − len_r."""

    pooling = "last_token"

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, input_ids, attention_mask):
        return RewardOutput(attention_mask.float().sum(-1) + 0 * self.dummy)


class WordRM(nn.Module):
    """reward = (#"good" − #"bad") among the real tokens: a model that reads content, not length."""

    pooling = "last_token"

    def __init__(self, tokenizer):
        super().__init__()
        self.good, self.bad = tokenizer.convert_tokens_to_ids(["good", "bad"])
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, input_ids, attention_mask):
        real = attention_mask.bool()
        score = ((input_ids == self.good) & real).float().sum(-1) - ((input_ids == self.bad) & real).float().sum(-1)
        return RewardOutput(score + 0 * self.dummy)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
