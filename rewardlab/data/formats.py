"""Where preference data comes from: files, dataset folders, the Hugging Face hub, and publishers' formats.

``load_records(source, form=...)`` reads rows from

* a local file: ``.jsonl``, ``.jsonl.gz``, ``.json`` / ``.json.gz`` (a list of objects, or an object holding
  the list under one key: ``split`` if given, else "data", else "train", else the only list), ``.csv``
  (header row; all cells are text), ``.parquet``;
* a local folder: a ``datasets`` ``save_to_disk`` folder (a Dataset, or a DatasetDict whose split is
  ``split``, else "train", else the only one), or a folder of such files grouped by split name (the file
  name up to its first "-" or ".", so ``train.jsonl`` and ``train-00000-of-00002.parquet`` are split
  "train"; same choice rule);
* a Hugging Face dataset id ``name[:config][@split]`` (default split "train"), through
  ``datasets.load_dataset``; only a source that is not a local path ever reaches the network, and a
  source that looks like a path (a known file suffix, or starting with "/", ".", "~") never does.

and turns each row into a validated record (records.py). ``columns`` maps rewardlab's field names to the
data's: ``columns={"prompt": "question", "chosen": "good"}``.

Sources of records: ``"path:LINE"`` (1-based line) for JSONL and CSV files; ``"path[i]"`` (0-based record
index) for JSON lists, Parquet files and datasets (``"name@split[i]"``).

Publishers' formats, detected from the first row's fields (not when ``columns`` is given):

* FineGrainedRLHF QA-feedback (Wu et al. 2023, "Fine-Grained Human Feedback Gives Better Rewards for
  Language Model Training"): ``question``, ``passages``, ``prediction 1..4``, ``preference`` = 6 outcomes
  for the pairs (1,2),(1,3),(1,4),(2,3),(2,4),(3,4): 1 = first preferred, 2 = second, 0 = tie.
  form "pairs": 6 PairRecords per question (ties: ``tie=True``, chosen = the first of the two);
  form "rankings": one RankRecord per question with ranks by win count (``convert.pairwise_to_ranks``:
  wins + ½·ties, competition ranking). That reproduces every outcome when the six are a consistent weak
  order; when they are not (on the dev split: 22 of 500 questions, all inconsistent ties, no cycles) the
  win count decides and the report's notes count those questions.
  The prompt is the question; with ``include_passages=True`` the retrieved Wikipedia passages follow it
  ("{question}\\n\\nPassages:\\n[1] {title}: {text}" …). Default off: the passages are long (hundreds of
  tokens) and would push the responses past a small ``max_length``.
* SQuALITY human evaluation (Wang et al. 2022, "SQuALITY: Building a Long-Document Summarization Dataset
  the Hard Way"): per passage, per question, 3 systems' responses each reviewed by 3 workers with
  correctness / selection / overall ratings (0–100) and ranks (1 = best). form "ratings": one RatingRecord
  per response, ``score`` = mean overall rating, ``scores`` = mean of each attribute (0–100 scale, as
  published). form "rankings": one RankRecord per question, ranks = mean overall rank of the 3 reviewers
  (ties possible). The story and question texts are NOT in this file, so the prompt is built from what is
  there: ``"SQuALITY passage {passage-id}, question {index}"`` — an identifier that groups the responses to
  one question, not the question itself.
* HH-RLHF (Bai et al. 2022) needs no detection: ``chosen``/``rejected`` transcripts are the implicit-prompt
  pair layout (records.split_hh). On the harmless-base test split 2,303 of 2,312 rows load; 4 have an
  empty last assistant turn in ``chosen`` and 5 have transcripts that differ before the last assistant turn
  (malformed turn markers), so those need ``on_bad_record="skip"``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import re
import sys
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from rewardlab.data.convert import pairwise_to_ranks, ranks_agree
from rewardlab.data.records import (
    FIELDS,
    FORMS,
    HUMAN,
    DataError,
    check_form,
    check_number,
    check_text,
    describe,
    pair_from_row,
    ranking_from_row,
    rating_from_row,
    record_from_row,
    require,
)

SUFFIXES = (".jsonl.gz", ".jsonl", ".json.gz", ".json", ".csv", ".parquet")
ON_BAD_RECORD = ("error", "skip")
MAX_MESSAGES = 10
JSON_LIST_KEYS = ("data", "train")
STRUCTURED = ("responses", "ranks", "scores")  # fields a CSV cell can only hold as JSON text


@dataclass
class LoadReport:
    """What ``load_records`` read: rows read, records loaded, rows/records skipped and why (first 10).

    ``n_read`` counts source rows; ``n_loaded`` the records made (a FineGrainedRLHF row gives 6 pairs, a
    SQuALITY row several questions). ``detected`` names the layout found, e.g. "hh-rlhf transcripts",
    "explicit prompt", "finegrainedrlhf", "squality" (with counts when rows differ).
    """

    source: str
    form: str
    n_read: int = 0
    n_loaded: int = 0
    n_skipped: int = 0
    skipped: list[str] = field(default_factory=list)
    detected: str = ""
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- sources

def parse_hub_id(s: str) -> tuple[str, str | None, str | None]:
    """``"name[:config][@split]"`` → (name, config, split); config/split None when absent.

    >>> parse_hub_id("Anthropic/hh-rlhf@test")
    ('Anthropic/hh-rlhf', None, 'test')
    """
    rest, at, split = s.partition("@")
    name, colon, config = rest.partition(":")
    if not name or (colon and not config) or (at and not split) or "@" in split or ":" in config:
        raise ValueError(f"bad dataset id {s!r}; expected name[:config][@split], e.g. 'Anthropic/hh-rlhf@test'")
    return name, config or None, split or None


def looks_local(source: str) -> bool:
    """True when ``source`` names a local path: it exists, or has a data-file suffix, or starts with / . ~."""
    return os.path.exists(source) or source.lower().endswith(SUFFIXES) or source.startswith(("/", ".", "~"))


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for s in SUFFIXES:
        if name.endswith(s):
            return s
    raise ValueError(f"{path}: unknown file type; known: {', '.join(SUFFIXES)}")


def _open_text(path: Path):
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8-sig")


def _reading(path: Path, rows: Iterator[tuple[str, object]]) -> Iterator[tuple[str, object]]:
    """``rows`` of one file, where a failure to read the file itself (a truncated or false gzip, text that is not
    UTF-8, a broken Parquet file, JSON nested too deeply) is a DataError naming the file, not a traceback."""
    try:
        yield from rows
    except DataError:
        raise
    except (OSError, EOFError, ValueError, RecursionError, csv.Error, zlib.error) as e:
        if str(path) in str(e):  # already names the file (invalid JSON, no list of records, ...)
            raise
        problem = "JSON nested too deeply" if isinstance(e, RecursionError) else f"cannot read it: {e}"
        raise DataError(str(path), None, problem) from None


def jsonl_rows(path: Path) -> Iterator[tuple[str, object]]:
    """(where, parsed row or DataError) per non-blank line; a line that is not UTF-8 is a DataError naming it,
    an unreadable file (e.g. a truncated gzip) a DataError naming the file."""
    return _reading(path, _jsonl_lines(path))


def _jsonl_lines(path: Path) -> Iterator[tuple[str, object]]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            where = f"{path}:{n}"
            try:
                line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as e:
                yield where, DataError(where, None, f"not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1}); "
                                                    f"save the file as UTF-8")
                continue
            if not line.strip():
                continue
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as e:
                yield where, DataError(where, None, f"invalid JSON: {e.msg} at column {e.colno}")
            except RecursionError:
                yield where, DataError(where, None, "invalid JSON: nested too deeply")


def _json_list(data, path: Path, split: str | None) -> list:
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON list of records or an object holding one, got {describe(data)}")
    lists = [k for k, v in data.items() if isinstance(v, list)]
    if split is not None:
        if split not in lists:
            raise ValueError(f"{path}: no list of records under {split!r}; lists found under: "
                             f"{', '.join(lists) or 'none'}")
        return data[split]
    for key in JSON_LIST_KEYS:
        if key in lists:
            return data[key]
    if len(lists) == 1:
        return data[lists[0]]
    raise ValueError(f"{path}: cannot tell which list holds the records (lists under: {', '.join(lists) or 'none'}); "
                     f"pass split=KEY")


def _json_rows(path: Path, split: str | None) -> Iterator[tuple[str, object]]:
    with _open_text(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    for i, row in enumerate(_json_list(data, path, split)):
        yield f"{path}[{i}]", row


def _csv_rows(path: Path) -> Iterator[tuple[str, object]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # transcripts can exceed the 128 kB default
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        start = 2  # line of the first record (line 1 is the header)
        for row in reader:
            yield f"{path}:{start}", _decode_csv_row(row)
            start = reader.line_num + 1


def _decode_csv_row(row: dict) -> dict:
    """CSV cells are all text: empty → missing; structured fields (responses, ranks, scores) are JSON text.

    Numbers and booleans are decoded later, after column mapping (``_decode_csv_cells``).
    """
    return {k: (None if v in ("", None) else v) for k, v in row.items() if k is not None}


def _decode_csv_cells(row: dict) -> dict:
    """Decode the text cells of numeric, boolean and structured rewardlab fields of a CSV row."""
    out = dict(row)
    for key in ("margin", "score"):
        if isinstance(out.get(key), str):
            try:
                out[key] = float(out[key])
            except ValueError:
                pass  # left as text: the validator names the field and shows the value
    if isinstance(out.get("tie"), str) and out["tie"].strip().lower() in ("true", "false", "1", "0"):
        out["tie"] = out["tie"].strip().lower() in ("true", "1")
    for key in STRUCTURED:
        if isinstance(out.get(key), str):
            try:
                out[key] = json.loads(out[key])
            except json.JSONDecodeError:
                pass
    return out


def _parquet_rows(path: Path) -> Iterator[tuple[str, object]]:
    import pyarrow.parquet as pq

    i = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            yield f"{path}[{i}]", row
            i += 1


def file_rows(path: Path, split: str | None = None) -> Iterator[tuple[str, object]]:
    """(where, row) for every record of one data file; a row may be a DataError (an unreadable line)."""
    suffix = _suffix(path)
    if suffix in (".jsonl", ".jsonl.gz"):
        return jsonl_rows(path)
    if suffix in (".json", ".json.gz"):
        return _reading(path, _json_rows(path, split))
    if suffix == ".csv":
        return _reading(path, _csv_rows(path))
    return _reading(path, _parquet_rows(path))


def _pick_split(available: list[str], split: str | None, where: str) -> str:
    if split is not None:
        if split not in available:
            raise ValueError(f"{where}: no split {split!r}; known: {', '.join(sorted(available))}")
        return split
    if "train" in available:
        return "train"
    if len(available) == 1:
        return available[0]
    raise ValueError(f"{where}: several splits and none is 'train'; pass split=one of {', '.join(sorted(available))}")


def _dataset_rows(ds, prefix: str) -> Iterator[tuple[str, object]]:
    for i, row in enumerate(ds):
        yield f"{prefix}[{i}]", row


def folder_rows(folder: Path, split: str | None) -> tuple[Iterator[tuple[str, object]], str]:
    """(rows, description) of a ``save_to_disk`` folder or of a folder of data files."""
    if (folder / "dataset_dict.json").exists() or (folder / "state.json").exists():
        import datasets

        ds = datasets.load_from_disk(str(folder))
        if isinstance(ds, datasets.DatasetDict):
            name = _pick_split(list(ds), split, str(folder))
            return _dataset_rows(ds[name], f"{folder}@{name}"), f"dataset folder, split {name!r}"
        if split is not None:
            raise ValueError(f"{folder}: a single dataset without splits; drop split={split!r}")
        return _dataset_rows(ds, str(folder)), "dataset folder"
    groups: dict[str, list[Path]] = {}
    for p in sorted(folder.rglob("*")):
        hidden = any(x.startswith(".") for x in p.relative_to(folder).parts)
        if p.is_file() and p.name.lower().endswith(SUFFIXES) and not hidden:
            groups.setdefault(re.split(r"[-.]", p.name, maxsplit=1)[0], []).append(p)
    if not groups:
        raise ValueError(f"{folder}: no data files ({', '.join(SUFFIXES)}) and not a datasets save_to_disk folder")
    name = _pick_split(list(groups), split, str(folder))

    def rows():
        for p in groups[name]:
            yield from file_rows(p)

    return rows(), f"folder, split {name!r} ({len(groups[name])} file{'s' * (len(groups[name]) > 1)})"


def hub_rows(source: str, split: str | None) -> tuple[Iterator[tuple[str, object]], str]:
    """Rows of a Hugging Face dataset ``name[:config][@split]`` (downloads it: the network is used here)."""
    import datasets

    name, config, id_split = parse_hub_id(source)
    if split is not None and id_split is not None and split != id_split:
        raise ValueError(f"{source}: split {id_split!r} in the id and split={split!r} disagree")
    split = id_split or split or "train"
    try:
        ds = datasets.load_dataset(name, config, split=split)
    except (ConnectionError, FileNotFoundError, OSError) as e:  # offline, or no such dataset on the Hub
        raise FileNotFoundError(f"{source}: no such local file or folder, and not a Hugging Face dataset that could be "
                                f"loaded ({type(e).__name__}: {e}); give a path to a data file or folder, or a hub id "
                                f"with the network on") from None
    prefix = name + (f":{config}" if config else "") + f"@{split}"
    return _dataset_rows(ds, prefix), f"hub dataset, split {split!r}"


def source_rows(source: str, split: str | None = None) -> tuple[Iterator[tuple[str, object]], str, bool]:
    """(rows, description, rows_are_text): rows of any source; ``rows_are_text`` for CSV."""
    if looks_local(source):
        path = Path(source).expanduser()
        if path.is_dir():
            rows, what = folder_rows(path, split)
            return rows, what, False
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {source}")
        suffix = _suffix(path)
        if split is not None and suffix not in (".json", ".json.gz"):
            raise ValueError(f"{source}: split={split!r} applies to folders, JSON objects and hub ids, not a "
                             f"{suffix} file")
        return file_rows(path, split), suffix.lstrip(".") + " file", suffix == ".csv"
    rows, what = hub_rows(source, split)
    return rows, what, False


# ---------------------------------------------------------------------------------------------- publishers

FINEGRAINED_PAIRS = ((1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4))
SQUALITY_ATTRIBUTES = ("correctness", "selection", "overall")


def is_finegrainedrlhf(row: dict) -> bool:
    return {"question", "preference", "prediction 1", "prediction 2"} <= set(row)


def is_squality(row: dict) -> bool:
    return {"passage-id", "questions"} <= set(row)


def _preference(value, where: str) -> list[int]:
    """FineGrainedRLHF ``preference``: 6 outcomes in {0, 1, 2}, as a list or a string holding them."""
    if isinstance(value, str):  # "[1, 0, 2, 2, 1, 1]", "1,0,2,2,1,1" or "102211"
        text = value.strip()
        values = [int(c) for c in text] if text.isdigit() else [int(x) for x in re.findall(r"-?\d+", text)]
    else:
        values = value
    if (not isinstance(values, list) or len(values) != 6
            or any(isinstance(v, bool) or v not in (0, 1, 2) for v in values)):
        raise DataError(where, "preference", f"expected 6 outcomes in {{0, 1, 2}} for the pairs (1,2),(1,3),(1,4),"
                                             f"(2,3),(2,4),(3,4), got {value!r}")
    return values


def _passages_text(passages, where: str) -> str:
    if not isinstance(passages, list):
        raise DataError(where, "passages", f"expected a list of [title, sentence, ...] lists, got {describe(passages)}")
    lines = []
    for i, p in enumerate(passages, start=1):
        if not isinstance(p, list) or not p or not all(isinstance(s, str) for s in p):
            raise DataError(where, f"passages[{i - 1}]", f"expected [title, sentence, ...] strings, got {describe(p)}")
        lines.append(f"[{i}] {p[0]}: {' '.join(s.strip() for s in p[1:])}")
    return "\n".join(lines)


def finegrainedrlhf_records(row: dict, where: str, form: str, include_passages: bool, stats: Counter) -> list:
    """One FineGrainedRLHF question → 6 PairRecords (form "pairs") or 1 RankRecord (form "rankings").

    Returns records and, for bad pairs, DataErrors in their place (so one bad pair does not drop five good ones).
    """
    if form not in ("pairs", "rankings"):
        raise ValueError(f"FineGrainedRLHF data gives forms pairs, rankings; got form={form!r}")
    question = check_text(require(row, "question", where, "a string"), where, "question")
    prompt = question
    if include_passages and row.get("passages"):
        prompt = f"{question}\n\nPassages:\n{_passages_text(row['passages'], where)}"
    predictions = {i: require(row, f"prediction {i}", where, "a string") for i in range(1, 5)}
    prefs = _preference(require(row, "preference", where, "6 outcomes"), where)
    if form == "rankings":
        outcomes = {(a - 1, b - 1): v for (a, b), v in zip(FINEGRAINED_PAIRS, prefs)}
        ranks = pairwise_to_ranks(4, outcomes)
        if not ranks_agree(ranks, outcomes):
            stats["finegrainedrlhf_inconsistent"] += 1
        rec, _ = ranking_from_row({"prompt": prompt, "responses": [predictions[i] for i in range(1, 5)],
                                   "ranks": list(ranks)}, where)
        return [rec]
    out = []
    for (a, b), v in zip(FINEGRAINED_PAIRS, prefs):
        first, second = (a, b) if v in (0, 1) else (b, a)
        try:
            rec, _ = pair_from_row({"prompt": prompt, "chosen": predictions[first], "rejected": predictions[second],
                                    "tie": v == 0}, f"{where} pair {a}-{b}")
            out.append(rec)
        except DataError as e:
            out.append(e)
    return out


def squality_records(row: dict, where: str, form: str, stats: Counter) -> list:
    """One SQuALITY passage → per question, a RatingRecord per system (form "ratings") or one RankRecord
    (form "rankings"). A bad question becomes a DataError in its place."""
    if form not in ("ratings", "rankings"):
        raise ValueError(f"SQuALITY data gives forms ratings, rankings; got form={form!r}")
    pid = require(row, "passage-id", where, "a passage id")
    questions = require(row, "questions", where, "an object: question index → system → response and reviews")
    if not isinstance(questions, dict):
        raise DataError(where, "questions", f"expected an object: question index → system → entry, got "
                                            f"{describe(questions)}")
    out = []
    for qi, systems in questions.items():
        q_where = f"{where} question {qi}"
        prompt = f"SQuALITY passage {pid}, question {qi}"
        try:
            if not isinstance(systems, dict) or not systems:
                raise DataError(q_where, f"questions.{qi}",
                                f"expected an object: system → entry, got {describe(systems)}")
            rows = []
            for system, entry in systems.items():
                f = f"questions.{qi}.{system}"
                if not isinstance(entry, dict):
                    raise DataError(q_where, f, f"expected an object with response and reviews, got {describe(entry)}")
                reviews = entry.get("reviews")
                if not isinstance(reviews, list) or not reviews:
                    raise DataError(q_where, f"{f}.reviews",
                                    f"expected a non-empty list of reviews, got {describe(reviews)}")
                mean = {}
                for key in [f"{a}-rating" for a in SQUALITY_ATTRIBUTES] + ["overall-rank"]:
                    vals = [check_number(rv.get(key) if isinstance(rv, dict) else rv, q_where,
                                         f"{f}.reviews[{n}].{key}") for n, rv in enumerate(reviews)]
                    mean[key] = sum(vals) / len(vals)
                rows.append((system, check_text(entry.get("response"), q_where, f"{f}.response"), mean))
            if form == "ratings":
                for system, response, mean in rows:
                    scores = {a: mean[f"{a}-rating"] for a in SQUALITY_ATTRIBUTES}
                    rec, _ = rating_from_row({"prompt": prompt, "response": response, "score": scores["overall"],
                                              "scores": scores}, f"{q_where} {system}")
                    out.append(rec)
            else:
                rec, _ = ranking_from_row({"prompt": prompt, "responses": [r for _, r, _ in rows],
                                           "ranks": [m["overall-rank"] for _, _, m in rows]}, q_where)
                out.append(rec)
        except DataError as e:
            out.append(e)
    return out


# ---------------------------------------------------------------------------------------------- loading

def _remap(row: dict, columns: dict[str, str], where: str) -> dict:
    """Rename the data's columns to rewardlab's: ``columns`` maps rewardlab name → data name."""
    out = dict(row)
    for ours, theirs in columns.items():
        if theirs not in row:
            raise DataError(where, ours, f"column {theirs!r} (mapped to {ours!r}) not found; columns present: "
                                         f"{', '.join(sorted(map(str, row)))}")
        out[ours] = row[theirs]
    return out


def _check_columns(columns: dict[str, str] | None, form: str) -> dict[str, str]:
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(FIELDS[form]))
    if unknown:
        raise ValueError(f"columns: unknown field(s) {', '.join(map(repr, unknown))} for form {form!r}; "
                         f"known: {', '.join(FIELDS[form])}")
    return columns


def load_records(source: str, *, form: str = "pairs", columns: dict[str, str] | None = None,
                 split: str | None = None, on_bad_record: str = "error", limit: int | None = None,
                 include_passages: bool = False) -> tuple[list, "LoadReport"]:
    """Read ``source`` (file, folder or hub id; see the module docstring) into validated records of ``form``.

    form: "pairs" (default), "rankings", "ratings" or "labels".
    columns: rewardlab field → the data's column name, e.g. ``{"prompt": "question", "chosen": "good"}``.
    split: which split of a folder / DatasetDict / JSON object / hub dataset (default "train" if present).
    on_bad_record: "error" (default) raises DataError at the first bad row; "skip" counts it in the report
        (``n_skipped``; the first 10 messages in ``skipped``) and goes on.
    limit: stop after this many records (None: all).
    include_passages: FineGrainedRLHF only: put the retrieved passages in the prompt (default False).
    Returns (records, LoadReport).
    """
    check_form(form)
    if on_bad_record not in ON_BAD_RECORD:
        raise ValueError(f"unknown on_bad_record {on_bad_record!r}; known: {', '.join(ON_BAD_RECORD)}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    columns = _check_columns(columns, form)
    rows, what, text_cells = source_rows(str(source), split)
    report = LoadReport(source=str(source), form=form)
    layouts: Counter = Counter()
    stats: Counter = Counter()
    records: list = []
    publisher, first = None, True

    problems: Counter = Counter()  # error mode: after the first bad record, count the others (a validation pass)
    first_error: list = []

    def bad(err: DataError) -> None:
        if on_bad_record == "error":
            first_error[:1] = first_error[:1] or [err]
            problems[problem_kind(err)] += 1
            return
        report.n_skipped += 1
        if len(report.skipped) < MAX_MESSAGES:
            report.skipped.append(str(err))

    for where, row in rows:
        if limit is not None and len(records) >= limit or first_error and report.n_read >= COUNT_ROWS:
            break
        report.n_read += 1
        if isinstance(row, DataError):
            bad(row)
            continue
        if not isinstance(row, dict):
            bad(DataError(where, None, f"expected an object with named fields, got {describe(row)}"))
            continue
        if first and not columns:  # publishers' formats are recognised from the first row's fields
            publisher = "finegrainedrlhf" if is_finegrainedrlhf(row) else "squality" if is_squality(row) else None
        first = False
        try:
            if publisher == "finegrainedrlhf":
                items = finegrainedrlhf_records(row, where, form, include_passages, stats)
            elif publisher == "squality":
                items = squality_records(row, where, form, stats)
            else:
                row = _remap(row, columns, where)
                if text_cells:
                    row = _decode_csv_cells(row)
                rec, layout = record_from_row(row, where, form)
                layouts[layout] += 1
                items = [rec]
        except DataError as e:
            bad(e)
            continue
        for item in items:
            if isinstance(item, DataError):
                bad(item)
            elif limit is None or len(records) < limit:
                records.append(item)
                if publisher:
                    layouts[publisher] += 1
    if first_error:
        raise first_error_with_counts(first_error[0], problems, report.n_read) from None
    report.n_loaded = len(records)
    report.detected = _describe_layouts(layouts)
    report.notes.append(f"read from a {what}")
    if stats["finegrainedrlhf_inconsistent"]:
        report.notes.append(f"{stats['finegrainedrlhf_inconsistent']} question(s) have pairwise outcomes that no "
                            f"ranking reproduces (cycles or inconsistent ties); their ranks follow the win count")
    return records, report


COUNT_ROWS = 1_000_000  # after a first bad record, rows read at most to count the others


def problem_kind(err: DataError) -> tuple:
    """(field, problem with its values blanked): records with the same kind of problem count together."""
    return err.field, re.sub(r"'[^']*'|\"[^\"]*\"|-?\d+(\.\d+)?", "…", err.problem)


def first_error_with_counts(err: DataError, problems: Counter, n_read: int) -> DataError:
    """The first bad record's error, with how many records of the source have the same problem and how many others."""
    same = problems[problem_kind(err)]
    other = sum(problems.values()) - same
    counts = (f"{same} of the {n_read} records read {'has' if same == 1 else 'have'} this problem"
              + (f", {other} {'has another problem' if other == 1 else 'have other problems'}" if other else ""))
    return DataError(err.where, err.field, f"{err.problem} ({counts}; pass on_bad_record='skip' to skip bad records)")


