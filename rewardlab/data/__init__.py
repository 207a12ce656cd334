"""Preference data: load and validate records (``formats``, ``records``), convert between forms
(``convert``), render text for a tokenizer (``render``); tokenising and batching live in ``batching``.

    from rewardlab.data import load_records
    records, report = load_records("data/pairs.jsonl", form="pairs")

Heavy libraries (datasets, pyarrow) are imported only when a source needs them.
"""

from rewardlab.data.convert import pairwise_to_ranks, rankings_to_pairs, ratings_to_pairs
from rewardlab.data.formats import LoadReport, hh_to_messages, load_records, parse_hub_id
from rewardlab.data.records import FORMS, DataError
from rewardlab.data.render import prompt_text, render

__all__ = [
    "FORMS",
    "DataError",
    "LoadReport",
    "hh_to_messages",
    "load_records",
    "pairwise_to_ranks",
    "parse_hub_id",
    "prompt_text",
    "rankings_to_pairs",
    "ratings_to_pairs",
    "render",
]
