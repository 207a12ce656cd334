"""Score data with a reward model (beside the model, so every layer above can use it): length-sorted batches for speed, original order restored.

Rewards do not depend on the batch size or on the padding side: sequences are scored in batches of
similar length, pooled at their own last real token with position ids taken from the attention mask
(``RewardModel``'s ``last_token`` pooling, and the implicit rewards of ``eval/implicit.py``), and
put back in input order. ``tests/eval/test_determinism.py`` checks batch sizes 1, 7 and 32 and left
vs right padding agree within 1e-4.

Notation: N sequences, T tokens, B records; a pair gives 2 sequences (chosen, rejected), a ranking
K, a rating or a label 1.

Encoding (``encode_sequences``) also finds where each response starts: the prompt is rendered and
tokenised alone and the response is what follows the longest shared prefix of token ids (a token
merged across the boundary counts as response). That gives response lengths in tokens (for the
length-bias metrics) and the response mask that implicit rewards sum log-probabilities over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from rewardlab.data.records import common_prefix_length
from rewardlab.data.batching import TRUNCATION_SIDES, Encoder, TruncationReport, pad, record_parts, truncate
from rewardlab.data.sequence import encode_pairs, encode_prompts



# --------------------------------------------------------------------------- encoding


@dataclass
class EncodedSequences:
    """Token ids of every sequence of a list of records, flattened in record order.

    ids[n]            token ids of sequence n after truncation (at most max_length)
    prompt_tokens[n]  how many of ``ids[n]`` belong to the prompt (the response is ids[n][prompt_tokens[n]:])
    response_tokens[n] response length in tokens BEFORE truncation (what length-bias metrics use)
    owner[n]          index of the record sequence n belongs to
    report            truncation counts (``TruncationReport.summary()`` is written to results.json)
    """

    ids: list
    prompt_tokens: list
    response_tokens: list
    owner: list
    report: TruncationReport




def encode_sequences(records: list, tokenizer, max_length: int = 512, truncation_side: str = "left",
                     append_eos: bool = False) -> EncodedSequences:
    """Tokenise every (prompt, response) of ``records`` the way training does, cut to ``max_length``.

    Token ids follow the sequence convention (:mod:`rewardlab.data.sequence`, as ``data.batching.Encoder``):
    plain text with the tokenizer's special tokens, plus EOS when ``append_eos`` (as TRL's RewardTrainer
    does to text data); chat as the template renders it. Truncation keeps a leading BOS/CLS and a trailing
    EOS/SEP and cuts from ``truncation_side`` ("left", the default, keeps the response's end where a
    decoder reads the reward).
    """
    if truncation_side not in TRUNCATION_SIDES:
        raise ValueError(f"unknown truncation side {truncation_side!r}; known: {', '.join(TRUNCATION_SIDES)}")
    if max_length < 4:
        raise ValueError(f"max_length must be at least 4, got {max_length}")
    first = {tokenizer.bos_token_id, tokenizer.cls_token_id} - {None}
    last = {tokenizer.eos_token_id, tokenizer.sep_token_id} - {None}

    pair_prompts, responses, names, owner, prompts = [], [], [], [], []
    for k, rec in enumerate(records):
        prompt, rs, fields = record_parts(rec)
        prompts.append(prompt)
        for response, name in zip(rs, fields):
            pair_prompts.append(prompt)
            responses.append(response)
            names.append(name)
            owner.append(k)
    full = encode_pairs(tokenizer, pair_prompts, responses, append_eos)
    prompt_ids = encode_prompts(tokenizer, prompts)

    report = TruncationReport(max_length, truncation_side)
    ids_out, n_prompt_out, n_resp_out = [], [], []
    cut_records: set = set()
    for seq, name, k in zip(full, names, owner):
        n_prompt = common_prefix_length(seq, prompt_ids[k])
        if n_prompt == len(seq):  # the response added no token of its own (cannot happen for non-empty text)
            n_prompt = max(len(seq) - 1, 0)
        report.n_sequences += 1
        kept = list(range(len(seq)))
        if len(seq) > max_length:
            report.n_truncated_sequences += 1
            report.by_field[name] = report.by_field.get(name, 0) + 1
            cut_records.add(k)
            kept = truncate(kept, max_length, truncation_side, bool(seq) and seq[0] in first, bool(seq) and seq[-1] in last)
        ids_out.append([seq[i] for i in kept])
        n_prompt_out.append(sum(1 for i in kept if i < n_prompt))
        n_resp_out.append(len(seq) - n_prompt)
    report.n_examples = len(records)
    report.n_truncated_examples = len(cut_records)
    return EncodedSequences(ids_out, n_prompt_out, n_resp_out, owner, report)


# --------------------------------------------------------------------------- scoring


def _response_mask(lengths: list[int], prompt_tokens: list[int], T: int, side: str) -> torch.Tensor:
    """(N, T) bool: True on the response tokens of each padded row."""
    out = torch.zeros((len(lengths), T), dtype=torch.bool)
    for i, (n, p) in enumerate(zip(lengths, prompt_tokens)):
        start = T - n if side == "left" else 0
        out[i, start + p: start + n] = True
    return out


def _check_padding(model, padding_side: str) -> None:
    if padding_side == "left" and getattr(model, "pooling", "last_token") == "model":
        raise ValueError("padding_side='left' shifts the position ids of an encoder (pooling 'model'), so its rewards "
                         "would change; use padding_side='right' for encoder reward models")


def compile_scorer(model):
    """``model`` with its forward compiled by ``torch.compile`` (dynamic shapes: one graph for every
    batch length). Same rewards within float tolerance; the first batch pays the compile."""
    model.forward = torch.compile(model.forward, dynamic=True)
    return model


CUDA_PAD_MULTIPLE = 16


def pad_multiple(device: torch.device) -> int:
    """Batch lengths are rounded up to this on ``device``: on a GPU every new (batch, length) shape builds
    new attention kernel plans, which made a first pass over 4,000 texts slower than the pipeline's
    (bench/results/gpu.md); on a CPU rounding only adds padding."""
    return CUDA_PAD_MULTIPLE if device.type == "cuda" else 1


@torch.inference_mode()
def score_ids(model, seqs: list[list[int]], pad_id: int, batch_size: int = 16, progress: bool = False,
              padding_side: str = "right", prompt_tokens: list[int] | None = None, multiple: int | None = None,
              attributes: bool = False):
    """Rewards (N,) for token-id sequences, in input order; with ``attributes``, (rewards (N,), attribute values
    (N, A)) of a multi-attribute RM (``RewardModel.attributes`` names the A columns), from the same forward.

    Sequences are sorted by length (longest first, so a memory problem shows at once), scored
    ``batch_size`` at a time padded on ``padding_side`` (lengths rounded up to ``multiple``, default
    ``pad_multiple(device)``), and put back in input order. A model with
    ``needs_response_mask = True`` (the implicit rewards) also gets a (b, T) response mask built
    from ``prompt_tokens`` (required then).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_padding(model, padding_side)
    needs_mask = getattr(model, "needs_response_mask", False)
    if needs_mask and prompt_tokens is None:
        raise ValueError(f"{type(model).__name__} needs prompt_tokens to know where each response starts")
    model.eval()
    order = np.argsort([-len(s) for s in seqs], kind="stable")
    out = np.empty(len(seqs), dtype=np.float64)
    attrs = np.empty((len(seqs), len(_attribute_names(model, attributes))), dtype=np.float64)  # (N, A)
    device = next(model.parameters()).device
    multiple = multiple or pad_multiple(device)
    starts = range(0, len(seqs), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="score", unit="batch")
    for start in starts:
        idx = order[start: start + batch_size]
        batch = [seqs[i] for i in idx]
        ids, mask = pad(batch, pad_id, multiple, padding_side)  # (b, T)
        if needs_mask:
            rmask = _response_mask([max(len(s), 1) for s in batch], [prompt_tokens[i] for i in idx], ids.shape[1], padding_side)
            got = model(ids.to(device), mask.to(device), rmask.to(device))
        else:
            got = model(ids.to(device), mask.to(device))
        out[idx] = got.rewards.float().cpu().numpy()  # (b,)
        if attributes:
            attrs[idx] = got.attributes.float().cpu().numpy()  # (b, A)
    return (out, attrs) if attributes else out


