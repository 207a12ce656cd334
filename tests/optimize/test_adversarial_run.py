"""An optimiser with the adversarial reward end to end: the discriminator trains during the run (not during
evaluation), its statistics reach log.jsonl, it is saved beside the policy, and checkpoint + resume carry it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rewardlab.config import OptimizeConfig
from rewardlab.optimize.run import optimize
from rewardlab.rewards import DiscriminatorReward


def prompts_with_references(path, n: int = 24):
    """Built-in task prompts, each with one high-quality task response as its ``reference``."""
    from rewardlab.tasks.gold import GoldTask

    task = GoldTask()
    rng = np.random.default_rng(0)
    rows = [{"prompt": p, "reference": task.sample_responses(p, 1, rng, quality=1.0)[0]} for p in task.prompts(n, seed=1)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_rloo_with_an_adversarial_reward_logs_saves_and_resumes(tiny_policy, tiny_llama, tmp_path):
    """3 RLOO steps straight vs 2 steps (checkpoint every step) + resume to 3: identical train logs, disc_* included
    (the discriminator's weights, optimiser and updates come back from trainer_state.pt). Evaluation does not train it:
    1 update per train step."""
    prompts = prompts_with_references(tmp_path / "p.jsonl")
    base = dict(method="rloo", policy=str(tiny_policy), prompts=str(prompts), gold=True, reward=[f"adversarial:{tiny_llama};lr=1e-3"],
                batch_size=4, k=2, eval_prompts=8, max_new_tokens=16, lr=1e-3, seed=1)
    full = optimize(OptimizeConfig(**base, steps=3, output=str(tmp_path / "full")), log=lambda m: None)
    optimize(OptimizeConfig(**base, steps=2, save_every=1, output=str(tmp_path / "cut")), log=lambda m: None)
    resumed = optimize(OptimizeConfig(**base, steps=3, resume=True, output=str(tmp_path / "cut")), log=lambda m: None)
    assert full["steps"] == resumed["steps"] == 3 and full["final"]["gold"] is not None

    read = lambda p: [json.loads(x) for x in (p / "log.jsonl").read_text().splitlines()]  # noqa: E731
    train = lambda p: [r for r in read(p) if r["split"] == "train"]  # noqa: E731
    a, b = train(tmp_path / "full"), train(tmp_path / "cut")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b):
        assert {"disc_loss", "disc_accuracy", "disc_p_ref", "disc_p_sample"} <= set(ra)
        assert 0.0 <= ra["disc_accuracy"] <= 1.0 and ra["disc_loss"] > 0
        for k in ("disc_loss", "disc_accuracy", "disc_p_ref", "proxy", "kl_k1"):
            assert ra[k] == pytest.approx(rb[k], rel=1e-4, abs=1e-5), (ra["step"], k)
    assert all("disc_loss" not in r for r in read(tmp_path / "full") if r["split"] == "eval")

    saved = DiscriminatorReward.load(str(tmp_path / "full" / "discriminator"))
    assert saved.updates == 3  # one per train step; the 2 evaluations did not train it
    again = DiscriminatorReward.load(str(tmp_path / "cut" / "discriminator"))
    probe = [json.loads(x) for x in prompts.read_text().splitlines()][:4]
    args = [r["prompt"] for r in probe], [r["reference"] for r in probe]
    assert again.updates == 3 and again.logits(*args) == pytest.approx(saved.logits(*args), abs=1e-5)
