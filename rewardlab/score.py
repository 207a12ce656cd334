"""Reading and writing JSONL for ``rewardlab score``: every record comes back with its reward(s) added."""

from __future__ import annotations

import json
from pathlib import Path

from rewardlab.data.formats import DataError, jsonl_rows
from rewardlab.data.records import check_text


def read_jsonl_for_scoring(path: str | Path, prompt_field: str = "prompt", response_field: str = "response"):
    """(rows, prompts, responses, slots): ``slots[i] = (row index, key the i-th reward is written to)``.

    A row with ``response_field`` gets ``reward``; a row with ``chosen`` and ``rejected`` gets
    ``reward_chosen`` and ``reward_rejected``. The prompt may be absent (the text is scored alone).
    Lines are read as ``rewardlab train`` reads JSONL (``formats.jsonl_rows``: gzip, BOM); a bad line
    raises ``DataError`` naming file, line and field, and a file without records is an error too.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(str(path), None, "a folder; expected a JSONL file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    rows, prompts, responses, slots = [], [], [], []
    for where, row in jsonl_rows(path):
        if isinstance(row, DataError):
            raise row
        if not isinstance(row, dict):
            raise DataError(where, None, f"expected a JSON object, got {type(row).__name__}")
        prompt = row.get(prompt_field, "")
        if not isinstance(prompt, (str, list)):
            raise DataError(where, prompt_field, f"expected a string or chat messages, got {type(prompt).__name__}")
        check_text(prompt, where, prompt_field, allow_empty=True)  # chat messages: each a {role, content} dict
        if response_field in row:
            targets = [(response_field, "reward")]
        elif "chosen" in row and "rejected" in row:
            targets = [("chosen", "reward_chosen"), ("rejected", "reward_rejected")]
        else:
            raise DataError(where, response_field, "missing (expected it, or chosen + rejected)")
        for src, dst in targets:
            value = row[src]
            if not isinstance(value, (str, list)):
                raise DataError(where, src, f"expected a string or chat messages, got {type(value).__name__}")
            check_text(value, where, src, allow_empty=True)
            prompts.append(prompt)
            responses.append(value)
            slots.append((len(rows), dst))
        rows.append(row)
    if not rows:
        raise DataError(str(path), None, "no records (the file is empty or holds only blank lines)")
    return rows, prompts, responses, slots


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