def _attribute_names(model, attributes: bool) -> list:
    """The attribute names of a multi-attribute RM when ``attributes`` is asked for ([] when not asked); an error
    for a scalar RM."""
    if not attributes:
        return []
    names = getattr(model, "attributes", None)
    if not names:
        raise ValueError(f"{type(model).__name__} gives one reward, not attribute values (not a multi-attribute RM)")
    return names


def shared_prefixes(seqs: list[list[int]], owner: list[int]) -> tuple[list[list[int]], list[int]]:
    """Groups of sequences that share a leading run of token ids, and the length of that run.

    Sequences of one record (``owner``) are consecutive; the group's prefix is the longest common
    prefix of their token ids, cut so that every sequence keeps at least one token of its own.
    Returns (groups: lists of sequence indices, prefix length per group). A record with one
    sequence is a group with prefix length 0.
    """
    groups: list[list[int]] = []
    for n, k in enumerate(owner):
        if groups and owner[groups[-1][0]] == k:
            groups[-1].append(n)
        else:
            groups.append([n])
    lengths = []
    for g in groups:
        if len(g) < 2:
            lengths.append(0)
            continue
        first, p = seqs[g[0]], min(len(seqs[n]) for n in g) - 1
        for n in g[1:]:
            p = min(p, common_prefix_length(first[:p], seqs[n][:p]))
        lengths.append(max(p, 0))
    return groups, lengths


