"""rewardlab explain: attributions on an RM whose answer is known, reward along the response, probes, the CLI.

The planted-word RM is trained on pairs of random filler where the chosen response alone contains
"pineapple" (one token of the tokenizer), so the word decides every preference and must carry the largest
attribution of the chosen side.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from toydata import FILLER, TOPICS, write_jsonl
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.config import TrainConfig
from rewardlab.explain import probes as P
from rewardlab.explain.attribution import attribute, baseline_token, prefix_rewards
from rewardlab.explain.tokens import encode_explained
from rewardlab.models.reward_model import load_reward_model
from rewardlab.models.scoring import score_ids, score_texts

WORD = "pineapple"


def planted_pairs(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)

    def response(plant: bool) -> str:
        body = [rng.choice(FILLER) for _ in range(rng.randint(4, 9))]
        if plant:
            body.insert(rng.randint(0, len(body)), WORD)
        return " ".join(body) + "."

    return [{"prompt": f"What do you think of {rng.choice(TOPICS)}?", "chosen": response(True), "rejected": response(False)}
            for _ in range(n)]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """(RM folder, held-out pairs file): a tiny Llama RM trained until the planted word decides the reward."""
    from rewardlab.models.tiny import save_tiny
    from rewardlab.train.loop import train

    d = tmp_path_factory.mktemp("planted")
    corpus = planted_pairs(200, 3)
    base = save_tiny(d / "base", "llama", [r[k] for r in corpus for k in ("prompt", "chosen", "rejected")], "nano",
                     vocab_size=600)
    train_file = write_jsonl(d / "train.jsonl", planted_pairs(240, 1))
    test_file = write_jsonl(d / "test.jsonl", planted_pairs(8, 2))
    cfg = TrainConfig(data=str(train_file), model=str(base), output=str(d / "rm"), epochs=2, lr=3e-3, batch_size=16,
                      eval_split=0, progress=False, mixed_precision="no", seed=0)
    train(cfg, log=lambda m: None)
    return d / "rm", test_file


def _word_span(response: str) -> tuple[int, int]:
    i = response.index(WORD)
    return i, i + len(WORD)


def test_tokens_are_the_scoring_ids_and_spans_index_the_response(planted):
    rm, tok, _ = load_reward_model(str(planted[0]))
    rows = [json.loads(line) for line in planted[1].read_text().splitlines()]
    for r in rows[:4]:
        seq = encode_explained(tok, r["prompt"], r["chosen"], rm.append_eos)
        assert [seq.response[s:e].strip() for s, e in seq.spans] == [tok.decode([seq.ids[p]]).strip() for p in seq.positions]
        assert "".join(seq.token_texts()).replace(" ", "") == r["chosen"].replace(" ", "")
        reward = score_texts(rm, tok, [r["prompt"]], [r["chosen"]])[0][0]
        a = attribute(rm, seq.ids, seq.positions, baseline_token(tok, rm.model.get_input_embeddings()), "occlusion")
        assert a.reward == pytest.approx(reward, abs=1e-4)  # the explained reward is the scored one


def test_planted_word_gets_the_largest_attribution_and_methods_agree(planted):
    rm, tok, _ = load_reward_model(str(planted[0]))
    rows = [json.loads(line) for line in planted[1].read_text().splitlines()]
    base_id = baseline_token(tok, rm.model.get_input_embeddings())
    assert base_id != tok.pad_token_id  # the tiny Llama's pad row is zero: a degenerate baseline
    ig_hits = occ_hits = agree = 0
    for r in rows:
        seq = encode_explained(tok, r["prompt"], r["chosen"], rm.append_eos)
        ig = attribute(rm, seq.ids, seq.positions, base_id, "ig", n_steps=50, tolerance=0.05, max_steps=800)
        occ = attribute(rm, seq.ids, seq.positions, base_id, "occlusion")
        s0, s1 = _word_span(r["chosen"])
        top_ig, top_occ = int(np.argmax(ig.scores)), int(np.argmax(occ.scores))
        ig_hits += seq.spans[top_ig][0] < s1 and seq.spans[top_ig][1] > s0  # the token is (part of) the word
        occ_hits += seq.spans[top_occ][0] < s1 and seq.spans[top_occ][1] > s0
        agree += top_ig == top_occ
        # completeness: the IG sum is the reward difference within the tolerance (5%)
        assert abs(ig.completeness) <= 0.05 * abs(ig.reward - ig.baseline_reward) + 1e-3
    n = len(rows)
    assert ig_hits == n, f"IG put its top attribution on {WORD!r} in {ig_hits}/{n} chosen responses"
    assert occ_hits == n and agree == n


def test_shapley_sampling_is_complete(planted):
    rm, tok, _ = load_reward_model(str(planted[0]))
    r = json.loads(planted[1].read_text().splitlines()[0])
    seq = encode_explained(tok, r["prompt"], r["chosen"], rm.append_eos)
    torch.manual_seed(0)
    a = attribute(rm, seq.ids, seq.positions, baseline_token(tok, rm.model.get_input_embeddings()), "shap", n_samples=4)
    assert abs(a.completeness) < 1e-4  # additive by construction
    s0, s1 = _word_span(r["chosen"])
    top = seq.spans[int(np.argmax(a.scores))]
    assert top[0] < s1 and top[1] > s0


def test_prefix_rewards_are_the_rewards_of_the_cut_sequences(planted):
    """One forward pass gives, at each response token, the reward of the sequence cut there."""
    rm, tok, _ = load_reward_model(str(planted[0]))
    r = json.loads(planted[1].read_text().splitlines()[1])
    seq = encode_explained(tok, r["prompt"], r["chosen"], append_eos=False)
    curve = prefix_rewards(rm, seq.ids, seq.positions)
    cut = [seq.ids[: p + 1] for p in seq.positions]
    direct = score_ids(rm, cut, tok.pad_token_id, batch_size=4)
    np.testing.assert_allclose(curve, direct, atol=1e-4)


def test_probe_edits_and_rate():
    assert len(P.append_filler("a b c.", 30).split()) == 33
    assert P.repeat_sentence("One. Two two.") == "One. Two two. Two two."
    assert P.truncate_half("a b c d e") == "a b"
    assert P.empty("x") == "" and P.upper("ab") == "AB" and P.bullets("One. Two.") == "- One.\n- Two."
    assert P.polite(P.polite("hi", True), False) == "hi" and P.polite("hi", True).startswith(P.POLITE)

    def words(prompts, responses):  # a reward that counts words: every probe's effect is known
        return np.array([len(r.split()) for r in responses], dtype=float)

    rows = P.run_probes(words, ["p"] * 3, ["a b c d.", "e f.", "g h i j k l."], ["length", "empty", "truncate"], words=30,
                        rewrite=P.polite, rewrite_name="polite")
    by = {r["probe"]: r for r in rows}
    assert by["length"]["mean_delta"] == 30 and by["length"]["ci_low"] == by["length"]["ci_high"] == 30
    assert by["empty"]["mean_delta"] == pytest.approx(-4.0) and by["empty"]["share_up"] == 0
    assert by["truncate"]["mean_delta"] == pytest.approx(-(2 + 1 + 3) / 3)
    assert by["rate:polite"]["mean_delta"] == 4  # "Thank you for asking!" is 4 words
    assert P.format_row(by["length"]) == "+30 words of filler: +30.00 reward [+30.00, +30.00]"


def test_explain_cli_end_to_end(planted, tmp_path):
    rm, test_file = planted
    out = tmp_path / "ex"
    res = CliRunner().invoke(app, ["explain", "--model", str(rm), "--input", str(test_file), "--output", str(out),
                                   "--limit", "4", "--method", "occlusion", "--no-progress", "--bootstrap", "100",
                                   "--rewrite", "rewardlab.explain.probes:polite"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["records"] == 4 and summary["accuracy"] == 1.0
    lines = [json.loads(x) for x in (out / "explanations.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and {"chosen", "rejected", "margin", "correct"} <= set(lines[0])
    side = lines[0]["chosen"]
    assert {"reward", "method", "completeness", "tokens", "prefix_rewards"} <= set(side)
    assert all(side["response"][t["start"]:t["end"]] == t["text"] for t in side["tokens"])
    probes = json.loads((out / "probes.json").read_text())
    assert [p["probe"] for p in probes] == ["length", "repeat", "truncate", "empty", "upper", "bullets", "rate:polite"]
    page = (out / "report.html").read_text()
    assert "Counterfactual probes" in page and "rgba(22,163,74" in page and "record 0" in page
    # an output holding explanations is not replaced without --overwrite
    again = CliRunner().invoke(app, ["explain", "--model", str(rm), "--input", str(test_file), "--output", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_explain_single_responses_and_bad_input(planted, tmp_path):
    rm, _ = planted
    good = write_jsonl(tmp_path / "r.jsonl", [{"prompt": "Hi?", "response": f"the {WORD} answer."}, {"response": "so it is."}])
    out = tmp_path / "ex"
    res = CliRunner().invoke(app, ["explain", "--model", str(rm), "--input", str(good), "--output", str(out),
                                   "--probes", "none", "--no-progress"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in (out / "explanations.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and "tokens" in lines[0] and "chosen" not in lines[0]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "Hi?", "response": "fine."}\n{"prompt": "Hi?", "response": 3}\n')
    res = CliRunner().invoke(app, ["explain", "--model", str(rm), "--input", str(bad), "--output", str(tmp_path / "b")])
    assert res.exit_code == 2 and "bad.jsonl:2" in res.output and "response" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(app, ["explain", "--model", str(rm), "--input", str(bad), "--output", str(tmp_path / "b"),
                                   "--method", "lime"])
    assert res.exit_code == 2 and "ig, occlusion or shap" in res.output


def test_eval_explain_section(planted, tmp_path):
    rm, test_file = planted
    out = tmp_path / "ev"
    res = CliRunner().invoke(app, ["eval", "--model", str(rm), "--data", str(test_file), "--output", str(out),
                                   "--explain", "2", "--no-progress", "--bootstrap", "50"])
    assert res.exit_code == 0, res.output
    result = json.loads((out / "results.json").read_text())
    assert len(result["explain"]["explained"]) == 2 and result["explain"]["probes"][0]["probe"] == "length"
    page = (out / "report.html").read_text()
    assert "What the reward model responds to" in page and "Token attributions" in page
    res = CliRunner().invoke(app, ["eval", "--model", str(rm), "--data", str(test_file), "--output", str(tmp_path / "r.json"),
                                   "--explain", "2"])
    assert res.exit_code == 2 and "folder --output" in " ".join(res.output.replace("│", " ").split())
