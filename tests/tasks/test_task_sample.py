"""Sample data of every form (``rewardlab.tasks.sample``, the work of ``rewardlab sample-data``)."""

from __future__ import annotations

import json

import pytest

from rewardlab.data.formats import load_records
from rewardlab.tasks import GoldTask
from rewardlab.tasks.sample import FORMS, RANKING_K, TEST_SEED_OFFSET, write_sample_data
from rewardlab.types import LabelRecord, PairRecord, RankRecord, RatingRecord

RECORD_TYPE = {"pairs": PairRecord, "rankings": RankRecord, "ratings": RatingRecord, "labels": LabelRecord}


def files(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple:
    out = tmp_path_factory.mktemp("sample") / "data"
    return out, write_sample_data(out, n_train=12, n_test=5, seed=3)


def test_every_form_loads_with_the_counts_written(written):
    """Each of the 8 files loads as its form with no record skipped, n_train / n_test records each."""
    out, counts = written
    assert list(counts) == [f"{form}/{split}.jsonl" for form in FORMS for split in ("train", "test")]
    for form in FORMS:
        for split, n in (("train", 12), ("test", 5)):
            records, report = load_records(str(out / form / f"{split}.jsonl"), form=form)
            assert counts[f"{form}/{split}.jsonl"] == n == len(records) and report.n_skipped == 0
            assert all(isinstance(r, RECORD_TYPE[form]) for r in records)
    rankings, _ = load_records(str(out / "rankings" / "train.jsonl"), form="rankings")
    assert all(len(r.responses) == RANKING_K and sorted(r.ranks) == list(range(1, RANKING_K + 1)) for r in rankings)


def test_readme_names_every_file_and_how_it_was_made(written):
    out, counts = written
    readme = (out / "README.md").read_text()
    for form in FORMS:
        assert f"`{form}/`" in readme and f"train.jsonl: {counts[f'{form}/train.jsonl']}" in readme
    assert "task seed: 3" in readme and f"seed {3 + TEST_SEED_OFFSET}" in readme and "σ = 0" in readme


def test_same_seed_same_bytes_other_seed_other_data(written, tmp_path):
    out, _ = written
    write_sample_data(tmp_path / "again", n_train=12, n_test=5, seed=3)
    write_sample_data(tmp_path / "other", n_train=12, n_test=5, seed=4)
    assert files(tmp_path / "again") == files(out)
    other = files(tmp_path / "other")
    assert all(other[name] != data for name, data in files(out).items() if name.endswith(".jsonl"))


def test_test_split_is_held_out(written):
    """Train and test are separate draws: no (prompt, response) text of one split is in the other."""
    out, _ = written
    for form in ("pairs", "ratings"):
        rows = {s: [json.loads(x) for x in (out / form / f"{s}.jsonl").read_text().splitlines()] for s in ("train", "test")}
        fields = ("prompt", "chosen", "rejected") if form == "pairs" else ("prompt", "response")
        texts = {s: {tuple(r[f] for f in fields) for r in split} for s, split in rows.items()}
        assert not texts["train"] & texts["test"]


def test_clean_labels_follow_the_gold_and_noise_moves_them(tmp_path):
    """σ = 0: ratings are the gold, labels are 1[g > 0], chosen has the higher gold; σ = 1 changes some labels."""
    task = GoldTask(seed=0)
    write_sample_data(tmp_path / "clean", n_train=200, n_test=1, forms=["pairs", "ratings", "labels"])
    write_sample_data(tmp_path / "noisy", n_train=200, n_test=1, forms=["labels"], noise=1.0)
    pairs, _ = load_records(str(tmp_path / "clean" / "pairs" / "train.jsonl"), form="pairs")
    assert all(task.gold(p.prompt, p.chosen) >= task.gold(p.prompt, p.rejected) for p in pairs)
    ratings, _ = load_records(str(tmp_path / "clean" / "ratings" / "train.jsonl"), form="ratings")
    assert all(r.score == pytest.approx(task.gold(r.prompt, r.response)) for r in ratings[:20])
    clean, _ = load_records(str(tmp_path / "clean" / "labels" / "train.jsonl"), form="labels")
    assert all(r.label == int(task.gold(r.prompt, r.response) > 0) for r in clean)
    noisy, _ = load_records(str(tmp_path / "noisy" / "labels" / "train.jsonl"), form="labels")
    assert [r.response for r in noisy] == [r.response for r in clean]  # same texts, other labels
    assert 0 < sum(a.label != b.label for a, b in zip(clean, noisy)) < 100
    assert sorted(p.name for p in (tmp_path / "noisy").iterdir()) == ["README.md", "labels"]


@pytest.mark.parametrize("kwargs, message", [
    ({"forms": ["pairs", "nope"]}, "unknown form(s) 'nope'; known: pairs, rankings, ratings, labels"),
    ({"forms": []}, "forms must be distinct and non-empty"),
    ({"n_test": 0}, "n_train and n_test must be >= 1"),
    ({"noise": -0.1}, "noise must be >= 0"),
])
def test_bad_arguments_are_refused(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        write_sample_data(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()
