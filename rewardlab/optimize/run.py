"""``rewardlab optimize METHOD``: improve a causal-LM policy against a reward, one readable loop per method.

Every method shares one session (:class:`Session`): an Accelerate ``Accelerator`` (devices, mixed
precision, DDP / FSDP / DeepSpeed through ``accelerate launch``), the policy (optionally with a
value head) and its frozen reference, the reward, the built-in task's gold when prompts come from
it, the prompt pools, and the log. One step:

    sample K completions for each of B prompts  →  score them (reward; gold when known)
    → per-token log-probs under π and π_ref      →  the method's update  →  log one JSON line

Methods (formulas in :mod:`rewardlab.optimize.algorithms`):

    bon        best-of-N: N samples, keep the reward's best; KL = log N − (N−1)/N; no training
    rwr        reward-weighted MLE: fine-tune on samples weighted exp(r/β) (Peters & Schaal 2007)
    raft       filtered fine-tuning: keep the top --keep of K per prompt, fine-tune, repeat in rounds
               (RAFT, Dong et al. 2023; ReST's grow/improve rounds, Gulcehre et al. 2023)
    reinforce  REINFORCE with a moving-average baseline, reward r − β·KL (Williams 1992; Ahmadian et al. 2024)
    rloo       REINFORCE leave-one-out: K samples, baseline = mean of the other K − 1 (Kool et al. 2019)
    ppo        PPO with a value head, GAE, clipped policy and value losses, per-token KL penalty with a
               fixed or adaptive β (Ziegler et al. 2019; Schulman et al. 2017); ``advantage=grpo``: group-
               normalised advantages, no critic, k3 KL in the loss (Shao et al. 2024)
    mle_rl     NLL of reference completions − λ·RLOO policy-gradient term of the reward (MLE + RL mixed, as in
               Paulus et al. 2017); λ = 0 is MLE on the references
    distill    sequence-level knowledge distillation: MLE on the teacher's sampled or greedy outputs (Kim & Rush 2016)

Logged per step (``log.jsonl``; ``split`` = train | eval): proxy (the optimised reward), gold (when
known), kl_k1 and kl_k3 (per completion, summed over tokens, vs the reference), entropy (per
token), length (tokens), kl_coef, loss and method statistics (mle_rl: ref_nll, also on eval lines; distill: the
teacher's outputs on train lines, kl_student_teacher on eval lines); with an ``adversarial`` reward also
disc_loss, disc_accuracy, disc_p_ref, disc_p_sample (its discriminator's update of that step). ``eval`` lines use fixed held-out
prompts and seeds, before training, every ``eval_every`` steps and at the end.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from rewardlab import checkpoint as ckpt
from rewardlab.eval.metrics import best_of_n_expectation
from rewardlab.optimize import algorithms as A
from rewardlab.config import CONFIG_FILE, OptimizeConfig, save_config, to_dict, tracker_config, tracker_scalars
from rewardlab.data.formats import SUFFIXES, DataError, file_rows, jsonl_rows
from rewardlab.data.records import check_messages, describe
from rewardlab.optimize.policy import encode_examples, gold_task, load_policy, sft_loss
from rewardlab.optimize.sampling import PolicyWithValue, Rollout, concat_rollouts, forward_tokens, pad_id, sample
from rewardlab.rewards import DiscriminatorReward, RunningNorm, build_reward
from rewardlab.rewards.simple import GoldReward
from rewardlab.runtime import hf_progress_bars

LOG, SUMMARY, CONFIG = "log.jsonl", "summary.json", CONFIG_FILE
EVAL_CHUNK = 64


# ---------------------------------------------------------------------------- prompts


def reference_columns(specs) -> dict[str, str]:
    """{column: what reads it, "--reward SPEC"}: the columns of reference texts the rewards read from each prompt row
    (bleu, chrf, rouge, ngram, and adversarial unless steps=0; ``column=NAME`` in the spec, default ``reference``)."""
    from rewardlab.rewards.catalogue import parse_spec

    out = {}
    for spec in specs:
        kind, _, options = parse_spec(spec)
        if kind in ("bleu", "chrf", "rouge", "ngram") or (kind == "adversarial" and options.get("steps", 1) != 0):
            out.setdefault(str(options.get("column", "reference")), f"--reward {spec}")
    return out


def prompt_row(row, where: str, field: str, chat: bool, references: dict[str, str]) -> dict:
    """One --prompts row as {"prompt": ..., **its other fields}, or a DataError naming ``where`` and the field: the prompt
    must be a non-blank string (or, with ``chat``, chat messages) and each reference column a non-blank string or a
    non-empty list of them."""
    if not isinstance(row, dict):
        raise DataError(where, None, f"expected an object with a {field!r} field, got {describe(row)}")
    prompt = row.get(field)
    if prompt is None:
        have = ", ".join(sorted(k for k, v in row.items() if v is not None)) or "none"
        raise DataError(where, field, f"missing; expected the prompt (fields present: {have}; name another with --prompt-field)")
    if isinstance(prompt, (list, tuple)) and chat:
        check_messages(list(prompt), where, field)
    elif not isinstance(prompt, str) or not prompt.strip():
        expected = "a string or a list of chat messages" if chat else "a non-empty string (chat messages need --chat)"
        raise DataError(where, field, f"expected {expected}, got {describe(prompt)}")
    for column, reader in references.items():
        ref = row.get(column)
        texts = [ref] if isinstance(ref, str) else list(ref) if isinstance(ref, (list, tuple)) else []
        bad = [t for t in texts if not (isinstance(t, str) and t.strip())]
        if not texts or bad:
            if column not in row:
                got = "nothing (no such field)"
            elif isinstance(ref, (list, tuple)) and bad:
                got = f"a list holding {describe(bad[0])}"
            else:
                got = describe(ref)
            raise DataError(where, column, f"expected the reference text of {reader}: a non-empty string or a list of "
                                           f"them, got {got}")
    return {"prompt": prompt, **{k: v for k, v in row.items() if k not in (field, "prompt")}}


def load_prompt_rows(cfg: OptimizeConfig, task) -> tuple[list[dict], list[dict], bool]:
    """(train rows, eval rows, from_task). A row is {"prompt": str (chat messages with --chat), **reward columns}.

    ``--prompts`` is read as ``train --data`` reads a file (JSONL, or JSON / CSV / Parquet by its suffix; any other name
    as JSONL); every row is checked by :func:`prompt_row`, so a bad one stops the run here, naming file, line and field,
    before any model is loaded. mle_rl reads ``--reference-field`` too; the built-in task's prompts get one quality-1
    response of the task each as that field (:func:`task_references`), which a metric reward reading the same field uses."""
    references = reference_columns(cfg.reward)
    if cfg.method == "mle_rl":
        references.setdefault(cfg.reference_field, "mle_rl's MLE term (--reference-field)")
    if cfg.prompts is None:
        missing = {c: r for c, r in references.items() if not (cfg.method == "mle_rl" and c == cfg.reference_field)}
        if missing:
            column, reader = next(iter(missing.items()))
            raise ValueError(f"{reader} reads a {column!r} column of reference texts, which the built-in task's prompts "
                             f"do not have: give --prompts FILE whose rows hold {column!r}")
        train = [{"prompt": p} for p in task.prompts(cfg.n_prompts, seed=cfg.task_seed)]
        held = [{"prompt": p} for p in task.prompts(cfg.eval_prompts, seed=cfg.task_seed + 10_000)]
        if cfg.method == "mle_rl":
            train = task_references(task, train, cfg.reference_field, seed=[cfg.task_seed, 1])
            held = task_references(task, held, cfg.reference_field, seed=[cfg.task_seed, 2])
        return train, held, True
    path = Path(cfg.prompts)
    if path.is_dir():
        raise DataError(str(path), None, "a folder; expected a JSONL file of prompts")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (--prompts)")
    rows = []
    for where, row in file_rows(path) if path.name.lower().endswith(SUFFIXES) else jsonl_rows(path):
        if isinstance(row, DataError):
            raise row
        rows.append(prompt_row(row, where, cfg.prompt_field, cfg.chat, references))
    if len(rows) <= cfg.eval_prompts:
        raise ValueError(f"{cfg.prompts} has {len(rows)} prompts; need more than --eval-prompts={cfg.eval_prompts} "
                         "(the last eval_prompts rows are held out)")
    return rows[: -cfg.eval_prompts], rows[-cfg.eval_prompts:], False


def task_references(task, rows: list[dict], field: str, seed) -> list[dict]:
    """``rows`` with ``field`` = one quality-1 response of the built-in task to each prompt
    (``GoldTask.sample_responses(prompt, 1, rng, quality=1.0)``: positive, on topic, near the target length, no
    filler; gold ≈ +1.2 against ≈ −0.7 for the tiny policy's samples); a pure function of ``seed`` and the prompts."""
    rng = np.random.default_rng(seed)
    return [{**r, field: task.sample_responses(r["prompt"], 1, rng, quality=1.0)[0]} for r in rows]


def references_of(rows: list[dict], field: str, rng: np.random.Generator | None = None) -> list[str]:
    """One reference text per row: the row's string, or from a list of them one drawn by ``rng`` (the first without)."""
    out = []
    for r in rows:
        ref = r[field]
        out.append(ref if isinstance(ref, str) else ref[0] if rng is None else ref[int(rng.integers(len(ref)))])
    return out


def columns_of(rows: list[dict]) -> dict[str, list]:
    """Reward columns: every field but ``prompt`` that all rows have."""
    keys = set(rows[0]) - {"prompt"} if rows else set()
    for r in rows:
        keys &= set(r)
    return {k: [r[k] for r in rows] for k in sorted(keys)}


def _parts(reward) -> list:
    """The reward and every reward inside it (wrappers' ``reward``, sums' ``rewards``), depth first."""
    out = [reward]
    for inner in [getattr(reward, "reward", None), *(getattr(reward, "rewards", None) or [])]:
        if inner is not None:
            out += _parts(inner)
    return out


def _norms(reward) -> list[RunningNorm]:
    return [r for r in _parts(reward) if isinstance(r, RunningNorm)]


def _discriminators(reward) -> list[DiscriminatorReward]:
    """The online-trained rewards inside ``reward`` (their state is checkpointed, their stats logged)."""
    return [r for r in _parts(reward) if isinstance(r, DiscriminatorReward)]


def _take(ro: Rollout, idx) -> tuple[torch.Tensor, ...]:
    return ro.prompt_ids[idx], ro.prompt_mask[idx], ro.response_ids[idx], ro.response_mask[idx]


# ---------------------------------------------------------------------------- session


class Session:
    """Everything a method needs; built once per run from the config."""

    def __init__(self, cfg: OptimizeConfig, log=print, value_head: bool = False):
        from accelerate import Accelerator

        from rewardlab.runtime import reset_accelerator_state

        if cfg.policy is None:
            raise ValueError("give --policy (a causal LM folder or hub id; `rewardlab optimize policy` trains a tiny one)")
        self.cfg, self.print = cfg, log
        reset_accelerator_state()  # an earlier train/optimize in this process may have fixed other settings
        self.acc = Accelerator(cpu=not (torch.cuda.is_available() or torch.backends.mps.is_available()),  # CPUs: DDP over gloo
                               mixed_precision=cfg.mixed_precision, project_dir=cfg.output,
                               log_with=None if cfg.report_to == "none" else cfg.report_to)
        self.out = Path(cfg.output)
        self.task = gold_task(cfg.task_seed)
        self.train_rows, self.eval_rows, from_task = load_prompt_rows(cfg, self.task)
        use_gold = from_task if cfg.gold is None else cfg.gold
        self.gold = GoldReward(self.task) if use_gold else None
        device = str(self.acc.device)
        self.reward = build_reward(cfg.reward, cfg.reward_weight or None, cfg.normalize_reward, cfg.clip_reward,
                                   task=self.task, device=device, allow_pickle=cfg.allow_pickle)
        lm, self.tok = load_policy(cfg.policy, gguf_file=cfg.gguf_file, allow_pickle=cfg.allow_pickle)
        # the reference: a copy of the initial policy (one load, not two: GGUF and hub loads are slow), or its own model
        self.ref = (copy.deepcopy(lm) if cfg.reference in (None, cfg.policy)
                    else load_policy(cfg.reference, allow_pickle=cfg.allow_pickle)[0])
        self.ref.requires_grad_(False)
        self.ref.eval().to(self.acc.device)
        self.teacher = self.load_teacher() if cfg.method == "distill" else None  # distill: its KL to the student is logged
        self.module = PolicyWithValue(lm, value_head=value_head).to(self.acc.device)
        self.module.train()
        self.optimizer = None
        self.bar = None  # the steps' progress bar, made by the training loops (best-of-N makes its own over prompts)
        self.step = 0
        self.started = time.time()

    # -------------------------------------------------- helpers
    @property
    def lm(self):
        return self.acc.unwrap_model(self.module).lm

    def load_teacher(self):
        """The frozen teacher of ``distill``; its tokenizer must be the student's (the KL is per token)."""
        teacher, tok = load_policy(self.cfg.teacher, allow_pickle=self.cfg.allow_pickle)
        if tok.get_vocab() != self.tok.get_vocab():
            raise ValueError(f"--teacher {self.cfg.teacher}: its tokenizer differs from the student's ({len(tok)} vs {len(self.tok)} "
                             "tokens, or other ids); distill needs one vocabulary for the token-level KL")
        return teacher.requires_grad_(False).eval().to(self.acc.device)

    def encode_references(self, rows: list[dict], texts: list[str]) -> tuple[torch.Tensor, ...]:
        """(prompt_ids, prompt_mask, response_ids, response_mask) of reference completions ``texts`` of ``rows``, in the
        rollout layout, the prompts encoded as the sampler encodes them (a space joins a plain prompt and its reference)."""
        c = self.cfg
        return encode_examples(self.tok, [r["prompt"] for r in rows], texts, sep="" if c.chat else " ", chat=c.chat,
                               max_prompt_length=c.max_prompt_length)

    @torch.no_grad()
    def reference_nll(self, rows: list[dict]) -> float:
        """Mean token NLL (nats, the closing EOS included) of the rows' references (the first of a list) under the policy."""
        nll, tokens = 0.0, 0.0
        texts = references_of(rows, self.cfg.reference_field)
        for start in range(0, len(rows), self.cfg.minibatch_size):
            batch = self.encode_references(rows[start: start + self.cfg.minibatch_size], texts[start: start + self.cfg.minibatch_size])
            logp = forward_tokens(self.lm, *(t.to(self.acc.device) for t in batch)).logprobs  # (b, R)
            nll, tokens = nll - float(logp.sum()), tokens + float(batch[3].sum())
        return nll / max(tokens, 1.0)

    def prepare(self, lr: float):
        self.optimizer = torch.optim.AdamW(self.module.parameters(), lr=lr, weight_decay=0.0)
        self.module, self.optimizer = self.acc.prepare(self.module, self.optimizer)

    def rows_for_step(self, step: int, n: int) -> list[dict]:
        """n training rows for ``step`` on this process: its slice of the N·n rows drawn for the step over N processes
        (a pure function of seed and step), so N processes × n rows are the rows of one process × N·n."""
        N, p = self.acc.num_processes, self.acc.process_index
        rng = np.random.default_rng([self.cfg.seed, step, 0])
        idx = rng.choice(len(self.train_rows), size=N * n, replace=len(self.train_rows) < N * n)
        return [self.train_rows[i] for i in idx[p * n: (p + 1) * n]]

    def rollout_step(self, rows: list[dict], k: int, step: int, sampler=None) -> Rollout:
        """The step's rollout of this process's ``rows`` (k per prompt, prompt-major): ``sampler`` (default
        :meth:`rollout`) called on chunks of ``--sample-chunk`` prompts (0: all of them), each seeded by the step and the
        global index of its first prompt, so a prompt's samples do not depend on how the batch is split over processes."""
        sampler = sampler or self.rollout
        n = len(rows) // k  # prompts on this process
        chunk = self.cfg.sample_chunk or n
        first = self.acc.process_index * n  # global index of this process's first prompt
        parts = [sampler(rows[i * k: (i + chunk) * k], seed=_step_seed(self.cfg, step, first + i)) for i in range(0, n, chunk)]
        return parts[0] if len(parts) == 1 else concat_rollouts(parts, pad_id(self.tok))

    def everywhere(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` of every process, concatenated in process order (``t`` itself with one process)."""
        return self.acc.gather(t) if self.acc.num_processes > 1 else t

    def total(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` summed over every process (``t`` itself with one process)."""
        return self.acc.reduce(t, "sum") if self.acc.num_processes > 1 else t

    def masked_mean(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``A.masked_mean`` over the real entries of every process's ``x`` (the processes' masked sums and counts are
        added), so a statistic of the whole batch does not depend on how it is split; with one process, exactly
        ``A.masked_mean(x, mask)``."""
        m = mask.to(x.dtype)
        total, count = self.total(torch.stack([(x * m).sum(), m.sum()]))
        return total / count.clamp(min=1.0)

    def gather_arrays(self, arrays: dict) -> dict:
        """Per-sample arrays (:func:`sample_stats`) of every process, concatenated in process order (exact: pickled)."""
        if self.acc.num_processes == 1:
            return arrays
        from accelerate.utils import gather_object

        every = gather_object([arrays])
        return {k: None if arrays[k] is None else np.concatenate([a[k] for a in every]) for k in arrays}

    def rollout(self, rows: list[dict], seed: int) -> Rollout:
        c = self.cfg
        return sample(self.lm, self.tok, [r["prompt"] for r in rows], max_new_tokens=c.max_new_tokens,
                      temperature=c.temperature, top_k=c.top_k, top_p=c.top_p, chat=c.chat,
                      max_prompt_length=c.max_prompt_length, seed=seed)

    def score(self, rows: list[dict], completions: list[str], update_norm: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """(proxy (B,), gold (B,) or None) for completions of ``rows``; ``update_norm=False`` freezes the reward's
        running norms and discriminators."""
        prompts = [r["prompt"] for r in rows]
        for part in _norms(self.reward) + _discriminators(self.reward):
            part.update = update_norm  # evaluation neither moves the norm nor trains a discriminator
        proxy = np.asarray(self.reward(prompts, completions, **columns_of(rows)), dtype=float)
        gold = None if self.gold is None else np.asarray(self.gold(prompts, completions), dtype=float)
        return proxy, gold

    @torch.no_grad()
    def token_scores(self, model, ro: Rollout, entropy: bool = False):
        """Per-token log-probs (entropies, values) of a rollout in minibatches; tuple of (B, R) tensors or None."""
        parts = []
        mb = self.cfg.minibatch_size
        for start in range(0, ro.response_ids.shape[0], mb):
            idx = slice(start, start + mb)
            parts.append(forward_tokens(model, *_take(ro, idx), self.cfg.temperature, entropy))
        cat = lambda xs: None if xs[0] is None else torch.cat(xs, 0)  # noqa: E731
        return cat([p.logprobs for p in parts]), cat([p.entropy for p in parts]), cat([p.values for p in parts])

    def reduce(self, stats: dict) -> dict:
        """Mean of each statistic over processes (float64: a statistic already equal everywhere stays exact)."""
        if self.acc.num_processes == 1:
            return stats
        keys = sorted(k for k, v in stats.items() if isinstance(v, (int, float)) and v is not None)
        t = torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64, device=self.acc.device)
        t = self.acc.reduce(t, "mean")
        return {**stats, **dict(zip(keys, t.tolist()))}

    def rollout_stats(self, ro: Rollout, logp, logp_ref, entropy, proxy, gold) -> dict:
        """Means over the step's rollout on every process (entropy per token; KL per completion, summed over its tokens)."""
        return {**summarize(self.gather_arrays(sample_stats(ro, logp, logp_ref, entropy, proxy, gold))), **self.reward_stats()}

    def reward_stats(self) -> dict:
        """``disc_*``: the latest update of each discriminator reward (``disc0_*``, ``disc1_*`` … when several)."""
        discs = _discriminators(self.reward)
        out = {}
        for i, d in enumerate(discs):
            prefix = "disc_" if len(discs) == 1 else f"disc{i}_"
            out.update({prefix + k: v for k, v in d.stats.items()})
        return out

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Statistics of the current policy on the held-out prompts, fixed seeds (one sample per prompt),
        plus the std of proxy and gold over the samples. Chunks of EVAL_CHUNK prompts, seeded by their index, are shared
        out over the processes and gathered in order: any number of processes gives one process's figures."""
        rows = self.eval_rows
        parts, mine = [], []  # this process's chunks' arrays and their indices
        for i, start in enumerate(range(0, len(rows), EVAL_CHUNK)):
            if i % self.acc.num_processes != self.acc.process_index:
                continue
            mine.append(i)
            chunk = rows[start: start + EVAL_CHUNK]
            ro = self.rollout(chunk, seed=self.cfg.seed * 7919 + 104_729 + i)
            logp, ent, _ = self.token_scores(self.lm, ro, entropy=True)
            logp_ref, _, _ = self.token_scores(self.ref, ro)
            proxy, gold = self.score(chunk, ro.completions, update_norm=False)
            parts.append(sample_stats(ro, logp, logp_ref, ent, proxy, gold))
            if self.teacher is not None:  # KL(student ‖ teacher), Σ_t k1 over the student's own samples
                logp_teacher, _, _ = self.token_scores(self.teacher, ro)
                parts[-1]["kl_student_teacher"] = A.sequence_kl(logp, logp_teacher, ro.response_mask.float()).cpu().numpy()
        if self.acc.num_processes > 1:
            from accelerate.utils import gather_object

            parts = [p for _, p in sorted(gather_object(list(zip(mine, parts))), key=lambda ip: ip[0])]
        merged = {k: None if parts[0][k] is None else np.concatenate([p[k] for p in parts]) for k in parts[0]}
        out = summarize(merged)
        out["proxy_std"] = float(merged["proxy"].std())
        out["gold_std"] = None if merged["gold"] is None else float(merged["gold"].std())
        if self.teacher is not None:
            out["kl_student_teacher"] = float(merged["kl_student_teacher"].mean())
        if self.cfg.method == "mle_rl":
            out["ref_nll"] = self.reference_nll(rows)
        return out

    def start_tracking(self) -> None:
        """The experiment tracker of ``--report-to`` (tensorboard: OUTPUT/rewardlab/; wandb: project rewardlab, the run
        named after OUTPUT). A resumed run's TensorBoard events after the checkpoint's step are dropped (``purge_step``),
        as its log.jsonl lines are."""
        if self.cfg.report_to == "none":
            return
        tensorboard = {"purge_step": self.step + 1} if self.step else {}
        self.acc.init_trackers("rewardlab", config=tracker_config(to_dict(self.cfg)),
                               init_kwargs={"wandb": {"name": self.out.name}, "tensorboard": tensorboard})

    def stop_tracking(self) -> None:
        """Close the tracker (its files complete); not ``end_training``, which would also end the process group."""
        for tracker in self.acc.trackers:
            tracker.finish()

    def log(self, record: dict) -> None:
        """One line of log.jsonl (and of the console); its numbers also go to the tracker as SPLIT/NAME at the step."""
        record = {"step": self.step, **record, "seconds": round(time.time() - self.started, 2)}
        if self.acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.out / LOG, "a") as f:
                f.write(json.dumps(record) + "\n")
            shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in record.items() if v is not None}
            self.print(json.dumps(shown))
        if self.cfg.report_to != "none":
            values = {k: v for k, v in record.items() if k not in ("step", "split")}
            self.acc.log(tracker_scalars(values, f"{record.get('split', 'train')}/"), step=record["step"])

    def eval_and_log(self) -> dict:
        stats = self.evaluate()
        self.log({"split": "eval", **stats})
        return stats

    # -------------------------------------------------- checkpoints
    def save_checkpoint(self, extra: dict) -> None:
        """output/checkpoints/step-N: the policy (HF folder), rewardlab.json and trainer_state.pt (optimizer, value
        head, reward norms, discriminators, extra), written atomically (``checkpoint.save_model_folder``)."""
        self.acc.wait_for_everyone()
        if not self.acc.is_main_process:
            return
        inner = self.acc.unwrap_model(self.module)
        state = {"step": self.step, "optimizer": self.optimizer.state_dict(),
                 "value_head": None if inner.value_head is None else inner.value_head.state_dict(),
                 "norms": [n.state_dict() for n in _norms(self.reward)],
                 "discriminators": [d.state_dict() for d in _discriminators(self.reward)], **extra}
        meta = {"format": "rewardlab-policy", "method": self.cfg.method, "policy": self.cfg.policy, "step": self.step,
                "versions": ckpt.versions()}
        ckpt.save_model_folder(self.out / "checkpoints" / f"step-{self.step}", self.lm, self.tok, meta, state)

    def resume(self) -> dict:
        """Load the latest checkpoint (policy, optimizer, value head, norms, discriminators); trim the log after it;
        return extra state."""
        from transformers import AutoModelForCausalLM

        from rewardlab.models.loading import load_pretrained

        folder = ckpt.latest_good_checkpoint(self.out, self.print)
        if folder is None:
            raise FileNotFoundError(f"--resume: no checkpoint under {self.out / 'checkpoints'}")
        state = torch.load(folder / ckpt.STATE, map_location="cpu", weights_only=False)
        self.lm.load_state_dict(load_pretrained(AutoModelForCausalLM, folder).state_dict())  # this run's own safetensors
        inner = self.acc.unwrap_model(self.module)
        if inner.value_head is not None:
            inner.value_head.load_state_dict(state["value_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        for norm, s in zip(_norms(self.reward), state["norms"]):
            norm.load_state_dict(s)
        for disc, s in zip(_discriminators(self.reward), state.get("discriminators", [])):
            disc.load_state_dict(s)
        self.step = int(state["step"])
        log = self.out / LOG
        if self.acc.is_main_process and log.is_file():
            keep = [line for line in log.read_text().splitlines() if line and json.loads(line)["step"] <= self.step]
            log.write_text("".join(line + "\n" for line in keep))
        self.print(f"resumed from {folder} at step {self.step}")
        return state

    def finish(self, initial: dict | None, extra: dict | None = None) -> dict:
        """Final evaluation, save the policy to output/policy (and each discriminator reward to
        output/discriminator[-i]), write summary.json; return the summary."""
        if self.bar is not None:
            self.bar.close()
        final = self.eval_and_log()
        if self.acc.is_main_process:
            ckpt.save_model_folder(self.out / "policy", self.lm, self.tok, {"format": "rewardlab-policy", "method": self.cfg.method,
                                   "policy": self.cfg.policy, "step": self.step, "versions": ckpt.versions()})
            discs = _discriminators(self.reward)
            for i, d in enumerate(discs):
                d.save(self.out / ("discriminator" if len(discs) == 1 else f"discriminator-{i}"))
        summary = {"method": self.cfg.method, "output": str(self.out), "steps": self.step, "initial": initial, "final": final,
                   "gold_gain": None if initial is None or final.get("gold") is None or initial.get("gold") is None
                   else final["gold"] - initial["gold"],
                   "proxy_gain": None if initial is None else final["proxy"] - initial["proxy"],
                   "seconds": round(time.time() - self.started, 2), **(extra or {})}
        write_summary(self.out, summary, self.acc.is_main_process)
        self.stop_tracking()
        return summary


def sample_stats(ro: Rollout, logp, logp_ref, entropy, proxy, gold) -> dict:
    """Per-sample arrays (B,): proxy, gold, kl_k1, kl_k3, entropy sum, tokens, ended."""
    mask = ro.response_mask.float()  # (B, R)
    return {
        "proxy": np.asarray(proxy, dtype=float),
        "gold": None if gold is None else np.asarray(gold, dtype=float),
        "kl_k1": A.sequence_kl(logp, logp_ref, mask, "k1").cpu().numpy(),
        "kl_k3": A.sequence_kl(logp, logp_ref, mask, "k3").cpu().numpy(),
        "entropy_sum": None if entropy is None else (entropy * mask).sum(-1).cpu().numpy(),
        "length": mask.sum(-1).cpu().numpy(),
        "ended": ro.ended.float().cpu().numpy(),
    }


def summarize(arrays: dict) -> dict:
    """Means of :func:`sample_stats` arrays; entropy is per token (Σ entropy / Σ tokens)."""
    mean = lambda k: None if arrays[k] is None else float(np.mean(arrays[k]))  # noqa: E731
    return {
        "proxy": mean("proxy"), "gold": mean("gold"), "kl_k1": mean("kl_k1"), "kl_k3": mean("kl_k3"),
        "entropy": None if arrays["entropy_sum"] is None else float(arrays["entropy_sum"].sum() / max(arrays["length"].sum(), 1.0)),
        "length": mean("length"), "ended": mean("ended"),
    }


def write_summary(out: Path, summary: dict, main: bool = True) -> None:
    if main:
        out.mkdir(parents=True, exist_ok=True)
        ckpt.write_json_atomic(out / SUMMARY, summary)


def _start(cfg: OptimizeConfig, log, value_head: bool = False) -> tuple[Session, dict, dict | None]:
    """Session + prepared optimiser; resume or start fresh (clearing an old log); initial evaluation."""
    s = Session(cfg, log, value_head)
    s.prepare(cfg.lr)
    extra = {}
    if cfg.resume:
        extra = s.resume()
    elif s.acc.is_main_process and (s.out / LOG).exists():
        (s.out / LOG).unlink()
    if s.acc.is_main_process:
        save_config(cfg, s.out / CONFIG)
    s.start_tracking()
    from tqdm.auto import tqdm

    s.bar = tqdm(total=cfg.steps, initial=s.step, desc=f"optimize {cfg.method}", dynamic_ncols=True,
                 disable=not (cfg.progress and s.acc.is_main_process))
    initial = None
    if s.step == 0:
        initial = s.eval_and_log()
    else:
        for line in (s.out / LOG).read_text().splitlines():
            rec = json.loads(line)
            if rec["step"] == 0 and rec["split"] == "eval":
                initial = {k: v for k, v in rec.items() if k not in ("step", "split", "seconds")}
                break
    return s, extra, initial


def _end_of_step(s: Session, extra: dict) -> None:
    cfg = s.cfg
    s.bar.update(1)
    if cfg.eval_every and s.step % cfg.eval_every == 0 and s.step < cfg.steps:
        s.eval_and_log()
    if cfg.save_every and s.step % cfg.save_every == 0:
        s.save_checkpoint(extra)


def _step_seed(cfg: OptimizeConfig, step: int, index: int) -> int:
    """Seed of the step's generate call whose first prompt has global index ``index`` in the step's batch."""
    return (cfg.seed * 1_000_003 + step * 7_919 + index) % (2**31 - 1)


def _clip_and_step(s: Session) -> float:
    norm = s.acc.clip_grad_norm_(s.module.parameters(), s.cfg.max_grad_norm)
    s.optimizer.step()
    s.optimizer.zero_grad(set_to_none=True)
    return float(norm)


# ---------------------------------------------------------------------------- best-of-N


def run_bon(cfg: OptimizeConfig, log=print) -> dict:
    """Best-of-N on the held-out prompts: max(n) samples per prompt, each N's expected proxy and gold
    with the unbiased estimator :func:`~rewardlab.eval.metrics.best_of_n_expectation`, the analytic KL,
    and the selected completions at N = max(n) in ``selections.jsonl``."""
    s = Session(cfg, log)
    if s.acc.is_main_process:
        if (s.out / LOG).exists():
            (s.out / LOG).unlink()
        save_config(cfg, s.out / CONFIG)
    s.start_tracking()
    ns = sorted(set(int(n) for n in cfg.n))
    m = ns[-1]
    rows = s.eval_rows[s.acc.process_index:: s.acc.num_processes]
    proxy = np.zeros((len(rows), m))  # (E, M)
    gold = np.zeros((len(rows), m)) if s.gold is not None else None
    completions: list[list[str]] = [[] for _ in rows]
    per_chunk = max(1, EVAL_CHUNK * 4 // m)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(rows), desc=f"optimize bon (N = {m})", unit="prompt", dynamic_ncols=True,
               disable=not (cfg.progress and s.acc.is_main_process))
    for c, start in enumerate(range(0, len(rows), per_chunk)):
        chunk = rows[start: start + per_chunk]
        rep = [r for r in chunk for _ in range(m)]  # prompt-major
        ro = s.rollout(rep, seed=_step_seed(cfg, c, s.acc.process_index))
        p, g = s.score(rep, ro.completions)
        proxy[start: start + len(chunk)] = p.reshape(len(chunk), m)
        if gold is not None:
            gold[start: start + len(chunk)] = g.reshape(len(chunk), m)
        for i in range(len(chunk)):
            completions[start + i] = ro.completions[i * m: (i + 1) * m]
        bar.update(len(chunk))
    bar.close()
    curve = []
    for n in ns:
        point = {"n": n, "kl": A.bon_kl(n), "d": math.sqrt(A.bon_kl(n)),
                 "proxy": best_of_n_expectation(proxy, proxy, n),
                 "gold": None if gold is None else best_of_n_expectation(proxy, gold, n)}
        point = s.reduce(point)
        curve.append(point)
        s.step = n
        s.log({"split": "bon", **point})
    if s.acc.is_main_process:
        with open(s.out / "selections.jsonl", "w") as f:
            for i, r in enumerate(rows):
                j = int(np.argmax(proxy[i]))
                f.write(json.dumps({"prompt": r["prompt"], "completion": completions[i][j], "proxy": proxy[i, j],
                                    "gold": None if gold is None else gold[i, j], "n": m}) + "\n")
    summary = {"method": "bon", "output": str(s.out), "curve": curve, "proxy_std": float(proxy.std()),
               "gold_std": None if gold is None else float(gold.std()), "initial": curve[0] if ns[0] == 1 else None,
               "final": curve[-1], "gold_gain": None if gold is None or ns[0] != 1 else curve[-1]["gold"] - curve[0]["gold"],
               "proxy_gain": curve[-1]["proxy"] - curve[0]["proxy"], "seconds": round(time.time() - s.started, 2)}
    write_summary(s.out, summary, s.acc.is_main_process)
    s.stop_tracking()
    return summary


# ---------------------------------------------------------------------------- RWR and RAFT


def run_filtered(cfg: OptimizeConfig, log=print) -> dict:
    """Rounds of: sample K per prompt → weight (rwr: exp(r/β), mean 1) or filter (raft: top --keep per prompt,
    optionally r ≥ --min-reward) → ``sft_epochs`` of weighted fine-tuning on those samples."""
    s, _, initial = _start(cfg, log)
    while s.step < cfg.steps:
        rows = [r for r in s.rows_for_step(s.step, cfg.batch_size) for _ in range(cfg.k)]  # (B·K) prompt-major
        ro = s.rollout_step(rows, cfg.k, s.step)
        proxy, gold = s.score(rows, ro.completions)
        r = torch.as_tensor(proxy, dtype=torch.float32)  # (B·K,)
        if cfg.method == "rwr":
            weights = A.rwr_weights(r, cfg.beta)
        else:
            weights = A.topk_mask(r.view(cfg.batch_size, cfg.k), cfg.keep).view(-1).float()
            if cfg.min_reward is not None:
                weights = weights * (r >= cfg.min_reward).float()
        logp, ent, _ = s.token_scores(s.lm, ro, entropy=True)
        logp_ref, _, _ = s.token_scores(s.ref, ro)
        stats = s.rollout_stats(ro, logp, logp_ref, ent, proxy, gold)
        chosen = torch.nonzero(weights > 0).squeeze(-1)
        rng = np.random.default_rng([cfg.seed, s.step, 17])
        losses = []
        for _ in range(cfg.sft_epochs):
            order = chosen[torch.as_tensor(rng.permutation(len(chosen)))] if len(chosen) else chosen
            for start in range(0, len(order), cfg.minibatch_size):
                idx = order[start: start + cfg.minibatch_size]
                loss = sft_loss(s.module, *(t.to(s.acc.device) for t in _take(ro, idx)), weights[idx].to(s.acc.device))
                s.acc.backward(loss)
                _clip_and_step(s)
                losses.append(float(loss.detach()))
        s.step += 1
        s.log({"split": "train", **s.reduce({**stats, "loss": float(np.mean(losses)) if losses else None,
                                             "kept": float((weights > 0).float().mean()),
                                             "weight_max": float(weights.max())})})
        _end_of_step(s, {})
    return s.finish(initial)


# ---------------------------------------------------------------------------- REINFORCE and RLOO


def run_policy_gradient(cfg: OptimizeConfig, log=print) -> dict:
    """One on-policy gradient step per rollout batch on −mean_i A_i log π(y_i|x_i), with the sequence
    reward r_i = score_i − β Σ_t kl_t; A = r − b (reinforce: moving-average baseline b) or the
    leave-one-out advantage (rloo)."""
    s, extra, initial = _start(cfg, log)
    kl_ctl = (A.AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon) if cfg.kl_target
              else A.FixedKLController(cfg.kl_coef))
    if "kl_ctl" in extra:
        kl_ctl.load_state_dict(extra["kl_ctl"])
    baseline = extra.get("baseline")
    while s.step < cfg.steps:
        rows = [r for r in s.rows_for_step(s.step, cfg.batch_size) for _ in range(cfg.k)]
        ro = s.rollout_step(rows, cfg.k, s.step)
        proxy, gold = s.score(rows, ro.completions)
        logp_old, ent, _ = s.token_scores(s.module, ro, entropy=True)
        logp_ref, _, _ = s.token_scores(s.ref, ro)
        mask = ro.response_mask.float()
        kl_seq = A.sequence_kl(logp_old, logp_ref, mask, cfg.kl_estimator)  # (B·K,)
        r = torch.as_tensor(proxy, dtype=torch.float32, device=kl_seq.device) - kl_ctl.value * kl_seq  # (B·K,)
        if cfg.method == "rloo":
            adv = A.rloo_advantages(r.view(cfg.batch_size, cfg.k)).view(-1)
        else:
            batch_mean = float(s.everywhere(r).mean())  # over every process's samples
            baseline = batch_mean if baseline is None else baseline
            adv = r - baseline
            baseline = cfg.baseline_momentum * baseline + (1 - cfg.baseline_momentum) * batch_mean
        n = r.numel()
        total = 0.0
        for start in range(0, n, cfg.minibatch_size):
            idx = slice(start, start + cfg.minibatch_size)
            logp = forward_tokens(s.module, *_take(ro, idx), cfg.temperature).logprobs  # (b, R)
            loss = A.policy_gradient_loss(logp.sum(-1), adv[idx]) * (logp.shape[0] / n)
            s.acc.backward(loss)
            total += float(loss.detach())
        grad_norm = _clip_and_step(s)
        stats = s.rollout_stats(ro, logp_old, logp_ref, ent, proxy, gold)
        kl_ctl.update(stats["kl_k1"], n * s.acc.num_processes)
        s.step += 1
        s.log({"split": "train", **s.reduce({**stats, "kl_coef": kl_ctl.value, "loss": total, "grad_norm": grad_norm,
                                             "advantage_std": float(s.everywhere(adv).std()),
                                             "baseline": baseline if cfg.method == "reinforce" else None})})
        _end_of_step(s, {"kl_ctl": kl_ctl.state_dict(), "baseline": baseline})
    return s.finish(initial, {"kl_coef": kl_ctl.value})


# ---------------------------------------------------------------------------- MLE + λ·RL


def run_mle_rl(cfg: OptimizeConfig, log=print) -> dict:
    """One step per batch of B prompts, each with one reference completion and K samples of the policy, on
    L = NLL(references) − λ·(1/(B·K)) Σ_i A_i log π(y_i|x_i) (:func:`~rewardlab.optimize.algorithms.mle_rl_loss`), A the
    leave-one-out advantages of the proxy reward (no KL penalty: the MLE term anchors the policy). The batch is
    cut into chunks of prompts (their references and their samples); each chunk's NLL share and reward term sum
    to the batch's L, so the minibatch size changes memory, not the update."""
    s, _, initial = _start(cfg, log)
    while s.step < cfg.steps:
        prompt_rows = s.rows_for_step(s.step, cfg.batch_size)
        rows = [r for r in prompt_rows for _ in range(cfg.k)]  # (B·K) prompt-major
        ro = s.rollout_step(rows, cfg.k, s.step)
        proxy, gold = s.score(rows, ro.completions)
        logp_old, ent, _ = s.token_scores(s.module, ro, entropy=True)
        logp_ref, _, _ = s.token_scores(s.ref, ro)
        r = torch.as_tensor(proxy, dtype=torch.float32, device=logp_old.device)  # (B·K,)
        adv = A.rloo_advantages(r.view(cfg.batch_size, cfg.k)).view(-1)  # (B·K,)
        texts = references_of(prompt_rows, cfg.reference_field, np.random.default_rng([cfg.seed, s.step, s.acc.process_index, 23]))
        refs = [t.to(s.acc.device) for t in s.encode_references(prompt_rows, texts)]  # rollout layout, (B, ·)
        ref_tokens = float(refs[3].sum())
        n, per_chunk = r.numel(), max(1, cfg.minibatch_size // cfg.k)  # prompts per chunk
        nll_total, pg_total = 0.0, 0.0
        for start in range(0, cfg.batch_size, per_chunk):
            p_idx, s_idx = slice(start, start + per_chunk), slice(start * cfg.k, (start + per_chunk) * cfg.k)
            chunk = [t[p_idx] for t in refs]
            nll = sft_loss(s.module, *chunk) * (float(chunk[3].sum()) / ref_tokens)  # this chunk's share of the batch's NLL
            seq_logp = forward_tokens(s.module, *_take(ro, s_idx), cfg.temperature).logprobs.sum(-1)  # (b,)
            share = seq_logp.shape[0] / n
            loss = A.mle_rl_loss(nll, seq_logp, adv[s_idx], cfg.mle_lambda * share)  # Σ over chunks = the batch's L
            s.acc.backward(loss)
            nll_total += float(nll.detach())
            pg_total += float(A.policy_gradient_loss(seq_logp.detach(), adv[s_idx])) * share
        grad_norm = _clip_and_step(s)
        stats = s.rollout_stats(ro, logp_old, logp_ref, ent, proxy, gold)
        s.step += 1
        s.log({"split": "train", **s.reduce({**stats, "ref_nll": nll_total, "pg_loss": pg_total,
                                             "loss": nll_total + cfg.mle_lambda * pg_total, "grad_norm": grad_norm,
                                             "advantage_std": float(adv.std())})})
        _end_of_step(s, {})
    return s.finish(initial, {"mle_lambda": cfg.mle_lambda})


# ---------------------------------------------------------------------------- sequence-level distillation


def teacher_outputs(s: Session, rows: list[dict], seed: int) -> Rollout:
    """The teacher's completions of ``rows`` (``teacher_sampling``: sampled at the run's temperature, or greedy)."""
    c = s.cfg
    return sample(s.teacher, s.tok, [r["prompt"] for r in rows], max_new_tokens=c.max_new_tokens, temperature=c.temperature,
                  top_k=c.top_k, top_p=c.top_p, chat=c.chat, max_prompt_length=c.max_prompt_length, seed=seed,
                  greedy=c.teacher_sampling == "greedy")


def run_distill(cfg: OptimizeConfig, log=print) -> dict:
    """Sequence-level knowledge distillation (Kim & Rush 2016): each step the teacher writes K completions for each of
    B prompts (one when greedy) and the student takes one step on their mean token NLL under it (``sft_loss``).
    Train lines: the teacher's outputs' proxy and gold, KL(teacher ‖ student) = Σ_t log T − log S on them (before the
    step); eval lines: the student's own samples, with KL(student ‖ teacher) on them (``kl_student_teacher``)."""
    s, _, initial = _start(cfg, log)
    k = 1 if cfg.teacher_sampling == "greedy" else cfg.k
    while s.step < cfg.steps:
        rows = [r for r in s.rows_for_step(s.step, cfg.batch_size) for _ in range(k)]
        ro = s.rollout_step(rows, k, s.step, sampler=lambda chunk, seed: teacher_outputs(s, chunk, seed))
        proxy, gold = s.score(rows, ro.completions)
        logp_student, _, _ = s.token_scores(s.module, ro)  # (B·K, R) before the step
        logp_teacher, _, _ = s.token_scores(s.teacher, ro)
        tokens = float(ro.response_mask.sum())
        total = 0.0
        for start in range(0, len(rows), cfg.minibatch_size):
            chunk = [t.to(s.acc.device) for t in _take(ro, slice(start, start + cfg.minibatch_size))]
            loss = sft_loss(s.module, *chunk) * (float(chunk[3].sum()) / tokens)  # Σ over chunks = the batch's mean token NLL
            s.acc.backward(loss)
            total += float(loss.detach())
        grad_norm = _clip_and_step(s)
        st = summarize(sample_stats(ro, logp_teacher, logp_student, None, proxy, gold))  # its kl_k1 = Σ_t log T − log S
        s.step += 1
        s.log({"split": "train", **s.reduce({"loss": total, "grad_norm": grad_norm, "teacher_proxy": st["proxy"],
                                             "teacher_gold": st["gold"], "kl_teacher_student": st["kl_k1"],
                                             "kl_teacher_student_k3": st["kl_k3"], "length": st["length"], "ended": st["ended"]})})
        _end_of_step(s, {})
    return s.finish(initial)


# ---------------------------------------------------------------------------- PPO


def run_ppo(cfg: OptimizeConfig, log=print) -> dict:
    """PPO (see the module docstring). advantage=gae: per-token rewards −β·kl_t plus the score at the
    last token, GAE over a value head on the policy's trunk, whitened advantages, clipped policy and
    value losses. advantage=grpo: A = group-normalised score for every token, loss + β·k3 KL, no critic.

    Over P processes everything that spans samples spans the whole batch, so P × --batch-size B runs as one process
    with P·B and --minibatch-size P·m: --whiten-rewards and the GAE whitening use every process's scores and tokens, one
    permutation of the P·B·K samples makes the global minibatches of P·m (each process takes its own samples of each),
    and each process divides its token sums by 1/P of the global minibatch's token count (DDP averages the gradients)."""
    grpo = cfg.advantage == "grpo"
    s, extra, initial = _start(cfg, log, value_head=not grpo)
    kl_ctl = (A.AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon) if cfg.kl_target
              else A.FixedKLController(cfg.kl_coef))
    if "kl_ctl" in extra:
        kl_ctl.load_state_dict(extra["kl_ctl"])
    while s.step < cfg.steps:
        rows = [r for r in s.rows_for_step(s.step, cfg.batch_size) for _ in range(cfg.k)]
        ro = s.rollout_step(rows, cfg.k, s.step)
        proxy, gold = s.score(rows, ro.completions)
        s.module.eval()  # no dropout while scoring the rollout
        old_logp, ent, old_values = s.token_scores(s.module, ro, entropy=True)
        s.module.train()
        logp_ref, _, _ = s.token_scores(s.ref, ro)
        mask = ro.response_mask.float()  # (B, R)
        score = torch.as_tensor(proxy, dtype=torch.float32, device=mask.device)  # (B,)
        if cfg.whiten_rewards:
            every = s.everywhere(score)  # (P·B,) the whole batch's scores, whatever its split
            score = (score - every.mean()) / (every.std() + 1e-8)
        kl_tok = A.KL_ESTIMATORS[cfg.kl_estimator](old_logp, logp_ref) * mask  # (B, R)
        if grpo:
            adv = A.group_advantages(score.view(cfg.batch_size, cfg.k)).view(-1, 1) * mask  # (B, R)
            returns = None
        else:
            rewards = A.token_rewards(score, kl_tok, mask, kl_ctl.value)  # (B, R)
            adv, returns = A.gae(rewards, old_values, mask, cfg.gamma, cfg.lam)
            mean = s.masked_mean(adv, mask)  # moments over every process's tokens
            adv = A.masked_whiten(adv, mask, mean=mean, var=s.masked_mean((adv - mean) ** 2, mask))
        n, processes = mask.shape[0], s.acc.num_processes
        rng = np.random.default_rng([cfg.seed, s.step, 29])  # the same on every process
        pl_log, vl_log, kl_log, clip_log = [], [], [], []
        for _ in range(cfg.ppo_epochs):
            # one permutation of all processes' samples; each takes its share of every global minibatch
            shares = A.process_minibatches(rng.permutation(n * processes), processes, s.acc.process_index,
                                           cfg.minibatch_size)
            counts = s.total(torch.stack([mask[torch.as_tensor(i)].sum() for i in shares]))  # (J,) global tokens
            for share, tokens in zip(shares, counts):
                # an empty share still joins DDP's gradient all-reduce: one row, weighted 0
                idx = torch.as_tensor(share if len(share) else [0])
                m = mask[idx] if len(share) else torch.zeros_like(mask[idx])
                # its share of the global minibatch's tokens: DDP's mean of the processes' losses = the token mean
                count = tokens.clamp(min=1.0) / processes
                out = forward_tokens(s.module, *_take(ro, idx), cfg.temperature)
                pl, st = A.ppo_policy_loss(out.logprobs, old_logp[idx], adv[idx], m, cfg.clip_range, count)
                if grpo:
                    kl_term = A.masked_mean(A.kl_k3(out.logprobs, logp_ref[idx]), m, count=count)
                    loss = pl + kl_ctl.value * kl_term
                    kl_log.append(float(kl_term.detach()))
                else:
                    vl, vst = A.ppo_value_loss(out.values, old_values[idx], returns[idx], m, cfg.value_clip, count)
                    loss = pl + cfg.vf_coef * vl
                    vl_log.append(float(vl.detach()))
                s.acc.backward(loss)
                _clip_and_step(s)
                pl_log.append(float(pl.detach()))
                clip_log.append(st["clipfrac"])
        stats = s.rollout_stats(ro, old_logp, logp_ref, ent, proxy, gold)
        kl_ctl.update(stats["kl_k1"], n * processes)  # samples of the whole batch, as one process with P·B
        s.step += 1
        s.log({"split": "train", **s.reduce({**stats, "kl_coef": kl_ctl.value, "policy_loss": float(np.mean(pl_log)),
                                             "value_loss": float(np.mean(vl_log)) if vl_log else None,
                                             "kl_loss": float(np.mean(kl_log)) if kl_log else None,
                                             "clipfrac": float(np.mean(clip_log))})})
        _end_of_step(s, {"kl_ctl": kl_ctl.state_dict()})
    return s.finish(initial, {"kl_coef": kl_ctl.value})


RUNNERS = {"bon": run_bon, "rwr": run_filtered, "raft": run_filtered, "reinforce": run_policy_gradient,
           "rloo": run_policy_gradient, "ppo": run_ppo, "mle_rl": run_mle_rl, "distill": run_distill}
"""Method name → loop; the one place a method is chosen."""


def optimize(cfg: OptimizeConfig, log=print) -> dict:
    """Run ``cfg.method`` and return its summary (also written to output/summary.json)."""
    if cfg.method not in RUNNERS:
        raise ValueError(f"unknown method {cfg.method!r}; known: {', '.join(RUNNERS)}")
    ckpt.refuse_existing_output(cfg.output, (LOG, SUMMARY), overwrite=cfg.overwrite,
                                resume=None if cfg.method == "bon" else cfg.resume)  # best-of-N has no --resume
    torch.manual_seed(cfg.seed)
    with hf_progress_bars(cfg.progress):  # --no-progress: no bars of transformers' loading and saving either
        return RUNNERS[cfg.method](cfg, log)


__all__ = ["optimize", "RUNNERS", "Session"]
