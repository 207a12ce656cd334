"""``mle_rl``: L = NLL(references) − λ·(1/N) Σ_i A_i log π(y_i|x_i). The loss on a hand batch, λ = 0 as plain
MLE (the run's gradient equals the gradient of ``sft_loss`` on the step's references), the command end to end
(built-in task and a --prompts file of references), and the λ sweep's report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rewardlab.config import OptimizeConfig
from rewardlab.optimize import algorithms as A
from rewardlab.optimize.cli import app

runner = CliRunner()
SMALL = ["--eval-prompts", "8", "--max-new-tokens", "16", "--seed", "1", "--no-progress"]


def invoke(args: list) -> dict:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + (repr(result.exception) if result.exception else "")
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_mle_rl_loss_by_hand():
    """NLL 1.5, log π = (−2, −3, −1, −4), A = (0.5, −0.5, 1, −1), λ = 0.3:
    mean A·log π = (−1 + 1.5 − 1 + 4)/4 = 0.875, so L = 1.5 − 0.3·0.875 = 1.2375;
    ∂L/∂NLL = 1, ∂L/∂log π_i = −λ A_i / N = (−0.0375, 0.0375, −0.075, 0.075); no gradient reaches A.
    λ = 0 gives the NLL alone; Paulus et al.'s (1 − γ)·L_ml + γ·L_rl is (1 − γ)·L at λ = γ/(1 − γ)."""
    nll = torch.tensor(1.5, requires_grad=True)
    seq_logp = torch.tensor([-2.0, -3.0, -1.0, -4.0], requires_grad=True)
    adv = torch.tensor([0.5, -0.5, 1.0, -1.0], requires_grad=True)
    loss = A.mle_rl_loss(nll, seq_logp, adv, 0.3)
    assert float(loss.detach()) == pytest.approx(1.2375)
    loss.backward()
    assert float(nll.grad) == pytest.approx(1.0)
    assert seq_logp.grad.tolist() == pytest.approx([-0.0375, 0.0375, -0.075, 0.075])
    assert adv.grad is None
    with torch.no_grad():
        assert float(A.mle_rl_loss(nll, seq_logp, adv, 0.0)) == pytest.approx(1.5)
        gamma = 0.9
        paulus = (1 - gamma) * nll + gamma * A.policy_gradient_loss(seq_logp, adv)
        assert float(paulus) == pytest.approx((1 - gamma) * float(A.mle_rl_loss(nll, seq_logp, adv, gamma / (1 - gamma))))


def test_lambda_zero_step_has_the_gradient_of_plain_mle(tiny_policy, tmp_path, monkeypatch):
    """One mle_rl step at λ = 0, the batch cut into chunks of 2 prompts (minibatch 4, k 2): the gradient the run
    clips and applies equals the gradient of ``sft_loss`` (mean token NLL) on the step's 6 references, computed
    in one piece on a fresh copy of the initial policy; and the weights moved."""
    import rewardlab.optimize.run as run
    from rewardlab.optimize.policy import load_policy, sft_loss

    grads = []
    real = run._clip_and_step

    def spy(s):
        grads.append({n: p.grad.detach().clone() for n, p in s.acc.unwrap_model(s.module).lm.named_parameters()})
        return real(s)

    monkeypatch.setattr(run, "_clip_and_step", spy)
    cfg = OptimizeConfig(method="mle_rl", mle_lambda=0.0, policy=str(tiny_policy), output=str(tmp_path / "m"), steps=1,
                         batch_size=6, k=2, minibatch_size=4, lr=1e-3, eval_prompts=4, max_new_tokens=12, seed=3, progress=False)
    run.optimize(cfg, log=lambda m: None)
    s = run.Session(cfg, log=lambda m: None)  # the same prompt rows and references as the run's step 0
    rows = s.rows_for_step(0, cfg.batch_size)
    texts = run.references_of(rows, cfg.reference_field, np.random.default_rng([cfg.seed, 0, 0, 23]))
    model, _ = load_policy(str(tiny_policy))
    sft_loss(model, *s.encode_references(rows, texts)).backward()
    (got,) = grads
    for name, p in model.named_parameters():
        assert torch.allclose(got[name], p.grad, rtol=1e-4, atol=1e-7), name
    trained, _ = load_policy(str(tmp_path / "m" / "policy"))
    assert any(not torch.equal(a, b) for a, b in zip(trained.parameters(), model.parameters()))