def _describe_layouts(layouts: Counter) -> str:
    if len(layouts) <= 1:
        return next(iter(layouts), "nothing loaded")
    return ", ".join(f"{name} ({n})" for name, n in layouts.most_common())


# ---------------------------------------------------------------------------------------------- the sources of a run

SOURCE_KEYS = ("form", "loss", "weight", "eval")


@dataclass(frozen=True)
class DataSource:
    """One training source as ``train --data`` takes it: ``PATH[:KEY=VALUE,...]``.

    ``PATH`` is anything ``load_records`` reads. The options start at the first ``:KEY=`` whose KEY is a word
    (a hub id's ``:config`` has no ``=``), are separated by commas, and say how this source is read and trained;
    each defaults to the run's own flag: ``form`` (--form), ``loss`` (--loss), ``weight`` (1: its term's weight
    in the objective), ``eval`` (its held-out data; default: an --eval-split of it).

    >>> parse_source("ratings.jsonl:loss=mse,weight=0.5")
    DataSource(path='ratings.jsonl', form=None, loss='mse', weight=0.5, eval=None)
    >>> parse_source("Anthropic/hh-rlhf:harmless-base@test").path
    'Anthropic/hh-rlhf:harmless-base@test'
    """

    path: str
    form: str | None = None
    loss: str | None = None
    weight: float = 1.0
    eval: str | None = None

    def spec(self) -> str:
        """The ``--data`` item that parses back to this source."""
        opts = [f"{k}={getattr(self, k)}" for k in SOURCE_KEYS if getattr(self, k) != DataSource.__dataclass_fields__[k].default]
        return self.path + (":" + ",".join(opts) if opts else "")


