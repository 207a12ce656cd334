"""Several data sources in one run (`train --data A --data B:loss=…,weight=…`): the mixed objective on a hand batch,
bce_mse taking gradients from labels and ratings in one step, the batches (one per source, each in its own form),
the checks that name the source and the flag, and the command line end to end (README's example included)."""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

import pytest
import torch
from toydata import toy_forms, write_jsonl
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.config import TrainConfig
from rewardlab.data.batching import Encoded, collate_mixed, mixed_batches
from rewardlab.data.formats import source_forms
from rewardlab.losses.catalogue import LOSSES, get_loss, resolve_hparams
from rewardlab.losses.objective import (
    Term,
    batch_accuracy,
    mixed_objective,
    objective,
    part_rows,
    regularizer_inputs,
    rows_of,
)
from rewardlab.models.reward_model import RewardModel
from rewardlab.train.steps import LossSetup, chunked_step, plain_step
from rewardlab.types import MixedBatch, PairBatch, PointBatch, RankBatch

NAN = float("nan")
README = Path(__file__).resolve().parents[2] / "README.md"
runner = CliRunner()


def hand_batch() -> MixedBatch:
    """pairs (2), ratings (2), labels (1): rows c0 c1 r0 r1 | y0 y1 | l0; token tensors unused by the objective."""
    pairs = PairBatch(None, None, torch.zeros(2), torch.zeros(2, dtype=torch.bool))
    ratings = PointBatch(None, None, torch.tensor([1.0, 0.0]))
    labels = PointBatch(None, None, torch.tensor([[1.0, NAN]]))  # bce_mse target [label, score]: a label only
    return MixedBatch(None, None, (pairs, ratings, labels))


def test_mixed_objective_is_the_weighted_sum_of_its_parts():
    """bt on pairs (w 1), mse on ratings (w 0.5), bce_mse on a label (w 2); rewards [1, 0, 0, 0 | 0.5, -1 | 0].

    bt: Δ = (1, 0) → (−log σ(1) + log 2) / 2 = (0.3132617 + 0.6931472) / 2 = 0.5032044
    mse: ((0.5 − 1)² + (−1 − 0)²) / 2 = 0.625, × 0.5 = 0.3125
    bce_mse on [1, NaN]: bce_weight · (−log σ(0)) = log 2 = 0.6931472, × 2 = 1.3862944
    L = 0.5032044 + 0.3125 + 1.3862944 = 2.2019988
    """
    batch = hand_batch()
    terms = [Term(get_loss("bt"), {}, 1.0), Term(get_loss("mse"), {"weights": None}, 0.5),
             Term(get_loss("bce_mse"), resolve_hparams(get_loss("bce_mse"), {}), 2.0)]
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.5, -1.0, 0.0], requires_grad=True)
    loss = mixed_objective(terms, rewards, batch)
    assert loss.item() == pytest.approx(2.2019988, abs=1e-6)
    parts = [objective(t.spec, rewards[rows], part, t.hp) for t, part, rows in zip(terms, batch.parts, part_rows(batch))]
    assert [p.item() for p in parts] == pytest.approx([0.5032044, 0.625, 0.6931472], abs=1e-6)
    assert part_rows(batch) == [slice(0, 4), slice(4, 6), slice(6, 7)]
    # its gradient is the weighted sum of the parts': d/dr_y0 = 0.5 · 2(0.5 − 1)/2 = −0.25; d/dr_l0 = 2 · (σ(0) − 1) = −1
    loss.backward()
    assert rewards.grad[4].item() == pytest.approx(-0.25) and rewards.grad[6].item() == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="2 terms for a batch of 3 parts"):
        mixed_objective(terms[:2], rewards, batch)


def _part(spec):
    """A small batch of the form ``spec`` trains on (no tokens): 3 pairs (one a tie), 2 rankings of 3, 3 points."""
    if spec.family == "pairwise":
        return PairBatch(None, None, torch.tensor([1.0, 0.0, 2.0]), torch.tensor([False, True, False]))
    if spec.family == "listwise":
        return RankBatch(None, None, torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 2.0]]), torch.tensor([[True] * 3, [True, True, False]]))
    target = {"ratings": [0.5, -1.0, 2.0], "labels": [1.0, 0.0, 1.0], "any": [[1.0, NAN], [0.0, NAN], [NAN, 0.3]]}[spec.data_form]
    return PointBatch(None, None, torch.tensor(target))


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_catalogue_loss_can_be_one_term_of_a_mixed_objective(name):
    """Each loss beside mse on ratings (weight 0.5): the mixed objective is its own objective + 0.5 × the mse, so any
    pairwise, listwise or pointwise loss can share a run with a source of another form."""
    spec, mse = get_loss(name), get_loss("mse")
    part, ratings = _part(spec), PointBatch(None, None, torch.tensor([0.0, 1.0]))
    batch = MixedBatch(None, None, (part, ratings))
    rewards = torch.randn(rows_of(batch), generator=torch.Generator().manual_seed(0))
    n = rows_of(part)
    terms = [Term(spec, resolve_hparams(spec, {}), 1.0), Term(mse, {"weights": None}, 0.5)]
    expected = objective(spec, rewards[:n], part, terms[0].hp) + 0.5 * objective(mse, rewards[n:], ratings, terms[1].hp)
    assert mixed_objective(terms, rewards, batch).item() == pytest.approx(expected.item(), rel=1e-6)


