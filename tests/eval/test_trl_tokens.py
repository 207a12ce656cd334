"""The token ids rewardlab builds, and the token it reads the reward at, are TRL's, for each backbone kind.

TRL 1.16's RewardTrainer tokenises the same records when it is constructed (``trainer.train_dataset``
holds ``chosen_ids`` / ``rejected_ids``); its model reads the reward at the last non-pad token
(transformers' sequence-classification head). For each kind below:

* rewardlab's ids under its default convention (no flags) equal TRL's ids, record by record;
* rewardlab's rewards on those records equal the HF model's logits on TRL's padded batch (the same
  token is read), within 1e-5.

Kinds: a decoder tokenizer without BOS/EOS post-processing (the tiny Llama / GPT-2), one whose
post-processor adds BOS (Llama-style), one whose pad token is its EOS (GPT-2-style: TRL skips the
appended EOS when reading), and chat data whose template writes the BOS itself (kept once).
Encoders are not compared: TRL 1.16 refuses text data when the tokenizer has no EOS (BERT's has
none: ``TypeError`` in its add-EOS step), see bench/bench_parity.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

trl = pytest.importorskip("trl", reason="trl is not installed (pip install trl==1.16.0)")


def _rows(n: int, seed: int) -> list[dict]:
    from conftest import toy_pairs

    return [{"prompt": r["prompt"], "chosen": " " + r["chosen"], "rejected": " " + r["rejected"]} for r in toy_pairs(n, seed=seed)]


def _chat_rows(n: int, seed: int) -> list[dict]:
    return [{"prompt": [{"role": "user", "content": r["prompt"]}],
             "chosen": [{"role": "assistant", "content": r["chosen"].strip()}],
             "rejected": [{"role": "assistant", "content": r["rejected"].strip()}]} for r in _rows(n, seed)]


def _variant(path, kind: str):
    """(model, tokenizer) of the tiny Llama in one of the tokenizer kinds."""
    from tokenizers import processors
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    if kind == "bos":  # Llama-style: the post-processor puts <s> first
        tok._tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.bos_token_id)])
    if kind == "pad_is_eos":  # GPT-2-style: no pad token of its own
        tok.pad_token = tok.eos_token
        model.config.pad_token_id = tok.eos_token_id
    if kind == "chat_bos":  # the template writes BOS, the tokenizer would add it too
        tok._tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.bos_token_id)])
        tok.chat_template = "{{ bos_token }}" + tok.chat_template
    return model, tok


@pytest.mark.parametrize("kind", ["plain", "bos", "pad_is_eos", "chat_bos"])
def test_same_ids_and_same_reward_token_as_trl(tiny_llama, tmp_path, kind):
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    from rewardlab.data.sequence import default_append_eos
    from rewardlab.models.scoring import encode_sequences, score_dataset
    from rewardlab.models.reward_model import RewardModel
    from rewardlab.types import PairRecord

    rows = _chat_rows(12, 5) if kind == "chat_bos" else _rows(12, 5)
    model, tok = _variant(tiny_llama, kind)
    args = RewardConfig(output_dir=str(tmp_path), max_steps=1, report_to="none", save_strategy="no", use_cpu=True, bf16=False,
                        disable_tqdm=True, dataloader_num_workers=0)
    trainer = RewardTrainer(model=model, args=args, processing_class=tok, train_dataset=Dataset.from_list(rows))
    theirs = [(list(r["chosen_ids"]), list(r["rejected_ids"])) for r in trainer.train_dataset]
    assert len(theirs) == len(rows)

    records = [PairRecord(r["prompt"], r["chosen"], r["rejected"]) for r in rows]
    rm = RewardModel(model.eval(), append_eos=default_append_eos(tok, "last_token"))  # what load_reward_model picks for a TRL folder
    assert rm.append_eos
    enc = encode_sequences(records, tok, max_length=1024, append_eos=rm.append_eos)
    ours = [(enc.ids[2 * i], enc.ids[2 * i + 1]) for i in range(len(records))]
    assert ours == theirs
    if kind in ("bos", "chat_bos"):
        assert all(s[0] == tok.bos_token_id and s[1] != tok.bos_token_id for pair in ours for s in pair)  # one BOS
    if kind == "chat_bos":
        assert all(s[-1] != tok.eos_token_id for pair in ours for s in pair)  # the template ends the turn; no EOS added

    # the reward TRL's model reads on its own collated batch (chosen rows, then rejected rows)
    batch = trainer.data_collator([dict(r) for r in trainer.train_dataset])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.squeeze(-1).numpy()
    n = len(rows)
    mine = np.stack(score_dataset(rm, tok, records, max_length=1024).rewards)  # (B, 2)
    np.testing.assert_allclose(mine, np.stack([logits[:n], logits[n:]], 1), atol=1e-5)
