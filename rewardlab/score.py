"""Reading and writing JSONL for ``rewardlab score``: every record comes back with its reward(s) added."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from rewardlab.data.formats import DataError


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def read_jsonl_for_scoring(path: str | Path, prompt_field: str = "prompt", response_field: str = "response"):
    """(rows, prompts, responses, slots): ``slots[i] = (row index, key the i-th reward is written to)``.

    A row with ``response_field`` gets ``reward``; a row with ``chosen`` and ``rejected`` gets
    ``reward_chosen`` and ``reward_rejected``. The prompt may be absent (the text is scored alone).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    rows, prompts, responses, slots = [], [], [], []
    with _open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{line_no}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}")
            prompt = row.get(prompt_field, "")
            if response_field in row:
                targets = [(response_field, "reward")]
            elif "chosen" in row and "rejected" in row:
                targets = [("chosen", "reward_chosen"), ("rejected", "reward_rejected")]
            else:
                raise DataError(f"{path}:{line_no}: field {response_field!r}: missing (expected it, or chosen + rejected)")
            for src, dst in targets:
                value = row[src]
                if not isinstance(value, (str, list)):
                    raise DataError(f"{path}:{line_no}: field {src!r}: expected a string or chat messages, got {type(value).__name__}")
                prompts.append(prompt)
                responses.append(value)
                slots.append((len(rows), dst))
            rows.append(row)
    return rows, prompts, responses, slots


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