def test_a_mixed_batch_counts_accuracy_and_regularises_over_its_parts():
    """Accuracy: the pair part's (Δ = (1, 0): 1 of 2); the points add none. Regularisers see every row, parts in order."""
    batch = hand_batch()
    mask = torch.ones(7, 3, dtype=torch.long)
    batch = batch._replace(parts=tuple(p._replace(attention_mask=mask[rows]) for p, rows in zip(batch.parts, part_rows(batch))))
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.5, -1.0, 0.0])
    correct, n = batch_accuracy(rewards, batch)
    assert (int(correct), int(n)) == (1, 2)
    inputs = regularizer_inputs(batch, rewards)
    assert torch.equal(inputs["rewards"], rewards) and inputs["lengths"].tolist() == [3.0] * 7 and inputs["hidden"] is None


def test_mixed_batches_take_one_batch_of_each_source_per_step():
    """10 records and 3 records, batches of 4: an epoch is the larger source's 3 batches; the smaller source's one batch
    comes round each step, each pass in its own order; indices point into the sources' concatenation."""
    steps = mixed_batches([[5] * 10, [7] * 3], 4, seed=0, epoch=0)
    assert len(steps) == 3
    first = [i for step in steps for i in step if i < 10]
    assert sorted(first) == list(range(10))  # the larger source: each record once
    for step in steps:
        assert sorted(i for i in step if i >= 10) == [10, 11, 12]  # the smaller one: whole, every step
    assert steps == mixed_batches([[5] * 10, [7] * 3], 4, seed=0, epoch=0)  # seeded
    assert steps != mixed_batches([[5] * 10, [7] * 3], 4, seed=0, epoch=1)


def test_collate_mixed_keeps_each_forms_collation():
    """A pair and two points: a PairBatch and a PointBatch, their rows stacked (2 + 2) and right-padded to the longest."""
    examples = [(0, Encoded([[5, 6, 7], [8]])), (1, Encoded([[9, 9]], target=[1.0, NAN])), (1, Encoded([[4]], target=[NAN, 0.5]))]
    batch = collate_mixed(examples, ["pairs", "labels"], pad_id=0)
    pairs, points = batch.parts
    assert isinstance(pairs, PairBatch) and isinstance(points, PointBatch)
    assert batch.input_ids.tolist() == [[5, 6, 7], [8, 0, 0], [9, 9, 0], [4, 0, 0]]
    assert batch.attention_mask.sum(-1).tolist() == [3, 1, 2, 1]
    assert points.target[0, 0].item() == 1.0 and math.isnan(points.target[0, 1].item())


# --------------------------------------------------------------------------- bce_mse: both terms in one step


@pytest.fixture
def rm(tiny_llama):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = RewardModel(AutoModelForSequenceClassification.from_pretrained(tiny_llama)).train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


def _grads(rm, step):
    rm.zero_grad(set_to_none=True)
    loss = step(lambda loss, last: loss.backward()).loss
    return float(loss.detach()), {n: p.grad.clone() for n, p in rm.named_parameters() if p.grad is not None}


