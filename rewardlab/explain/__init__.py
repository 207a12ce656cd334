"""Why a reward model gives a reward (``rewardlab explain``; the ``--explain N`` section of ``rewardlab eval``).

- ``tokens``: a (prompt, response) encoded as scoring encodes it, with each response token's character span.
- ``attribution``: per-token attributions of the reward with Captum (layer integrated gradients over the input
  embeddings, feature ablation, Shapley value sampling), and the reward read at every prefix of a response.
- ``probes``: counterfactual edits of responses (filler, repetition, truncation, the empty response, case,
  formatting; a user's rewrite function, RATE-style) and the mean reward change with its interval.
- ``run``: the verb; ``report``: its HTML page and the section eval's report embeds.
"""
