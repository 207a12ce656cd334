"""Evaluation data: records plus the columns evaluation needs beyond them (subset, annotator labels),
and the two RewardBench layouts, detected from the first row's columns.

Layouts (``LAYOUTS``; ``detect_layout`` picks one when ``layout="auto"``):

    rewardbench   RewardBench v1: ``prompt``, ``chosen``, ``rejected`` (strings) and ``subset`` whose
                  values are all RewardBench v1 subsets or prior sets → section scores.
    rewardbench2  RewardBench 2: ``chosen`` and ``rejected`` are LISTS of response strings (one or more
                  chosen, usually three rejected), plus ``prompt`` and optionally ``subset`` and ``id``
                  → RB2 accuracy (1/#tied-at-max credit) and subset scores. Each row becomes a
                  RankRecord: the chosen responses ranked 1, the rejected ones 2.
    plain         everything else: records of ``form`` as ``data.formats.load_records`` reads them; a
                  ``subset`` column that is not RewardBench's still gives accuracy per subset.

Side columns (subset, annotator labels) are read from the same rows as the records, matched by the
record's ``source`` ("file:line" or "path[i]"), so skipped bad rows and ``limit`` stay consistent.
Publishers' layouts that make several records per row (FineGrainedRLHF, SQuALITY) carry no side
columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rewardlab.data.formats import LoadReport, load_records, source_rows
from rewardlab.data.records import DataError, check_text, describe, ranking_from_row, require
from rewardlab.eval import rewardbench as RB

LAYOUTS = ("auto", "plain", "rewardbench", "rewardbench2")
RB1_KNOWN = set(RB.EXAMPLE_COUNTS) | set(RB.PRIOR_SETS)


@dataclass
class EvalData:
    """Records of one form and what evaluation needs beside them.

    subsets[b]      subset name of record b (None when the data has no subset column)
    annotators[b]   list of annotator labels of pair b (1 = chosen preferred, 0 = rejected, None = missing)
    n_chosen[b]     RewardBench 2: how many of the record's responses are chosen (the first n_chosen)
    ids[b]          RewardBench 2: the row's ``id`` (the Ties subset pairs "ref:<k>" with "tied:<k>")
    """

    records: list
    report: LoadReport
    form: str
    layout: str
    subsets: list | None = None
    annotators: list | None = None
    n_chosen: list | None = None
    ids: list | None = None
    notes: list = field(default_factory=list)


def first_row(source: str, columns: dict | None = None) -> dict | None:
    """The first readable row of ``source`` as a dict (column mapping applied), or None."""
    rows, _, _ = source_rows(str(source))
    for _, row in rows:
        if isinstance(row, dict):
            out = dict(row)
            for ours, theirs in (columns or {}).items():
                if theirs in row:
                    out[ours] = row[theirs]
            return out
    return None


def _is_response_list(value) -> bool:
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(x, str) for x in value)


def detect_layout(row: dict | None, subset_column: str = "subset") -> str:
    """"rewardbench2" when chosen and rejected are lists of strings; "rewardbench" when the row has
    prompt/chosen/rejected strings and a subset column; else "plain". (``load_eval_data`` then checks
    that every subset of a "rewardbench" file is one of RewardBench's.)"""
    if not row:
        return "plain"
    if _is_response_list(row.get("chosen")) and _is_response_list(row.get("rejected")):
        return "rewardbench2"
    if all(isinstance(row.get(k), str) for k in ("prompt", "chosen", "rejected")) and row.get(subset_column) is not None:
        return "rewardbench"
    return "plain"


def side_columns(source: str, names: list[str]) -> dict:
    """{where: {name: value}} of every row of ``source`` (same "where" strings as ``load_records``)."""
    rows, _, _ = source_rows(str(source))
    return {where: {n: row.get(n) for n in names} for where, row in rows if isinstance(row, dict)}


def _annotator_labels(value, where: str, column: str) -> list:
    if not isinstance(value, (list, tuple)) or not value:
        raise DataError(where, column, f"expected a non-empty list of annotator labels (1 = chosen preferred, 0 = "
                                       f"rejected preferred, null = no label), got {describe(value)}")
    out = []
    for i, v in enumerate(value):
        if v is None:
            out.append(None)
        elif isinstance(v, bool) or v not in (0, 1):
            raise DataError(where, f"{column}[{i}]", f"expected 1, 0 or null, got {v!r}")
        else:
            out.append(int(v))
    return out


def load_rewardbench2(source: str, *, columns: dict | None = None, on_bad_record: str = "error",
                      limit: int | None = None, subset_column: str = "subset") -> EvalData:
    """Rows with ``prompt``, lists ``chosen`` and ``rejected`` (and ``subset``, ``id``) → RankRecords
    (chosen ranked 1, rejected 2) with n_chosen, subset and id per record."""
    columns = columns or {}
    rows, what, _ = source_rows(str(source))
    report = LoadReport(source=str(source), form="rankings", detected="rewardbench2")
    records, subsets, ids, n_chosen = [], [], [], []
    for where, row in rows:
        if limit is not None and len(records) >= limit:
            break
        report.n_read += 1
        try:
            if isinstance(row, DataError):
                raise row
            if not isinstance(row, dict):
                raise DataError(where, None, f"expected an object with named fields, got {describe(row)}")
            row = {**row, **{ours: row[theirs] for ours, theirs in columns.items() if theirs in row}}
            chosen = require(row, "chosen", where, "a list of response strings")
            rejected = require(row, "rejected", where, "a list of response strings")
            for name, value in (("chosen", chosen), ("rejected", rejected)):
                if not _is_response_list(value):
                    raise DataError(where, name, f"expected a non-empty list of response strings, got {describe(value)}")
                for i, v in enumerate(value):
                    check_text(v, where, f"{name}[{i}]")
            rec, _ = ranking_from_row({"prompt": row.get("prompt", ""), "responses": list(chosen) + list(rejected),
                                       "ranks": [1] * len(chosen) + [2] * len(rejected)}, where)
        except DataError as e:
            if on_bad_record == "error":
                raise DataError(e.where, e.field, e.problem + " (pass on_bad_record='skip' to skip bad records)") from None
            report.n_skipped += 1
            if len(report.skipped) < 10:
                report.skipped.append(str(e))
            continue
        records.append(rec)
        n_chosen.append(len(chosen))
        subsets.append(row.get(subset_column))
        ids.append(row.get("id", where))
    report.n_loaded = len(records)
    report.notes.append(f"read from a {what}")
    has_subsets = bool(records) and all(s is not None for s in subsets)
    return EvalData(records, report, "rankings", "rewardbench2", subsets=[str(s) for s in subsets] if has_subsets else None,
                    n_chosen=n_chosen, ids=[str(i) for i in ids])


def load_eval_data(source: str, *, form: str | None = None, layout: str = "auto", columns: dict | None = None,
                   on_bad_record: str = "error", limit: int | None = None, subset_column: str = "subset",
                   annotator_column: str | None = None) -> EvalData:
    """Records for evaluation plus subsets / annotator labels; see the module docstring for the layouts.

    form None means "pairs" (or "rankings" for a RewardBench 2 file). An explicit layout that the data
    does not fit, or a form that contradicts the layout, is an error naming both.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    row = first_row(source, columns)
    found = detect_layout(row, subset_column)
    explicit = layout != "auto"
    if layout == "auto":
        layout = found
    elif layout != "plain" and found != layout:
        raise ValueError(f"layout {layout!r} given, but the first row of {source} looks like {found!r} "
                         f"(columns: {', '.join(sorted(map(str, row or {})))})")
    if layout == "rewardbench2":
        if form not in (None, "rankings"):
            raise ValueError(f"a RewardBench 2 file (lists of chosen and rejected responses) is scored as rankings; "
                             f"got form={form!r}")
        return load_rewardbench2(source, columns=columns, on_bad_record=on_bad_record, limit=limit,
                                 subset_column=subset_column)
    form = form or "pairs"
    if layout == "rewardbench" and form != "pairs":
        raise ValueError(f"a RewardBench v1 file is scored as pairs; got form={form!r}")
    records, report = load_records(source, form=form, columns=columns, on_bad_record=on_bad_record, limit=limit)
    data = EvalData(records, report, form, layout)
    wanted = [subset_column] if form == "pairs" and row and row.get(subset_column) is not None else []
    if annotator_column:
        wanted.append(annotator_column)
    if not wanted or not records:
        return data
    if annotator_column and form != "pairs":
        raise ValueError(f"annotator labels apply to pairs; got form={form!r}")
    side = side_columns(source, wanted)
    if any(r.source not in side for r in records):
        raise ValueError(f"{source}: subset / annotator columns cannot be matched to records of this layout "
                         f"({report.detected}); drop --subset-column / --annotator-column")
    if subset_column in wanted:
        values = [side[r.source].get(subset_column) for r in records]
        if all(v is not None for v in values):
            data.subsets = [str(v) for v in values]
        else:
            data.notes.append(f"column {subset_column!r} is missing in {sum(v is None for v in values)} records; "
                              f"no per-subset accuracy")
    if layout == "rewardbench":
        unknown = sorted(set(data.subsets or []) - RB1_KNOWN)
        if (unknown or data.subsets is None) and explicit:
            raise ValueError(f"layout 'rewardbench': subsets {unknown[:5]} are not RewardBench v1 subsets; known: "
                             f"{', '.join(sorted(RB1_KNOWN))}")
        if unknown or data.subsets is None:
            data.layout = "plain"
            data.notes.append(f"subsets {unknown[:5]} are not RewardBench v1 subsets: accuracy per subset only, "
                              f"no section scores")
    if annotator_column:
        data.annotators = [_annotator_labels(side[r.source].get(annotator_column), r.source, annotator_column)
                           for r in records]
    return data