def _cache_argument(base) -> str | None:
    """Name of the KV-cache argument of a base model's forward: ``cache`` (transformers ≥ 5.2),
    ``past_key_values`` (earlier), or None when it takes none."""
    import inspect

    params = inspect.signature(base.forward).parameters
    return next((name for name in ("cache", "past_key_values") if name in params), None)


def supports_shared_prefix(model) -> bool:
    """True for a decoder RM pooled at its last token whose base model takes a KV cache."""
    if getattr(model, "pooling", None) != "last_token" or getattr(model, "needs_response_mask", False):
        return False
    base = getattr(model.model, model.model.base_model_prefix, None)
    return base is not None and _cache_argument(base) is not None


def _strip_trailing(seq: list[int], pad_id: int | None) -> list[int]:
    """``seq`` without trailing ``pad_id`` tokens (one token at least stays)."""
    n = len(seq)
    while n > 1 and seq[n - 1] == pad_id:
        n -= 1
    return seq[:n]


@torch.inference_mode()
def score_shared_prefix(model, seqs: list[list[int]], owner: list[int], pad_id: int, batch_size: int = 16,
                        progress: bool = False, attributes: bool = False):
    """Rewards (N,) in input order, each shared prompt encoded once and its responses appended (with
    ``attributes``: (rewards, attribute values (N, A)), as ``score_ids``).

    For a record with K sequences sharing a prefix of P tokens, a plain forward computes the prefix
    K times; here the prefix goes through the decoder once (G prefixes, left-padded, (G, P)), its KV
    cache is repeated to the K sequences, and only the suffixes run ((N, S), right-padded), with
    position ids continuing from each prefix's real length. A causal decoder gives the same rewards
    as the full sequences (up to float summation order; tests check 1e-4). Batches hold about
    ``batch_size`` sequences; groups are sorted by length. Records whose sequences share nothing
    fall back to ``score_ids``.
    """
    seqs = [_strip_trailing(s, pad_id) for s in seqs]  # not read (``reward_positions``), and a decoder's earlier tokens never see them
    groups, plen = shared_prefixes(seqs, owner)
    out = np.empty(len(seqs), dtype=np.float64)
    attrs = np.empty((len(seqs), len(_attribute_names(model, attributes))), dtype=np.float64)  # (N, A)
    flat = [n for g, p in zip(groups, plen) if p == 0 for n in g]
    if flat:
        got = score_ids(model, [seqs[n] for n in flat], pad_id, batch_size, attributes=attributes)
        if attributes:
            out[flat], attrs[flat] = got
        else:
            out[flat] = got
    todo = [i for i, p in enumerate(plen) if p > 0]
    todo.sort(key=lambda i: -max(len(seqs[n]) for n in groups[i]) + plen[i])  # longest suffix first: suffixes are most of the work
    model.eval()
    device = next(model.parameters()).device
    base = getattr(model.model, model.model.base_model_prefix)
    cache_arg = _cache_argument(base)
    batches, cur, size = [], [], 0
    for i in todo:
        cur.append(i)
        size += len(groups[i])
        if size >= batch_size:
            batches.append(cur)
            cur, size = [], 0
    if cur:
        batches.append(cur)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="score", unit="batch")
    for batch in batches:
        prefixes = [seqs[groups[i][0]][:plen[i]] for i in batch]
        pids, pmask = pad(prefixes, pad_id, side="left")  # (G, P)
        members = [n for i in batch for n in groups[i]]
        rep = torch.tensor([j for j, i in enumerate(batch) for _ in groups[i]], device=device)  # (N,) group of each sequence
        suffixes = [seqs[n][plen[i]:] for i in batch for n in groups[i]]
        sids, smask = pad(suffixes, pad_id)  # (N, S)
        pids, pmask, sids, smask = pids.to(device), pmask.to(device), sids.to(device), smask.to(device)
        ppos = (pmask.cumsum(-1) - 1).clamp(min=0)  # (G, P)
        cache = base(input_ids=pids, attention_mask=pmask, position_ids=ppos, use_cache=True)[cache_arg]
        cache.reorder_cache(rep)  # (G, ...) → (N, ...)
        real = pmask.sum(-1)[rep]  # (N,) real prefix tokens of each sequence
        spos = real[:, None] + torch.arange(sids.shape[1], device=device)  # (N, S)
        mask = torch.cat([pmask[rep], smask], dim=1)  # (N, P + S)
        hidden = base(input_ids=sids, attention_mask=mask, position_ids=spos, use_cache=False,
                      **{cache_arg: cache}).last_hidden_state  # (N, S, C)
        last = smask.sum(-1) - 1  # (N,) last real suffix token
        pooled = hidden[torch.arange(hidden.shape[0], device=device), last]  # (N, C)
        rewards, values = model.head_rewards(model.model.score(pooled))  # (N,), (N, A) or None
        out[members] = rewards.float().cpu().numpy()
        if attributes:
            attrs[members] = values.float().cpu().numpy()
    return (out, attrs) if attributes else out