def test_bce_mse_takes_gradients_from_labels_and_ratings_in_one_step(rm):
    """One step on a labels batch (weight 1) and a ratings batch (weight 0.5) under bce_mse: its loss and gradient are
    the labels batch's alone + 0.5 × the ratings batch's alone (BCE and MSE both move the head in the same step), and
    the two parts' head gradients point different ways, so neither term is lost."""
    g = torch.Generator().manual_seed(3)
    ids = lambda n: [torch.randint(5, 60, (int(k),), generator=g).tolist() for k in torch.randint(3, 12, (n,), generator=g)]  # noqa: E731
    labels = [(0, Encoded([s], target=[float(i % 2), NAN])) for i, s in enumerate(ids(4))]
    ratings = [(1, Encoded([s], target=[NAN, y])) for s, y in zip(ids(3), (1.0, -0.5, 2.0))]
    mixed = collate_mixed(labels + ratings, ["labels", "ratings"], pad_id=0)
    spec = get_loss("bce_mse")
    hp = resolve_hparams(spec, {})
    one = lambda form: LossSetup(spec, hp, [], form)  # noqa: E731
    both = LossSetup(None, {}, [], "mixed", terms=(Term(spec, hp, 1.0), Term(spec, hp, 0.5)))

    loss_l, g_l = _grads(rm, lambda bw: plain_step(rm, mixed.parts[0], bw, one("labels")))
    loss_r, g_r = _grads(rm, lambda bw: plain_step(rm, mixed.parts[1], bw, one("ratings")))
    loss_m, g_m = _grads(rm, lambda bw: plain_step(rm, mixed, bw, both))
    assert loss_m == pytest.approx(loss_l + 0.5 * loss_r, rel=1e-5)
    assert g_m.keys() == g_l.keys() == g_r.keys()
    for name in g_m:
        torch.testing.assert_close(g_m[name], g_l[name] + 0.5 * g_r[name], rtol=1e-4, atol=1e-6)
    head = next(n for n in g_m if n.endswith("score.weight"))
    cos = torch.nn.functional.cosine_similarity(g_l[head].flatten(), g_r[head].flatten(), dim=0)
    assert g_l[head].abs().sum() > 0 and g_r[head].abs().sum() > 0 and abs(float(cos)) < 0.99
    # the length-sorted chunks of a CPU step give the same loss and gradient on a mixed batch
    loss_c, g_c = _grads(rm, lambda bw: chunked_step(rm, mixed, bw, both, 3))
    assert loss_c == pytest.approx(loss_m, rel=1e-5)
    for name in g_m:
        torch.testing.assert_close(g_c[name], g_m[name], rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- what a source is read as, and the checks


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("forms")
    return {form: write_jsonl(d / f"{form}.jsonl", rows) for form, rows in toy_forms(30, seed=5).items()}


def test_a_sources_form_is_read_from_its_first_record(files):
    assert {f: source_forms(p) for f, p in files.items()} == {"pairs": ["pairs"], "rankings": ["rankings"],
                                                              "ratings": ["ratings"], "labels": ["labels"]}
    assert source_forms(files["labels"], {"score": "label"}) == ["ratings", "labels"]  # through --column


def test_bad_combinations_name_the_source_and_the_flag(files, tmp_path):
    from rewardlab.train.loop import data_sources

    with pytest.raises(ValueError, match=r"--data r\.jsonl:form=ratings \(source 2 of 2\): form ratings does not fit loss bt "
                                         r"\(pairwise, trains on pairs\); .*r\.jsonl:loss=mse"):
        TrainConfig(data=["p.jsonl", "r.jsonl:form=ratings"], loss="bt")
    cfg = TrainConfig(data=[str(files["pairs"]), str(files["ratings"])], loss="bt")  # the ratings file read with bt
    with pytest.raises(ValueError, match=r"ratings\.jsonl \(source 2 of 2\): its first record holds ratings data, but its loss "
                                         r"bt \(--loss\) trains on pairs; .*ratings\.jsonl:loss=mse"):
        data_sources(cfg)
    cfg = TrainConfig(data=[str(files["labels"]), f"{files['ratings']}:loss=bce"], loss="bce_mse")
    with pytest.raises(ValueError, match=r"source 2 of 2\): its first record holds ratings data, but its loss bce "
                                         r"\(--data .*ratings\.jsonl:loss=bce\) trains on labels"):
        data_sources(cfg)
    for kw, message in [
        (dict(data=["a.jsonl:weight=2"]), "with one --data source it changes nothing"),
        (dict(data=["a", "b"], eval_data="c"), "give each its own as --data PATH:eval=HELD_OUT"),
        (dict(data=["a", "b:loss=mse"], loss_args=["alpha=0.1"]), "this run trains bt, mse; name the loss"),
        (dict(data=["a", "b:loss=mse"], loss_args=["hinge.m=1"]), "this run trains bt, mse, not hinge"),
        (dict(data=["a", "b:loss=mse"], regularizers=["center=0.01"]), "--regularizer center reads the pairs of one batch"),
        (dict(data=["a:wieght=2"]), "--data a:wieght=2: unknown option"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            TrainConfig(**kw)
    # forms settled: bce_mse reads each source's form from its data; names are the forms (form_N when they repeat)
    sources = data_sources(TrainConfig(data=[str(files["labels"]), str(files["ratings"])], loss="bce_mse"))
    assert [(s.name, s.setup.form, s.setup.spec.name, s.weight) for s in sources] == [
        ("labels", "labels", "bce_mse", 1.0), ("ratings", "ratings", "bce_mse", 1.0)]
    sources = data_sources(TrainConfig(data=[str(files["pairs"]), f"{files['pairs']}:weight=0.25"]))
    assert [(s.name, s.weight) for s in sources] == [("pairs_1", 1.0), ("pairs_2", 0.25)]


def test_the_command_line_and_yaml_take_a_list_of_sources(monkeypatch, tmp_path):
    """--data repeats (one source per flag, commas kept); a --config YAML takes a list of items or of mappings."""
    import rewardlab.train.loop as loop

    seen = []
    monkeypatch.setattr(loop, "train", lambda cfg, log: seen.append(cfg) or {"metrics": {}})
    r = runner.invoke(app, ["train", "--data", "p.jsonl", "--data", "r.jsonl:loss=mse,weight=0.5", "--model", "m",
                            "--output", str(tmp_path / "o"), "--loss-arg", "mse.weights=null"])
    assert r.exit_code == 0, r.output
    (tmp_path / "c.yaml").write_text("data:\n  - p.jsonl\n  - {path: r.jsonl, loss: mse, weight: 0.5}\nmodel: m\n")
    r = runner.invoke(app, ["train", "--config", str(tmp_path / "c.yaml"), "--output", str(tmp_path / "o2")])
    assert r.exit_code == 0, r.output
    assert seen[0].data == seen[1].data == ["p.jsonl", "r.jsonl:loss=mse,weight=0.5"]
    assert [(s.path, s.loss, s.weight) for s in seen[0].sources()] == [("p.jsonl", "bt", 1.0), ("r.jsonl", "mse", 0.5)]


# --------------------------------------------------------------------------- end to end


def _train(*args) -> dict:
    r = runner.invoke(app, ["train", *map(str, args)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])


def test_bce_mse_on_labels_and_ratings_end_to_end(files, tiny_llama, tmp_path):
    """`train --data labels.jsonl --data ratings.jsonl --loss bce_mse`: both sources, each read in its own form and
    split on its own, recorded in rewardlab.json with metrics per form and the held-out mixed loss."""
    out = tmp_path / "rm"
    printed = _train("--data", files["labels"], "--data", files["ratings"], "--loss", "bce_mse", "--model", tiny_llama, "--output",
                     out, "--max-steps", 6, "--batch-size", 8, "--max-length", 48, "--eval-split", 0.2, "--lr", 3e-3, "--no-progress")
    meta = json.loads((out / "rewardlab.json").read_text())
    assert (meta["loss"], meta["family"], meta["data_form"]) == ("bce_mse", "mixed", "mixed")
    assert [(s["name"], s["form"], s["loss"], s["weight"]) for s in meta["sources"]] == [
        ("labels", "labels", "bce_mse", 1.0), ("ratings", "ratings", "bce_mse", 1.0)]
    assert (meta["data"]["labels"]["train"]["n_loaded"], meta["data"]["labels"]["eval"]["n_loaded"]) == (60, 12)
    assert (meta["data"]["ratings"]["train"]["n_loaded"], meta["data"]["ratings"]["eval"]["n_loaded"]) == (90, 18)
    m = meta["metrics"]
    assert {"accuracy", "loss"} <= set(m["labels"]) and {"pearson", "spearman", "loss"} <= set(m["ratings"])
    assert m["loss"] == pytest.approx(m["labels"]["loss"] + m["ratings"]["loss"], rel=1e-6) == printed["loss"]
    assert meta["train"]["examples_seen"] == 6 * (8 + 8) and meta["config"]["data"] == [str(files["labels"]), str(files["ratings"])]


def test_readme_example_bt_on_pairs_plus_mse_on_ratings(tiny_llama, tmp_path, monkeypatch):
    """The README's mixed-run line, run as written (its data and tiny model laid out where it names them): bt on the
    pairs plus 0.5 × mse on the ratings, held-out metrics per form."""
    (line,) = [x for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S) for x in block.splitlines()
               if x.startswith("rewardlab train") and "--data data/ratings" in x]
    args = shlex.split(line.split("#")[0])[2:]
    forms = toy_forms(40, seed=6)
    for form in ("pairs", "ratings"):
        (tmp_path / "data" / form).mkdir(parents=True)
        write_jsonl(tmp_path / "data" / form / "train.jsonl", forms[form])
    (tmp_path / "tiny").symlink_to(tiny_llama)
    monkeypatch.chdir(tmp_path)
    printed = _train(*args, "--max-steps", 4, "--max-length", 48, "--no-progress")
    meta = json.loads((Path(printed["output"]) / "rewardlab.json").read_text())
    assert meta["loss"] == "bt+mse" and [(s["form"], s["loss"], s["weight"]) for s in meta["sources"]] == [
        ("pairs", "bt", 1.0), ("ratings", "mse", 0.5)]
    m = meta["metrics"]
    assert "accuracy" in m["pairs"] and "pearson" in m["ratings"]
    assert m["loss"] == pytest.approx(m["pairs"]["loss"] + 0.5 * m["ratings"]["loss"], rel=1e-6)