def parse_source(item, flag: str = "--data") -> DataSource:
    """A ``--data`` item ``PATH[:KEY=VALUE,...]`` (or a YAML mapping ``{path: …, loss: …}``) → :class:`DataSource`.
    An unknown key, a key given twice, a form that is not one, or a weight that is not a positive number is a
    ValueError naming ``flag`` and the item."""
    if isinstance(item, dict):
        opts, path = {k: v for k, v in item.items() if k != "path"}, item.get("path")
    else:
        m = re.match(r"(?s)(.+?):([A-Za-z_]\w*=.*)$", str(item))
        path, opts = (m.group(1), {}) if m else (str(item), {})
        for part in m.group(2).split(",") if m else []:
            key, eq, value = part.partition("=")
            if not eq:
                raise ValueError(f"{flag} {item}: expected KEY=VALUE options after the path, got {part!r}")
            if key.strip() in opts:
                raise ValueError(f"{flag} {item}: {key.strip()} is given twice")
            opts[key.strip()] = value.strip()
    if not path or not str(path).strip():
        raise ValueError(f"{flag} {item}: no path")
    unknown = sorted(set(opts) - set(SOURCE_KEYS))
    if unknown:
        raise ValueError(f"{flag} {item}: unknown option(s) {', '.join(unknown)}; known: {', '.join(SOURCE_KEYS)}")
    if opts.get("form") is not None and opts["form"] not in FORMS:
        raise ValueError(f"{flag} {item}: form must be {', '.join(FORMS)}, got {opts['form']!r}")
    if "weight" in opts:
        try:
            opts["weight"] = float(opts["weight"])
        except (TypeError, ValueError):
            opts["weight"] = math.nan
        if not (math.isfinite(opts["weight"]) and opts["weight"] > 0):
            raise ValueError(f"{flag} {item}: weight must be a positive number")
    return DataSource(str(path), **{k: v if k == "weight" or v is None else str(v) for k, v in opts.items()})


