"""Loading: every file type and folder kind, column mapping, bad-record modes, limits, hub ids, and the
FineGrainedRLHF / SQuALITY layouts on hand-made rows."""

import gzip
import json

import pytest

from rewardlab.data.formats import load_records, looks_local, parse_hub_id
from rewardlab.data.records import DataError
from rewardlab.types import LabelRecord, PairRecord, RankRecord, RatingRecord

ROWS = [{"prompt": "2+2?", "chosen": "4", "rejected": "5"},
        {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Rome", "margin": 1.5}]
EXPECTED = [PairRecord("2+2?", "4", "5"), PairRecord("Capital of France?", "Paris", "Rome", margin=1.5)]


def strip_sources(records):
    return [type(r)(**{**r.__dict__, "source": None}) for r in records]


def write_jsonl(path, rows, blank_line=False):
    lines = [json.dumps(r) for r in rows]
    if blank_line:
        lines.insert(1, "")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_jsonl_sources_are_one_based_lines(tmp_path):
    """A blank second line is skipped but counted, so the second record is on line 3."""
    records, report = load_records(str(write_jsonl(tmp_path / "x.jsonl", ROWS, blank_line=True)))
    assert strip_sources(records) == EXPECTED
    assert [r.source for r in records] == [f"{tmp_path}/x.jsonl:1", f"{tmp_path}/x.jsonl:3"]
    assert (report.n_read, report.n_loaded, report.n_skipped, report.detected) == (2, 2, 0, "explicit prompt")
    assert report.summary()["n_loaded"] == 2


def test_jsonl_gz(tmp_path):
    path = tmp_path / "x.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(json.dumps(r) for r in ROWS))
    records, _ = load_records(str(path))
    assert strip_sources(records) == EXPECTED


def test_json_list_and_object_holding_the_list(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(ROWS))
    records, _ = load_records(str(tmp_path / "a.json"))
    assert strip_sources(records) == EXPECTED and records[1].source == f"{tmp_path}/a.json[1]"
    (tmp_path / "b.json").write_text(json.dumps({"version": 1, "data": ROWS}))
    assert strip_sources(load_records(str(tmp_path / "b.json"))[0]) == EXPECTED
    (tmp_path / "c.json").write_text(json.dumps({"train": ROWS[:1], "test": ROWS[1:]}))
    assert strip_sources(load_records(str(tmp_path / "c.json"))[0]) == EXPECTED[:1]
    assert strip_sources(load_records(str(tmp_path / "c.json"), split="test")[0]) == EXPECTED[1:]
    (tmp_path / "d.json").write_text(json.dumps({"x": ROWS, "y": ROWS}))
    with pytest.raises(ValueError, match="lists under: x, y"):
        load_records(str(tmp_path / "d.json"))


def test_csv_text_cells_decoded_and_lines(tmp_path):
    """Line 1 is the header; the first record spans lines 2-3 (a quoted newline), so the second is on line 4.
    Empty cells are missing; margin/tie/ranks/scores cells are decoded from text."""
    path = tmp_path / "x.csv"
    path.write_text('prompt,chosen,rejected,margin,tie\n"2+2?","4\nfour","5",,\nCapital?,Paris,Rome,1.5,true\n')
    records, _ = load_records(str(path))
    assert records == [PairRecord("2+2?", "4\nfour", "5", source=f"{path}:2"),
                       PairRecord("Capital?", "Paris", "Rome", margin=1.5, tie=True, source=f"{path}:4")]
    path = tmp_path / "r.csv"
    path.write_text('prompt,responses,ranks\np,"[""a"", ""b""]","[2, 1]"\n')
    assert load_records(str(path), form="rankings")[0][0].ranks == (2.0, 1.0)
    path = tmp_path / "bad.csv"
    path.write_text("prompt,chosen,rejected,margin\np,a,b,lots\n")
    with pytest.raises(DataError, match="bad.csv:2: field 'margin': expected a number, got str 'lots'"):
        load_records(str(path))


def test_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    rows = [{"prompt": "p", "responses": ["a", "b", "c"], "ranks": [1, 3, 2]}]
    pd.DataFrame(rows).to_parquet(tmp_path / "x.parquet")
    records, _ = load_records(str(tmp_path / "x.parquet"), form="rankings")
    assert records == [RankRecord("p", ("a", "b", "c"), (1.0, 3.0, 2.0), source=f"{tmp_path}/x.parquet[0]")]


def test_save_to_disk_dataset_and_dataset_dict(tmp_path):
    """Dataset.from_list takes its columns from the first row, so that row names margin (null) too."""
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list([{**ROWS[0], "margin": None}, ROWS[1]]).save_to_disk(str(tmp_path / "ds"))
    records, report = load_records(str(tmp_path / "ds"))
    assert strip_sources(records) == EXPECTED and records[0].source == f"{tmp_path}/ds[0]"
    assert "dataset folder" in report.notes[0]
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS[:1]),
                               "test": datasets.Dataset.from_list(ROWS[1:])})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert strip_sources(load_records(str(tmp_path / "dd"))[0]) == EXPECTED[:1]
    records, _ = load_records(str(tmp_path / "dd"), split="test")
    assert strip_sources(records) == EXPECTED[1:] and records[0].source == f"{tmp_path}/dd@test[0]"
    with pytest.raises(ValueError, match="no split 'dev'; known: test, train"):
        load_records(str(tmp_path / "dd"), split="dev")


