"""A checkpoint written by TRL's RewardTrainer, evaluated by ``rewardlab eval``, gives the accuracy TRL reports.

What TRL 1.16 does (trl/trainer/reward_trainer.py, read in the installed package):
  * text data: appends the EOS token to ``chosen`` / ``rejected``, then tokenises prompt + chosen
    (plain concatenation) → rewardlab's default for a decoder checkpoint without rewardlab.json (no flag
    needed; ``--no-append-eos`` reads one token earlier); responses here start with a space, so
    rewardlab's prompt/response join is the same plain concatenation;
  * pads on the right and reads the reward with the HF sequence-classification head (last non-pad
    token) → rewardlab's last-token pooling;
  * ``compute_loss`` logs accuracy = mean over the batch of 1[r_chosen > r_rejected] (ties wrong, as
    rewardlab), averaged over eval batches in ``evaluate()``. With one eval batch holding every pair
    that is the plain accuracy over the pairs;
  * RewardConfig defaults to bf16 mixed precision (``bf16=True`` unless fp16): set False here so both
    sides compute in float32 and rewards agree within 1e-4 (under bf16 autocast TRL's own numbers carry
    bf16 rounding, ~1e-3).
Skipped when trl is not installed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

trl = pytest.importorskip("trl", reason="trl is not installed (pip install trl==1.16.0 to run the TRL interoperability test)")

N_EVAL = 24


def test_trl_reward_trainer_checkpoint_same_accuracy(tiny_llama, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from conftest import toy_pairs
    from rewardlab.config import EvalConfig
    from rewardlab.eval.run import run_eval

    def rows(n, seed):
        return [{"prompt": r["prompt"], "chosen": " " + r["chosen"], "rejected": " " + r["rejected"]}
                for r in toy_pairs(n, seed=seed)]

    train, test = rows(64, 11), rows(N_EVAL, 12)
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=1)
    args = RewardConfig(output_dir=str(tmp_path / "trl"), max_steps=6, per_device_train_batch_size=16,
                        per_device_eval_batch_size=N_EVAL, learning_rate=3e-3, report_to="none", save_strategy="no",
                        logging_strategy="no", use_cpu=True, bf16=False, disable_tqdm=True, seed=0, dataloader_num_workers=0)
    trainer = RewardTrainer(model=model, args=args, processing_class=tok, train_dataset=Dataset.from_list(train),
                            eval_dataset=Dataset.from_list(test))
    trainer.train()
    trl_metrics = trainer.evaluate()
    assert len(trainer.eval_dataset) == N_EVAL  # none filtered by max_length: one eval batch holds every pair
    out = tmp_path / "trl-rm"
    trainer.save_model(str(out))

    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in test))
    ours = run_eval(EvalConfig(model=str(out), data=str(data), progress=False, bootstrap=0,
                               output=str(tmp_path / "eval.json")))  # no flags
    assert ours["sequence"]["append_eos"] is True and ours["sequence"]["source"] == "default"
    assert ours["n_pairs"] == N_EVAL
    assert ours["accuracy"] == pytest.approx(trl_metrics["eval_accuracy"], abs=1e-6)  # TRL averages in float32
    assert round(ours["accuracy"] * N_EVAL) == round(trl_metrics["eval_accuracy"] * N_EVAL)  # same number of pairs right
    assert ours["mean_margin"] == pytest.approx(trl_metrics["eval_margin"], abs=1e-4)

    # The same rewards pair by pair: TRL's predictions are the logits of chosen rows, then rejected rows.
    pred = trainer.predict(trainer.eval_dataset).predictions.reshape(-1)  # (2B,)
    theirs = np.stack([pred[:N_EVAL], pred[N_EVAL:]], 1)  # (B, 2)
    rows_out = json.loads((tmp_path / "eval.json").read_text())
    assert rows_out["accuracy"] == ours["accuracy"]
    from rewardlab.models.scoring import score_dataset
    from rewardlab.models.reward_model import load_reward_model
    from rewardlab.types import PairRecord

    rm, rtok, _ = load_reward_model(str(out))
    recs = [PairRecord(r["prompt"], r["chosen"], r["rejected"]) for r in test]
    mine = np.stack(score_dataset(rm, rtok, recs).rewards)
    assert np.max(np.abs(mine - theirs)) < 1e-4
    # with --no-append-eos the reward is read one token earlier: different numbers
    plain = np.stack(score_dataset(rm, rtok, recs, append_eos=False).rewards)
    assert np.max(np.abs(plain - theirs)) > 1e-3
    assert torch.__version__  # torch untouched by the trl install (checked when it was installed)
