"""``rewardlab serve``: a reward model over HTTP for RL pipelines (``app``: endpoints and limits; ``batcher``: dynamic
batching across concurrent requests). Import the submodules directly; this file stays free of heavy imports."""
