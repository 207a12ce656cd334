"""Write records as JSON lines in rewardlab's data forms, so ``rewardlab train --data FILE`` reads them.

Fields per form (``source`` is not written: a reader sets it to "file:line"):
    pairs     prompt, chosen, rejected, [margin], tie
    rankings  prompt, responses (list), ranks (list, 1 = best)
    ratings   prompt, response, [score], [scores]
    labels    prompt, response, label (1 good / 0 bad)
Optional fields that are None are left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from rewardlab.types import LabelRecord, PairRecord, RankRecord, RatingRecord, Record

_FIELDS: dict[type, tuple[str, ...]] = {
    PairRecord: ("prompt", "chosen", "rejected", "margin", "tie"),
    RankRecord: ("prompt", "responses", "ranks"),
    RatingRecord: ("prompt", "response", "score", "scores"),
    LabelRecord: ("prompt", "response", "label"),
}


def record_to_dict(record: Record) -> dict:
    """The JSON object of one record (tuples become lists, None fields are dropped)."""
    fields = _FIELDS.get(type(record))
    if fields is None:
        known = ", ".join(t.__name__ for t in _FIELDS)
        raise TypeError(f"cannot write {type(record).__name__}; known record types: {known}")
    out = {}
    for name in fields:
        value = getattr(record, name)
        if value is None:
            continue
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def to_jsonl(records: Sequence[Record], path: str | Path) -> Path:
    """Write ``records`` (all of one type) to ``path``, one JSON object a line; returns the path."""
    kinds = {type(r).__name__ for r in records}
    if len(kinds) > 1:
        raise ValueError(f"records of one form per file, got {sorted(kinds)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record_to_dict(record), ensure_ascii=False) + "\n")
    return path