def model_append_eos(model, append_eos: bool | None = None) -> bool:
    """``append_eos``, or when None the model's own sequence convention (``RewardModel.append_eos``, set when it
    was loaded or trained; False for scorers without one, such as the implicit rewards)."""
    return bool(getattr(model, "append_eos", False)) if append_eos is None else bool(append_eos)


def score_texts(model, tokenizer, prompts: list, responses: list, batch_size: int = 16, max_length: int = 512,
                truncation_side: str = "left", progress: bool = False, multiple: int | None = None,
                append_eos: bool | None = None, attributes: bool = False) -> tuple:
    """Rewards for (prompt, response) pairs of text or chat messages; also the truncation report: (rewards (N,),
    report), or with ``attributes`` (rewards, report, attribute values (N, A)) of a multi-attribute RM.
    ``append_eos``: None follows the model's convention (``model_append_eos``)."""
    encoder = Encoder(tokenizer, max_length, truncation_side, model_append_eos(model, append_eos))
    seqs = [encoder.encode_example(p, [r], ["response"])[0] for p, r in zip(prompts, responses)]
    got = score_ids(model, seqs, tokenizer.pad_token_id, batch_size, progress, multiple=multiple, attributes=attributes)
    return (got[0], encoder.report.summary(), got[1]) if attributes else (got, encoder.report.summary())