def test_mle_rl_command_on_the_built_in_task_and_on_a_prompts_file(tiny_policy, tmp_path):
    """Built-in task: references are quality-1 task responses; every eval line has ref_nll, proxy and gold, every
    train line the batch's ref_nll and the reward term. --prompts: references from a field (a string or a list),
    with a bleu reward on the same field; a row without it is refused before any model loads."""
    out = invoke(["mle_rl", "--policy", tiny_policy, "--output", tmp_path / "task", "--steps", 2, "--batch-size", 4, "--k", 2,
                  "--lr", 1e-3, "--lambda", 0.5, *SMALL])
    lines = [json.loads(x) for x in (tmp_path / "task" / "log.jsonl").read_text().splitlines()]
    assert [(r["step"], r["split"]) for r in lines] == [(0, "eval"), (1, "train"), (2, "train"), (2, "eval")]
    for r in lines:
        assert r["ref_nll"] > 0 and r["gold"] is not None and r["proxy"] == pytest.approx(r["gold"])
    assert lines[1]["loss"] == pytest.approx(lines[1]["ref_nll"] + 0.5 * lines[1]["pg_loss"])
    assert out["mle_lambda"] == 0.5 and out["final"]["ref_nll"] == lines[-1]["ref_nll"]
    rows = [{"q": f"Question: Tell me about coffee number {i}.\nAnswer:",
             "answer": "I love the coffee." if i % 2 else ["The espresso is great.", "I adore the latte."]} for i in range(10)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = invoke(["mle_rl", "--policy", tiny_policy, "--output", tmp_path / "file", "--prompts", tmp_path / "p.jsonl",
                  "--prompt-field", "q", "--reference-field", "answer", "--reward", "bleu;column=answer", "--steps", 1,
                  "--batch-size", 2, "--k", 2, "--eval-prompts", 4, "--max-new-tokens", 8, "--no-progress"])
    assert out["final"]["gold"] is None and 0.0 <= out["final"]["proxy"] <= 1.0 and out["final"]["ref_nll"] > 0
    bad_rows = [{"q": "Tell me about tea.", "answer": "Tea."}, {"q": "And coffee?"}]
    (tmp_path / "bad.jsonl").write_text("".join(json.dumps(r) + "\n" for r in bad_rows))
    bad = runner.invoke(app, ["mle_rl", "--policy", "no-such-policy", "--prompts", str(tmp_path / "bad.jsonl"), "--prompt-field",
                              "q", "--reference-field", "answer", "--output", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "bad.jsonl:2: field 'answer'" in bad.output and "mle_rl's MLE term" in bad.output, bad.output
    bad = runner.invoke(app, ["mle_rl", "--policy", str(tiny_policy), "--k", "1", "--output", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "k >= 2" in bad.output


def test_sweep_runs_each_lambda_and_writes_the_trade_off(tiny_policy, tmp_path):
    """Two λ values, one step each: one run folder per λ, the points read from their final eval lines, the
    initial policy from step 0 (the same for both: same policy, seeds and held-out prompts)."""
    out = invoke(["sweep", "--policy", tiny_policy, "--output", tmp_path / "sw", "--lambda", "0,2", "--steps", 1,
                  "--batch-size", 2, "--k", 2, *SMALL])
    assert [p["lambda"] for p in out["points"]] == [0.0, 2.0]
    for p in out["points"]:
        final = json.loads((tmp_path / "sw" / f"lambda-{p['lambda']:g}" / "log.jsonl").read_text().splitlines()[-1])
        assert (p["ref_nll"], p["gold"], p["proxy"]) == (final["ref_nll"], final["gold"], final["proxy"])
    assert (tmp_path / "sw" / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    table = (tmp_path / "sw" / "sweep.md").read_text()
    assert "| initial policy |" in table and "| 2 |" in table
    assert "# sweep: " in (tmp_path / "sw" / "rewardlab_config.yaml").read_text()