def source_forms(source: str, columns: dict[str, str] | None = None) -> list[str]:
    """The data forms whose fields the first record of ``source`` holds (after ``columns``), in ``FORMS`` order:
    pairs (chosen and rejected), rankings (responses), ratings (score or scores), labels (label); a FineGrainedRLHF
    file gives pairs and rankings, a SQuALITY file ratings and rankings. [] for an empty source or a first row that
    is not an object (loading it then says what is wrong). Reads one row; a hub id is fetched, as loading does."""
    rows, _, _ = source_rows(str(source))
    try:
        row = next((row for _, row in rows), None)
    finally:
        getattr(rows, "close", lambda: None)()
    if not isinstance(row, dict):
        return []
    columns = columns or {}
    if not columns and is_finegrainedrlhf(row):
        return ["pairs", "rankings"]
    if not columns and is_squality(row):
        return ["ratings", "rankings"]
    has = lambda name: row.get(columns.get(name, name)) is not None  # noqa: E731
    found = {"pairs": has("chosen") and has("rejected"), "rankings": has("responses"),
             "ratings": has("score") or has("scores"), "labels": has("label")}
    return [form for form in FORMS if found[form]]


# ---------------------------------------------------------------------------------------------- chat

def hh_to_messages(text: str) -> list[dict]:
    """An HH-RLHF transcript ``"\\n\\nHuman: … \\n\\nAssistant: …"`` → chat messages (Human → user,
    Assistant → assistant), contents stripped of surrounding whitespace.

    >>> hh_to_messages("\\n\\nHuman: hi\\n\\nAssistant: hello")
    [{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'hello'}]

    A prompt ending with "\\n\\nAssistant:" ends with an empty assistant message: drop it (``[:-1]``) to
    get the conversation so far. Text before the first turn marker is an error.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected an HH-RLHF transcript string, got {type(text).__name__}")
    parts = re.split(r"\n\n(Human|Assistant):", text)
    if parts[0].strip():
        raise ValueError(f"expected the transcript to start with {HUMAN!r}, got {text[:40]!r}")
    if len(parts) == 1:
        raise ValueError(f"no '\\n\\nHuman:' or '\\n\\nAssistant:' turn in {text[:40]!r}")
    roles = {"Human": "user", "Assistant": "assistant"}
    return [{"role": roles[parts[i]], "content": parts[i + 1].strip()} for i in range(1, len(parts), 2)]