def test_folder_of_files_grouped_by_split(tmp_path):
    (tmp_path / ".cache").mkdir()
    write_jsonl(tmp_path / ".cache" / "train.jsonl", [{"junk": 1}])  # hidden folders are ignored
    write_jsonl(tmp_path / "train-00000-of-00002.jsonl", ROWS[:1])
    write_jsonl(tmp_path / "train-00001-of-00002.jsonl", ROWS[1:])
    write_jsonl(tmp_path / "test.jsonl", ROWS[::-1])
    assert strip_sources(load_records(str(tmp_path))[0]) == EXPECTED
    assert strip_sources(load_records(str(tmp_path), split="test")[0]) == EXPECTED[::-1]
    with pytest.raises(ValueError, match="no split 'dev'; known: test, train"):
        load_records(str(tmp_path), split="dev")


def test_columns_remap_user_names(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"question": "q", "good": "a", "bad": "b"}])
    records, _ = load_records(str(path), columns={"prompt": "question", "chosen": "good", "rejected": "bad"})
    assert strip_sources(records) == [PairRecord("q", "a", "b")]
    with pytest.raises(DataError, match="column 'nope' \\(mapped to 'chosen'\\) not found"):
        load_records(str(path), columns={"chosen": "nope"})
    with pytest.raises(ValueError, match="unknown field\\(s\\) 'answer' for form 'pairs'"):
        load_records(str(path), columns={"answer": "good"})


def test_missing_field_says_what_is_there(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"question": "q", "good": "a", "bad": "b"}])
    with pytest.raises(DataError) as e:
        load_records(str(path))
    assert str(e.value).startswith(f"{path}:1: field 'chosen': missing; expected a string or a list of chat messages")
    assert "fields present: bad, good, question" in str(e.value)


def test_skip_mode_counts_bad_records(tmp_path):
    """Rows: good, invalid JSON, identical pair, not an object, empty response, good → 2 loaded, 4 skipped."""
    path = tmp_path / "x.jsonl"
    lines = [json.dumps(ROWS[0]), "{oops", json.dumps({"prompt": "p", "chosen": "a", "rejected": "a"}), "[1, 2]",
             json.dumps({"prompt": "p", "chosen": "", "rejected": "b"}), json.dumps(ROWS[1])]
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match=f"{path}:2: invalid JSON"):
        load_records(str(path))
    records, report = load_records(str(path), on_bad_record="skip")
    assert strip_sources(records) == EXPECTED
    assert (report.n_read, report.n_loaded, report.n_skipped) == (6, 2, 4)
    assert report.skipped[1] == (f"{path}:3: field 'rejected': identical to 'chosen': "
                                 f"a pair needs two different responses")
    assert report.skipped[2].startswith(f"{path}:4: expected an object")
    assert "field 'chosen': expected a non-empty response" in report.skipped[3]


