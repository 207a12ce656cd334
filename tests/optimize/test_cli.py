"""``rewardlab optimize`` end to end on the tiny policy: help texts, resolved configs, JSON summaries,
prompts files with reward columns, checkpoint + resume, and the over-optimisation report with an RM."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.main import get_command
from typer.testing import CliRunner

from rewardlab.optimize.cli import app

runner = CliRunner()
SMALL = ["--eval-prompts", "8", "--max-new-tokens", "16", "--seed", "1"]


def invoke(args: list[str]) -> dict:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + (repr(result.exception) if result.exception else "")
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_command_and_option_has_help():
    group = get_command(app)
    assert set(group.commands) == {"bon", "rwr", "raft", "reinforce", "rloo", "ppo", "mle_rl", "distill", "policy", "overopt", "sweep"}
    for name, cmd in group.commands.items():
        assert cmd.help, name
        for p in cmd.params:
            assert getattr(p, "help", None), f"{name} {p.name} has no help"
        assert runner.invoke(app, [name, "--help"]).exit_code == 0


def test_policy_command_writes_a_loadable_causal_lm(tmp_path):
    out = invoke(["policy", "--output", tmp_path / "p", "--n-examples", "64", "--epochs", "1", "--size", "nano", "--vocab-size", "400"])
    assert out["steps"] == 2 and (tmp_path / "p" / "rewardlab_config.yaml").is_file()
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(tmp_path / "p").config.num_hidden_layers == 2
    assert yaml.safe_load((tmp_path / "p" / "rewardlab_config.yaml").read_text())["n_examples"] == 64


def test_bon_with_gold_and_with_a_prompts_file_of_references(tiny_policy, tmp_path):
    out = invoke(["bon", "--policy", tiny_policy, "--output", tmp_path / "bon", "--n", 1, "--n", 4, *SMALL])
    assert [p["n"] for p in out["curve"]] == [1, 4] and out["curve"][1]["kl"] == pytest.approx(0.6362943611)
    cfg = yaml.safe_load((tmp_path / "bon" / "rewardlab_config.yaml").read_text())
    assert cfg["method"] == "bon" and cfg["reward"] == ["gold"] and cfg["n"] == [1, 4]
    assert len((tmp_path / "bon" / "selections.jsonl").read_text().splitlines()) == 8
    rows = [{"question": f"Question: Tell me about coffee number {i}.\nAnswer:", "reference": "I love the coffee."} for i in range(12)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = invoke(["bon", "--policy", tiny_policy, "--output", tmp_path / "bleu", "--prompts", tmp_path / "p.jsonl",
                  "--prompt-field", "question", "--reward", "bleu", "--reward", "rouge:rouge1", "--reward-weight", 1,
                  "--reward-weight", 0.5, "--n", 1, "--n", 2, "--eval-prompts", 4, "--max-new-tokens", 16])
    assert out["curve"][0]["gold"] is None and 0.0 <= out["curve"][1]["proxy"] <= 1.5
    bad = runner.invoke(app, ["bon", "--policy", str(tiny_policy), "--reward", "bleurt", "--output", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "known: gold, rm" in bad.output


def test_checkpoint_and_resume_reproduce_an_uninterrupted_run(tiny_policy, tmp_path):
    """3 REINFORCE steps in one go vs 2 steps (checkpoint every step) + resume to 3: identical logs (the cut
    run's own final evaluation at step 2 stays in its log, as it happened)."""
    common = ["--policy", tiny_policy, "--batch-size", 4, "--k", 2, "--lr", 1e-3, *SMALL]
    full = invoke(["reinforce", "--output", tmp_path / "full", "--steps", 3, *common])
    invoke(["reinforce", "--output", tmp_path / "cut", "--steps", 2, "--save-every", 1, *common])
    assert (tmp_path / "cut" / "checkpoints" / "step-2" / "trainer_state.pt").is_file()
    resumed = invoke(["reinforce", "--output", tmp_path / "cut", "--steps", 3, "--resume", *common])
    assert resumed["steps"] == full["steps"] == 3
    drop = lambda rec: {k: v for k, v in rec.items() if k != "seconds"}  # noqa: E731
    read = lambda p: [drop(json.loads(x)) for x in (p / "log.jsonl").read_text().splitlines()]  # noqa: E731
    a, b = read(tmp_path / "full"), read(tmp_path / "cut")
    assert (b[3]["step"], b[3]["split"]) == (2, "eval")
    b = b[:3] + b[4:]
    assert [(r["step"], r["split"]) for r in a] == [(r["step"], r["split"]) for r in b]
    for ra, rb in zip(a, b):
        for k in ra:
            if isinstance(ra[k], float):
                assert ra[k] == pytest.approx(rb[k], rel=1e-4, abs=1e-5), (ra["step"], k)


def test_overopt_with_a_reward_model_writes_the_report(tiny_policy, tiny_llama, tmp_path):
    out = invoke(["overopt", "--rm", tiny_llama, "--name", "tiny-rm", "--policy", tiny_policy, "--output", tmp_path / "o",
                  "--rl-method", "reinforce", "--bon-n", 1, "--bon-n", 2, "--bon-n", 4, "--steps", 2, "--batch-size", 4,
                  "--k", 2, "--lr", 1e-3, *SMALL])
    assert [(c["rm"], c["form"]) for c in out["curves"]] == [("tiny-rm", "bon"), ("tiny-rm", "rl")]
    assert (tmp_path / "o" / "overopt.png").read_bytes()[:4] == b"\x89PNG"
    assert "tiny-rm" in (tmp_path / "o" / "overopt.md").read_text()
    assert (tmp_path / "o" / "tiny-rm" / "bon" / "summary.json").is_file()
    again = invoke(["overopt", "--output", tmp_path / "o2", "--bon-run", f"a={tmp_path / 'o' / 'tiny-rm' / 'bon'}",
                    "--rl-run", f"a={tmp_path / 'o' / 'tiny-rm' / 'reinforce'}"])
    assert again["curves"][0]["gold_alpha"] == pytest.approx(out["curves"][0]["gold_alpha"])


def test_an_output_holding_a_run_is_refused_unless_overwrite(tiny_policy, tmp_path):
    """A second run into the same --output would replace the first one's log.jsonl without a word: refused."""
    from typer.testing import CliRunner

    from rewardlab.cli import app

    args = ["optimize", "bon", "--policy", str(tiny_policy), "--output", str(tmp_path / "bon"), "--n", "1", "--n", "2", *map(str, SMALL)]
    assert CliRunner().invoke(app, args).exit_code == 0
    again = CliRunner().invoke(app, args)
    assert again.exit_code != 0 and "already holds a run" in again.output and "--overwrite" in again.output
    assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 0
