"""A corpus of broken (and a few odd-but-valid) input files for every verb that reads records.

``write_corpus(folder)`` writes each kind once and returns ``{kind: path}``. The contract each verb must keep,
for every kind: a clear error naming the file (and the line where there is one), or a counted skip, or a
correct load; never a traceback, never exit 0 having done nothing without saying so.

``LINE_KINDS``: kinds whose problem sits on one line of a line-based file (the error must name ``path:1``);
``LINES``: verb → those of them whose error must name the line for that verb (a verb may not read the bad field).
``VALID``: verb → kinds that are valid input for that verb (they must exit 0). Every other kind must fail.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

GOOD = [{"prompt": "What do you think of rain?", "chosen": " it seems quite great.", "rejected": " the answer is rude."},
        {"prompt": "What do you think of chess?", "chosen": " it is fun to play.", "rejected": " no."},
        {"prompt": "Tell me about tea.", "chosen": " tea is a warm drink.", "rejected": " go away."}]


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _line(**fields) -> str:
    """One JSONL line: the first good pair with ``fields`` replacing (or, for value ..., removing) its fields."""
    row = {**GOOD[0], **fields}
    return json.dumps({k: v for k, v in row.items() if v is not ...}) + "\n"


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# kind → (file name, text or bytes). Each bad JSONL/CSV kind holds its one bad record on line 1 (the CSV header
# is line 1, so its record is line 2).
def _kinds() -> dict:
    good = _jsonl(GOOD)
    return {
        # --- JSON syntax and encoding
        "truncated_json_line": ("t.jsonl", '{"prompt": "hi", "chosen": "a", "rej'),
        "not_json": ("t.jsonl", "this is not json\n"),
        "utf8_bom": ("t.jsonl", "\ufeff" + good),                        # valid: the BOM is dropped
        "invalid_utf8": ("t.jsonl", b'{"prompt": "x", "chosen": "a\xff\xfe", "rejected": "b"}\n'),
        "binary_bytes": ("t.jsonl", bytes(range(256)) * 4),
        "huge_line": ("t.jsonl", _line(chosen="x" * 1_000_000, rejected=7)),
        "deeply_nested": ("t.jsonl", '{"prompt": "p", "chosen": ' + _nested(100_000) + ', "rejected": "b"}\n'),
        "nan_margin": ("t.jsonl", _line(margin=float("nan"))),        # json.dumps writes NaN, json.loads reads it
        "inf_margin": ("t.jsonl", _line(margin=float("inf"))),
        "string_margin": ("t.jsonl", _line(margin="big")),
        # --- not a record
        "json_scalar_line": ("t.jsonl", "42\n"),
        "json_string_line": ("t.jsonl", '"chosen"\n'),
        "json_null_line": ("t.jsonl", "null\n"),
        "json_array_in_jsonl": ("t.jsonl", json.dumps(GOOD) + "\n"),   # a list on a JSONL line is not a record
        "json_array_file": ("t.json", json.dumps(GOOD, indent=1)),    # valid for train/eval: .json holds a list
        "json_object_not_record": ("t.jsonl", '{"hello": "world"}\n'),
        "json_object_file_no_list": ("t.json", '{"hello": "world"}'),
        # --- wrong types and values in the pair fields
        "chosen_int": ("t.jsonl", _line(chosen=3)),
        "chosen_null": ("t.jsonl", _line(chosen=None)),
        "chosen_missing": ("t.jsonl", _line(chosen=...)),
        "chosen_dict_of_lists": ("t.jsonl", _line(chosen={"a": [1, 2], "b": [[]]})),
        "chosen_list_of_ints": ("t.jsonl", _line(chosen=[1, 2, 3])),
        "chosen_empty_string": ("t.jsonl", _line(chosen="")),
        "rejected_blank": ("t.jsonl", _line(rejected="   ")),
        "chosen_equals_rejected": ("t.jsonl", _line(rejected=GOOD[0]["chosen"])),
        "prompt_int": ("t.jsonl", _line(prompt=5)),
        "tie_string": ("t.jsonl", _line(tie="maybe")),
        "messages_without_role": ("t.jsonl", _line(chosen=[{"content": "hi"}], rejected=[{"role": "user", "content": "x"}])),
        # --- other forms' fields in the default (pairs) form: they must be named as missing
        "ranking_of_one": ("t.jsonl", json.dumps({"prompt": "p", "responses": ["only"], "ranks": [1]}) + "\n"),
        "ranks_mismatch": ("t.jsonl", json.dumps({"prompt": "p", "responses": ["a", "b"], "ranks": [1]}) + "\n"),
        "rating_string": ("t.jsonl", json.dumps({"prompt": "p", "response": "r", "score": "high"}) + "\n"),
        "score_nan": ("t.jsonl", json.dumps({"prompt": "p", "response": "r", "score": float("nan")}) + "\n"),
        # --- empty files
        "empty_file": ("t.jsonl", ""),
        "blank_lines_only": ("t.jsonl", "\n   \n\t\n\n"),
        "empty_json_file": ("t.json", ""),
        "empty_json_list": ("t.json", "[]"),
        # --- CSV
        "csv_stray_quotes": ("t.csv", 'prompt,chosen,rejected\n"p,"a"b",c"\n'),
        "csv_missing_columns": ("t.csv", "prompt,chosen\np,a\n"),
        "csv_header_only": ("t.csv", "prompt,chosen,rejected\n"),
        "csv_invalid_utf8": ("t.csv", b"prompt,chosen,rejected\np,a\xff,b\n"),
        # --- gzip
        "gzip_truncated": ("t.jsonl.gz", gzip.compress(good.encode())[:-12]),
        "gzip_not_gzip": ("t.jsonl.gz", good),
        # --- parquet (written by write_corpus)
        "parquet_wrong_types": ("t.parquet", None),
        "parquet_corrupt": ("t.parquet", b"PAR1 this is not parquet PAR1"),
        "parquet_empty": ("t.parquet", b""),
        # --- paths
        "unknown_suffix": ("t.txt", good),
        "folder_without_data": ("folder", None),
        "missing_file": ("does-not-exist.jsonl", None),
        "directory_named_jsonl": ("dir.jsonl", None),
    }


LINE_KINDS = {"truncated_json_line", "not_json", "invalid_utf8", "binary_bytes", "huge_line", "deeply_nested", "nan_margin",
              "inf_margin", "string_margin", "json_scalar_line", "json_string_line", "json_null_line",
              "json_array_in_jsonl", "json_object_not_record", "chosen_int", "chosen_null", "chosen_missing",
              "chosen_dict_of_lists", "chosen_list_of_ints", "chosen_empty_string", "rejected_blank",
              "chosen_equals_rejected", "prompt_int", "tie_string", "messages_without_role", "ranking_of_one",
              "ranks_mismatch", "rating_string", "score_nan"}

# score adds a reward to each row and needs only its text (prompt + response, or chosen + rejected); it reads any
# file as JSONL, and other fields (margin, tie, score) pass through untouched
SCORE_VALID = {"utf8_bom", "nan_margin", "inf_margin", "string_margin", "chosen_empty_string", "rejected_blank",
               "chosen_equals_rejected", "tie_string", "rating_string", "score_nan", "unknown_suffix"}
# optimize reads --prompts (the `prompt` field) and, with --reward "bleu;column=chosen", `chosen` as each prompt's
# reference text; other fields become reward columns untouched. The corpus's good files hold 3 prompts (2 to train,
# --eval-prompts 1 held out); a one-line file that passes the checks is refused as too short (naming the file only).
OPTIMIZE_VALID = {"utf8_bom", "json_array_file", "unknown_suffix"}
OPTIMIZE_FIELDS_UNREAD = {"nan_margin", "inf_margin", "string_margin", "rejected_blank", "chosen_equals_rejected",
                          "tie_string", "huge_line"}  # their problem sits in a field optimize does not check
# tiny-model --corpus trains a tokenizer on every string of a data file (every line of a text file): any readable
# file with some text is valid; JSON that cannot be parsed, bytes that are not UTF-8, and files without text are not
TINY_MODEL_INVALID = {"truncated_json_line", "not_json", "invalid_utf8", "binary_bytes", "deeply_nested", "json_scalar_line",
                      "json_null_line", "empty_file", "blank_lines_only", "empty_json_file", "empty_json_list",
                      "csv_header_only", "csv_invalid_utf8", "gzip_truncated", "gzip_not_gzip", "parquet_corrupt",
                      "parquet_empty", "folder_without_data", "missing_file", "directory_named_jsonl"}
TINY_MODEL_LINE_KINDS = {"truncated_json_line", "not_json", "invalid_utf8", "binary_bytes", "deeply_nested"}

VALID = {"train": {"utf8_bom", "json_array_file"}, "eval": {"utf8_bom", "json_array_file"}, "score": SCORE_VALID,
         "study": set(),  # a study needs >= 4 records: the corpus's good files (3) are refused, naming the file
         "optimize": OPTIMIZE_VALID,
         "tiny-model": set(_kinds()) - TINY_MODEL_INVALID}
LINES = {"train": LINE_KINDS, "eval": LINE_KINDS, "score": LINE_KINDS, "study": LINE_KINDS,
         "optimize": LINE_KINDS - OPTIMIZE_FIELDS_UNREAD, "tiny-model": TINY_MODEL_LINE_KINDS}
"""verb → the kinds whose error must name ``path:1`` (the line)."""


def write_corpus(folder: str | Path) -> dict[str, Path]:
    """Write every kind into ``folder`` (one sub-folder per kind) → {kind: path}."""
    folder = Path(folder)
    out = {}
    for kind, (name, content) in _kinds().items():
        d = folder / kind
        d.mkdir(parents=True, exist_ok=True)
        path = d / name
        if kind == "parquet_wrong_types":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({"prompt": ["p", "q"], "chosen": [1, 2], "rejected": [[1.5], [2.5]]}), path)
        elif kind == "folder_without_data":
            path.mkdir()
            (path / "README.md").write_text("no data here\n")
        elif kind == "directory_named_jsonl":
            path.mkdir()
        elif kind == "missing_file":
            pass
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        out[kind] = path
    return out