def test_limit_and_bad_options(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", ROWS)
    records, report = load_records(str(path), limit=1)
    assert len(records) == 1 and report.n_read == 1
    with pytest.raises(ValueError, match="known: pairs, rankings, ratings, labels"):
        load_records(str(path), form="pair")
    with pytest.raises(ValueError, match="known: error, skip"):
        load_records(str(path), on_bad_record="ignore")
    with pytest.raises(ValueError, match="split='test' applies to folders"):
        load_records(str(path), split="test")


def test_each_form_from_jsonl(tmp_path):
    rows = {"rankings": [{"prompt": "p", "responses": ["a", "b"]}],
            "ratings": [{"prompt": "p", "response": "a", "score": 0.5, "scores": {"x": 1}}],
            "labels": [{"prompt": "p", "response": "a", "label": "bad"}]}
    want = {"rankings": RankRecord("p", ("a", "b"), (1.0, 2.0)),
            "ratings": RatingRecord("p", "a", score=0.5, scores={"x": 1.0}),
            "labels": LabelRecord("p", "a", 0)}
    for form in rows:
        records, _ = load_records(str(write_jsonl(tmp_path / f"{form}.jsonl", rows[form])), form=form)
        assert strip_sources(records) == [want[form]]


def test_conversational_records_from_jsonl(tmp_path):
    u, a, b = ({"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
               {"role": "assistant", "content": "go away"})
    path = write_jsonl(tmp_path / "x.jsonl", [{"chosen": [u, a], "rejected": [u, b]}])
    records, report = load_records(str(path))
    assert strip_sources(records) == [PairRecord([u], [a], [b])]
    assert report.detected == "conversational (implicit prompt)"


def test_mixed_layouts_are_counted(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [ROWS[0], {"chosen": "\n\nHuman: q\n\nAssistant: a",
                                                        "rejected": "\n\nHuman: q\n\nAssistant: b"}, ROWS[1]])
    assert load_records(str(path))[1].detected == "explicit prompt (2), hh-rlhf transcripts (1)"


def test_parse_hub_id_and_local_detection(tmp_path):
    assert parse_hub_id("Anthropic/hh-rlhf") == ("Anthropic/hh-rlhf", None, None)
    assert parse_hub_id("Anthropic/hh-rlhf@test") == ("Anthropic/hh-rlhf", None, "test")
    assert parse_hub_id("nyu-mll/glue:mrpc@validation") == ("nyu-mll/glue", "mrpc", "validation")
    assert parse_hub_id("squad:plain_text") == ("squad", "plain_text", None)
    for bad in ["", "x:", "x@", ":c", "x@a@b", "x:a:b"]:
        with pytest.raises(ValueError, match="expected name\\[:config\\]\\[@split\\]"):
            parse_hub_id(bad)
    assert looks_local("missing.jsonl") and looks_local("./data") and looks_local(str(tmp_path))
    assert not looks_local("Anthropic/hh-rlhf")
    with pytest.raises(FileNotFoundError, match="no such file or folder: missing.jsonl"):
        load_records("missing.jsonl")  # never treated as a hub id


FGR_ROW = {"question": "Q?", "passages": [["T", "s1.", "s2."]], "gold": "g",
           "prediction 1": "p1", "prediction 2": "p2", "prediction 3": "p3", "prediction 4": "p4",
           "feedback": {}, "preference": [1, 0, 2, 2, 1, 1]}


def test_finegrainedrlhf_pairs_and_rankings(tmp_path):
    """preference [1, 0, 2, 2, 1, 1] over (1,2),(1,3),(1,4),(2,3),(2,4),(3,4):
    1>2, 1=3, 4>1, 3>2, 2>4, 3>4. Pairs: (p1,p2), tie (p1,p3), (p4,p1), (p3,p2), (p2,p4), (p3,p4).
    Wins + ½ ties: p1 = 1 + .5 = 1.5, p2 = 1, p3 = 2 + .5 = 2.5, p4 = 1 → ranks 2, 3, 1, 3.
    Inconsistent (4>1>2>4 is a cycle), so the report notes 1 question."""
    path = tmp_path / "dev_feedback.json"
    path.write_text(json.dumps([FGR_ROW]))
    records, report = load_records(str(path))
    assert report.detected == "finegrainedrlhf" and (report.n_read, report.n_loaded) == (1, 6)
    assert [(r.chosen, r.rejected, r.tie) for r in records] == [
        ("p1", "p2", False), ("p1", "p3", True), ("p4", "p1", False), ("p3", "p2", False), ("p2", "p4", False),
        ("p3", "p4", False)]
    assert records[0].prompt == "Q?" and records[2].source == f"{path}[0] pair 1-4"
    records, report = load_records(str(path), form="rankings")
    assert records == [RankRecord("Q?", ("p1", "p2", "p3", "p4"), (2.0, 3.0, 1.0, 3.0), source=f"{path}[0]")]
    assert "1 question(s)" in report.notes[-1]
    records, _ = load_records(str(path), include_passages=True, limit=1)
    assert records[0].prompt == "Q?\n\nPassages:\n[1] T: s1. s2."
    with pytest.raises(ValueError, match="FineGrainedRLHF data gives forms pairs, rankings"):
        load_records(str(path), form="ratings")
    for text in ("[1, 0, 2, 2, 1, 1]", "102211"):  # the README describes a string; the file has a list
        path.write_text(json.dumps([{**FGR_ROW, "preference": text}]))
        assert [r.tie for r in load_records(str(path))[0]] == [False, True, False, False, False, False]
    path.write_text(json.dumps([{**FGR_ROW, "preference": [1, 1, 3, 1, 1, 1]}]))
    with pytest.raises(DataError, match="field 'preference': expected 6 outcomes in \\{0, 1, 2\\}"):
        load_records(str(path))


def squality_row():
    def entry(text, ratings, ranks):
        return {"response": text, "reviews": [
            {"correctness-rating": r, "selection-rating": r - 10, "overall-rating": r, "overall-rank": k}
            for r, k in zip(ratings, ranks)]}
    return {"passage-id": "77", "questions": {"0": {"bart": entry("b", [20, 40, 60], [3, 2, 3]),
                                                    "human": entry("h", [90, 80, 100], [1, 1, 1]),
                                                    "dpr": entry("d", [40, 40, 40], [2, 3, 2])}}}


def test_squality_ratings_and_rankings(tmp_path):
    """bart overall ratings 20, 40, 60 → mean 40, selection = rating − 10 → 30; human → 90; dpr → 40.
    Mean overall ranks: bart (3+2+3)/3 = 8/3, human 1, dpr (2+3+2)/3 = 7/3."""
    path = write_jsonl(tmp_path / "all-responses.jsonl", [squality_row()])
    records, report = load_records(str(path), form="ratings")
    assert report.detected == "squality" and len(records) == 3
    assert records[0] == RatingRecord("SQuALITY passage 77, question 0", "b", score=40.0,
                                      scores={"correctness": 40.0, "selection": 30.0, "overall": 40.0},
                                      source=f"{path}:1 question 0 bart")
    assert [r.score for r in records] == [40.0, 90.0, 40.0]
    records, _ = load_records(str(path), form="rankings")
    assert records[0].responses == ("b", "h", "d")
    assert records[0].ranks == pytest.approx((8 / 3, 1.0, 7 / 3))
    with pytest.raises(ValueError, match="SQuALITY data gives forms ratings, rankings"):
        load_records(str(path), form="pairs")
    row = squality_row()
    row["questions"]["0"]["dpr"]["response"] = ""
    path = write_jsonl(tmp_path / "empty.jsonl", [row])
    with pytest.raises(DataError, match="field 'questions.0.dpr.response': expected a non-empty response"):
        load_records(str(path), form="ratings")
    row = squality_row()
    row["questions"]["0"]["bart"]["reviews"][1]["overall-rank"] = None
    path = write_jsonl(tmp_path / "bad.jsonl", [row])
    with pytest.raises(DataError, match="question 0: field 'questions.0.bart.reviews\\[1\\].overall-rank'"):
        load_records(str(path), form="rankings")


def test_hub_id_goes_through_load_dataset(monkeypatch):
    """No network: load_dataset is replaced by a fake that records its arguments."""
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(name, config, split):
        calls.append((name, config, split))
        return datasets.Dataset.from_list(ROWS[:1])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    records, report = load_records("org/prefs:cfg@test")
    assert calls == [("org/prefs", "cfg", "test")]
    assert records[0].source == "org/prefs:cfg@test[0]"
    load_records("org/prefs")
    assert calls[-1] == ("org/prefs", None, "train")
    with pytest.raises(ValueError, match="disagree"):
        load_records("org/prefs@test", split="train")


def test_columns_turn_off_publisher_detection(tmp_path):
    """With columns given the row is read as plain fields, even if it looks like FineGrainedRLHF."""
    path = tmp_path / "x.json"
    path.write_text(json.dumps([FGR_ROW]))
    records, report = load_records(str(path), columns={"prompt": "question", "chosen": "prediction 2",
                                                       "rejected": "prediction 3"})
    assert strip_sources(records) == [PairRecord("Q?", "p2", "p3")] and report.detected == "explicit prompt"


def test_the_first_bad_record_says_how_many_share_its_problem(tmp_path):
    """A validation pass after the first bad record: the error counts the records with the same problem (values
    aside) and those with others, so the user decides between fixing the file and --on-bad-record skip."""
    import json

    from rewardlab.data import load_records
    from rewardlab.data.records import DataError

    rows = [{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "p", "chosen": 3, "rejected": "b"},
            {"prompt": "p", "chosen": 5.5, "rejected": "b"}, {"prompt": "p", "chosen": 7, "rejected": "b"}, {"prompt": "p", "chosen": "a"}]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError) as e:
        load_records(str(path))
    assert e.value.where.endswith("d.jsonl:2") and e.value.field == "chosen"
    assert "(2 of the 5 records read have this problem, 2 have other problems;" in str(e.value)  # int ×2; float, missing
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    with pytest.raises(DataError, match=r"\(1 of the 2 records read has this problem; pass on_bad_record='skip'"):
        load_records(str(path))
