"""The length probe tells a length-hacked RM from an unbiased one (the built-in task's labeler gives both).

Two tiny RMs trained on the same pairs of the built-in task, labelled from the gold without (λ = 0) and with a
strong length preference (λ = 2, ``tasks.labeler.label_pair``). Appending 30 words of neutral filler must raise
the biased RM's reward (interval above 0) and leave the unbiased one far lower: its gold rewards a target
length and penalises filler, so the unbiased RM's change is negative rather than zero (measured: −1.40 vs
+2.98 with 800 pairs; docs/explain.md).
"""

from __future__ import annotations

import pytest

from rewardlab.config import TrainConfig
from rewardlab.explain.probes import run_probes
from rewardlab.models.reward_model import load_reward_model
from rewardlab.models.scoring import score_texts
from rewardlab.tasks.gold import GoldTask, default_corpus
from rewardlab.tasks.jsonl import to_jsonl


@pytest.mark.slow
def test_length_probe_separates_biased_and_unbiased_rms(tmp_path):
    from rewardlab.models.tiny import save_tiny
    from rewardlab.train.loop import train

    task = GoldTask()
    base = save_tiny(tmp_path / "base", "llama", default_corpus(), "nano", vocab_size=1000)
    test = task.make_pairs(40, seed=99)[0]
    prompts = [r.prompt for r in test for _ in (0, 1)]
    responses = [x for r in test for x in (r.chosen, r.rejected)]
    probe = {}
    for lam in (0.0, 2.0):
        to_jsonl(task.make_pairs(400, seed=1, length_bias=lam)[0], tmp_path / f"train{lam}.jsonl")
        train(TrainConfig(data=str(tmp_path / f"train{lam}.jsonl"), model=str(base), output=str(tmp_path / f"rm{lam}"),
                          epochs=2, lr=3e-3, batch_size=16, eval_split=0, progress=False, seed=0), log=lambda m: None)
        rm, tok, _ = load_reward_model(str(tmp_path / f"rm{lam}"))
        rows = run_probes(lambda p, r: score_texts(rm, tok, p, r)[0], prompts, responses, ["length"], words=30,
                          resamples=500)
        probe[lam] = rows[0]
    biased, unbiased = probe[2.0], probe[0.0]
    assert biased["ci_low"] > 0, biased
    assert biased["mean_delta"] > unbiased["mean_delta"] + 1.0, (biased, unbiased)
