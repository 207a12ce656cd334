"""``distill`` (sequence-level knowledge distillation, Kim & Rush 2016): the loss is the student's mean token NLL
of the teacher's tokens (by hand, one unpadded sequence at a time), greedy teacher outputs are the argmax path,
the run's first logged loss and teacher–student KL equal those of its step-0 teacher outputs, and the command end
to end (sampled and greedy teacher, an lm: reward of the teacher, a teacher with another tokenizer refused)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from rewardlab.config import OptimizeConfig
from rewardlab.optimize.cli import app
from rewardlab.optimize.policy import build_policy, sft_loss
from rewardlab.optimize.sampling import forward_tokens, sample

runner = CliRunner()
PROMPTS = ["Question: What do you think of coffee?\nAnswer:", "Question: Tell me about jazz.\nAnswer:",
           "Question: What comes to mind when you think of travelling by train?\nAnswer:"]


@pytest.fixture(scope="module")
def teacher(tiny_policy, tmp_path_factory):
    """A tiny teacher: the tiny policy after 4 steps of MLE on the built-in task's quality-1 responses (mle_rl, λ = 0)."""
    from rewardlab.optimize.run import optimize

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("teacher")
    optimize(OptimizeConfig(method="mle_rl", mle_lambda=0.0, policy=str(tiny_policy), output=str(out), steps=4, batch_size=8, k=2,
                            lr=3e-3, eval_prompts=4, max_new_tokens=12, progress=False), log=lambda m: None)
    return out / "policy"


def test_distill_loss_is_the_student_nll_of_the_teacher_tokens(random_lm):
    """Teacher = another random nano Llama on the same tokenizer. For each of its 3 sampled completions, the student
    reads [prompt | completion] unpadded; NLL_i = −Σ_t log S(y_t | x, y_<t) over the completion's tokens (EOS
    included). sft_loss on the padded rollout = Σ_i NLL_i / Σ_i |y_i|."""
    student, tok = random_lm
    teacher = build_policy(tok, "nano", seed=1).eval()
    ro = sample(teacher, tok, PROMPTS, max_new_tokens=10, seed=0)
    with torch.no_grad():
        loss = float(sft_loss(student, ro.prompt_ids, ro.prompt_mask, ro.response_ids, ro.response_mask))
        nll, tokens = 0.0, 0
        for i in range(len(PROMPTS)):
            p = ro.prompt_ids[i][ro.prompt_mask[i].bool()]
            y = ro.response_ids[i][ro.response_mask[i].bool()]
            logp = torch.log_softmax(student(torch.cat([p, y])[None]).logits[0].float(), -1)  # (P+R, V)
            nll -= sum(float(logp[len(p) - 1 + t, y[t]]) for t in range(len(y)))
            tokens += len(y)
    assert loss == pytest.approx(nll / tokens, rel=1e-5)


def test_greedy_teacher_outputs_are_the_argmax_path(random_lm):
    """greedy=True: the same completions whatever the seed, and the first token is the argmax after the prompt."""
    model, tok = random_lm
    a = sample(model, tok, PROMPTS, max_new_tokens=6, seed=0, greedy=True)
    b = sample(model, tok, PROMPTS, max_new_tokens=6, seed=5, greedy=True)
    assert torch.equal(a.response_ids, b.response_ids)
    with torch.no_grad():
        for i in range(len(PROMPTS)):
            p = a.prompt_ids[i][a.prompt_mask[i].bool()]
            assert int(model(p[None]).logits[0, -1].argmax()) == int(a.response_ids[i, 0])


def test_first_logged_loss_and_kl_are_those_of_the_step_zero_teacher_outputs(tiny_policy, teacher, tmp_path):
    """The train line of step 1 reports, before the update: loss = sft_loss of the initial student on the teacher's
    step-0 outputs, kl_teacher_student = mean_i Σ_t (log T − log S)(y_it) on them; eval lines report
    kl_student_teacher on the student's own samples (at step 0 > 0: the teacher differs from the student)."""
    import rewardlab.optimize.run as run
    from rewardlab.optimize.policy import load_policy

    cfg = OptimizeConfig(method="distill", teacher=str(teacher), policy=str(tiny_policy), output=str(tmp_path / "d"), steps=1,
                         batch_size=3, k=2, minibatch_size=4, lr=1e-3, eval_prompts=4, max_new_tokens=12, seed=2, progress=False)
    run.optimize(cfg, log=lambda m: None)
    lines = [json.loads(x) for x in (tmp_path / "d" / "log.jsonl").read_text().splitlines()]
    first = next(r for r in lines if r["split"] == "train")
    s = run.Session(cfg, log=lambda m: None)
    rows = [r for r in s.rows_for_step(0, cfg.batch_size) for _ in range(cfg.k)]
    ro = run.teacher_outputs(s, rows, run._step_seed(cfg, 0, 0))
    student, _ = load_policy(str(tiny_policy))
    tensors = (ro.prompt_ids, ro.prompt_mask, ro.response_ids, ro.response_mask)
    with torch.no_grad():
        loss = float(sft_loss(student, *tensors))
        kl = (forward_tokens(s.teacher, *tensors).logprobs - forward_tokens(student, *tensors).logprobs).sum(-1).mean()
    assert first["loss"] == pytest.approx(loss, rel=1e-4)
    assert first["kl_teacher_student"] == pytest.approx(float(kl), rel=1e-4, abs=1e-5)
    assert first["teacher_gold"] == pytest.approx(sum(s.gold(ro.prompts, ro.completions)) / len(rows))
    assert lines[0]["split"] == "eval" and lines[0]["kl_student_teacher"] > 0


def test_distill_command_sampled_greedy_and_a_foreign_tokenizer(tiny_policy, teacher, random_lm, tmp_path):
    """Sampled teacher with the teacher's lm: reward as proxy, 2 steps; greedy teacher, 1 step; a teacher whose
    tokenizer is not the student's is refused with a message that says so."""
    common = ["--policy", tiny_policy, "--teacher", teacher, "--batch-size", 2, "--k", 2, "--lr", 1e-3, "--eval-prompts", 4,
              "--max-new-tokens", 10, "--no-progress"]
    result = runner.invoke(app, ["distill", *map(str, common), "--output", str(tmp_path / "s"), "--steps", "2",
                                 "--reward", f"lm:{teacher}"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["method"] == "distill" and out["final"]["kl_student_teacher"] is not None and out["final"]["proxy"] < 0  # log-lik.
    train = [json.loads(x) for x in (tmp_path / "s" / "log.jsonl").read_text().splitlines() if '"train"' in x]
    assert len(train) == 2 and all({"loss", "kl_teacher_student", "teacher_gold", "teacher_proxy"} <= set(r) for r in train)
    result = runner.invoke(app, ["distill", *map(str, common), "--output", str(tmp_path / "g"), "--steps", "1",
                                 "--teacher-sampling", "greedy"])
    assert result.exit_code == 0, result.output
    model, tok = random_lm
    model.save_pretrained(tmp_path / "foreign")
    tok.save_pretrained(tmp_path / "foreign")
    bad = runner.invoke(app, ["distill", "--policy", str(tiny_policy), "--teacher", str(tmp_path / "foreign"), "--output",
                              str(tmp_path / "bad"), "--no-progress"])
    assert bad.exit_code == 2 and "tokenizer differs" in bad.output, bad.output
    bad = runner.invoke(app, ["distill", "--policy", str(tiny_policy), "--output", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "needs --teacher" in bad.output
