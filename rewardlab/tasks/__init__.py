"""Built-in preference task with a programmatic gold reward (the embedded default).

    >>> from rewardlab.tasks import GoldTask, to_jsonl
    >>> task = GoldTask(seed=0)
    >>> pairs, info = task.make_pairs(1000, flip_rate=0.1)   # PairRecords + gold of each side
    >>> path = to_jsonl(pairs, "pairs.jsonl")                # readable by `rewardlab train --data`

See :mod:`rewardlab.tasks.gold` for the gold reward's formula and :mod:`rewardlab.tasks.labeler`
for the simulated labelers.
"""

from rewardlab.tasks.gold import GoldTask, GoldTerms
from rewardlab.tasks.jsonl import record_to_dict, to_jsonl
from rewardlab.tasks.labeler import label_pair, plackett_luce_ranks

__all__ = ["GoldTask", "GoldTerms", "label_pair", "plackett_luce_ranks", "record_to_dict", "to_jsonl"]