class ScoredRecords(NamedTuple):
    """Rewards and response lengths per record, in record order.

    rewards[b], lengths[b]: (2,) [chosen, rejected] for a pair, (K,) for a ranking, (1,) for a rating / label.
    lengths are response tokens before truncation. attributes[b]: (2, A), (K, A) or (1, A) attribute values of a
    multi-attribute RM when asked for (``score_dataset(attributes=True)``), else None.
    """

    rewards: list
    lengths: list
    truncation: dict
    shared_prompt: bool = False  # True when prompts were encoded once (``score_shared_prefix``)
    attributes: list | None = None


def score_dataset(model, tokenizer, records: list, batch_size: int = 16, max_length: int = 512,
                  truncation_side: str = "left", padding_side: str = "right", append_eos: bool | None = None,
                  progress: bool = False, shared_prompt: bool = False, attributes: bool = False) -> ScoredRecords:
    """Encode (``encode_sequences``) and score records; regroup per record. ``attributes``: also the attribute values
    of a multi-attribute RM (``ScoredRecords.attributes``).

    With ``shared_prompt`` and a decoder that takes a KV cache, the prompt of a pair or ranking is
    encoded once (``score_shared_prefix``); otherwise every sequence runs in full (``score_ids``,
    the default). Both give the same rewards. Off by default because it did not pay on the CPU:
    the two responses of a pair share a padded batch, and that padding cost more than the prompt
    tokens saved (bench model, 1 thread: HH-RLHF 22% of tokens shared, 0.84× the speed of full
    sequences; FineGrainedRLHF pairs 11% shared, 0.90×; command: bench/bench_shared_prompt.py).
    """
    enc = encode_sequences(records, tokenizer, max_length, truncation_side, model_append_eos(model, append_eos))
    shared = shared_prompt and supports_shared_prefix(model) and len(enc.ids) > len(records)
    if shared:
        flat = score_shared_prefix(model, enc.ids, enc.owner, tokenizer.pad_token_id, batch_size, progress, attributes)
    else:
        flat = score_ids(model, enc.ids, tokenizer.pad_token_id, batch_size, progress, padding_side, enc.prompt_tokens,
                         attributes=attributes)
    flat, values = flat if attributes else (flat, None)  # (N,), (N, A) or None
    rewards, lengths, per_record, i = [], [], [], 0
    counts = np.bincount(np.asarray(enc.owner, dtype=np.int64), minlength=len(records)) if records else []
    for c in counts:
        rewards.append(flat[i: i + c])
        lengths.append(np.asarray(enc.response_tokens[i: i + c], dtype=np.float64))
        if values is not None:
            per_record.append(values[i: i + c])
        i += c
    return ScoredRecords(rewards, lengths, enc.report.summary(), shared, per_record if attributes else None)


def score_records(model, tokenizer, records: list, batch_size: int = 16, max_length: int = 512, truncation_side: str = "left",
                  progress: bool = False) -> tuple[list[np.ndarray], dict]:
    """Rewards per record: [chosen, rejected] for pairs, K for rankings, 1 for ratings/labels; and the truncation report."""
    scored = score_dataset(model, tokenizer, records, batch_size, max_length, truncation_side, progress=progress)
    return scored.rewards, scored.truncation
