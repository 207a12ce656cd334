"""A reward model served over HTTP (``rewardlab serve``) as a reward: r(x, y) = POST /score {prompt x, response y}.

The server scores with the same code path as ``rewardlab score`` and :class:`~rewardlab.rewards.rm.RMReward`
(``models.scoring.score_ids``, the model's sequence convention), so ``http://HOST:PORT`` gives the rewards
``rm:PATH`` gives when the server serves PATH with its defaults. Requests, chunking and retries are
:class:`rewardlab.client.RewardClient`'s.
"""

from __future__ import annotations

from typing import Sequence

from rewardlab.client import RewardClient
from rewardlab.rewards.base import check_inputs, check_output


class HTTPReward:
    """Reward of the RM served at ``url``; ``api_key`` (default ``$REWARDLAB_API_KEY``), ``timeout`` (s per
    request), ``retries`` and ``max_items`` (items per request) go to :class:`RewardClient`."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 30.0, retries: int = 3,
                 max_items: int = 256, name: str | None = None):
        self.client = RewardClient(url, api_key=api_key, timeout=timeout, retries=retries, max_items=max_items)
        self.name = name or self.client.url

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns) -> list[float]:
        n = check_inputs(prompts, completions, columns)
        if n == 0:
            return []
        return check_output(self.name, self.client.score(list(prompts), list(completions)), n)
