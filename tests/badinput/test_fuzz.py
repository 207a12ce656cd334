"""Property-based fuzzing of the record validator and the JSONL loader: arbitrary JSON-ish rows, with the real
field names among random ones, give a valid record or a DataError, never TypeError/KeyError/AttributeError..."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewardlab.data.formats import load_records
from rewardlab.data.records import FIELDS, FORMS, DataError, record_from_row

NAMES = sorted({f for fields in FIELDS.values() for f in fields} | {"responses", "scores", "role", "content"})
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
messages = st.lists(st.fixed_dictionaries({}, optional={"role": scalars, "content": scalars}), max_size=3)
values = st.recursive(scalars | messages,
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                      max_leaves=12)
keys = st.sampled_from(NAMES) | st.text(max_size=8)
texts = st.text(min_size=1, max_size=10) | st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", ""]),
                                                                          "content": st.text(max_size=10)}), max_size=3)
# rows of random keys, and rows of the real fields holding mostly plausible values (so valid records occur too)
plausible = texts | st.lists(texts, max_size=4) | st.floats() | st.integers(0, 3) | values
rows = (st.dictionaries(keys, values, max_size=8)
        | st.fixed_dictionaries({}, optional={f: plausible for f in NAMES})
        | st.fixed_dictionaries({"prompt": texts, "chosen": texts, "rejected": texts, "response": texts,
                                 "responses": st.lists(texts, min_size=2, max_size=4),
                                 "label": st.sampled_from([0, 1, "good", "bad"]), "score": st.floats()},
                                optional={f: plausible for f in ("margin", "tie", "ranks", "scores")}))
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(row=rows, form=st.sampled_from(FORMS))
def test_record_from_row_gives_a_record_or_a_data_error(row, form):
    try:
        record_from_row(row, "fuzz:1", form)
    except DataError as e:
        assert str(e).startswith("fuzz:1")


@FUZZ
@given(lines=st.lists(rows | values, min_size=1, max_size=4), form=st.sampled_from(FORMS))
def test_load_records_gives_records_or_a_data_error(lines, form, tmp_path):
    path = tmp_path / "fuzz.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    for mode in ("error", "skip"):
        try:
            records, report = load_records(str(path), form=form, on_bad_record=mode)
        except DataError as e:
            assert mode == "error" and str(path) in str(e)
        else:
            assert report.n_loaded == len(records) and report.n_skipped <= report.n_read
