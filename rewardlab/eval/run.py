"""``rewardlab eval``: load reward models and data, score, compute metrics, write results and a report.

Flow (each step is a function of this package, traceable from a flag):

    --data, --form, --layout, --subset-column, --annotator-column  → layouts.load_eval_data
    --model / --compare (--implicit, --ref-model, --beta, --dtype) → load_scorer
    --append-eos/--no-append-eos (default: the model's recorded convention) → reward_model.load_reward_model
    --batch-size, --max-length, --truncation-side, --padding-side → evaluate.score_dataset
    --normalize → reward_model.normalize_rewards (the training-reward mean/std saved with the model)
    form → analyze.pair_analysis / ranking_analysis / rating_analysis / label_analysis (+ RewardBench scores)
    a multi-attribute RM on ratings → analyze.attribute_analysis (each output against its ratings: attribute_outputs)
    several models → analyze.paired_differences
    --output F.json → the result as JSON;  --output DIR → results.json, examples.jsonl, report.html + PNGs
    --overwrite → checkpoint.refuse_existing_output (an --output holding results is refused first, unless given)

The returned dict holds the first model's metrics at the top level (``accuracy`` first), then
``model``, ``form``, ``layout``, ``data`` (the load report), ``max_length``, ``dtype``, ``device``,
``truncation``, ``versions``; with several models also ``comparison`` and ``per_model``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from rewardlab.config import CONFIG_FILE, EvalConfig, config_beside, save_config, to_dict
from rewardlab.eval import analyze as A
from rewardlab.eval import metrics as M
from rewardlab.models.scoring import score_dataset
from rewardlab.eval.layouts import EvalData, load_eval_data
from rewardlab.models.reward_model import check_reward_stats, normalize_rewards
from rewardlab.checkpoint import refuse_existing_output, versions, write_json_atomic
from rewardlab.runtime import resolve_device

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# --------------------------------------------------------------------------- models




def load_scorer(path: str, cfg: EvalConfig):
    """(model with ``forward(ids, mask[, response_mask]) → RewardOutput``, tokenizer, meta) on the chosen device."""
    dtype = DTYPES[cfg.dtype]
    if cfg.implicit:
        from rewardlab.eval.implicit import load_implicit_reward_model

        model, tokenizer, meta = load_implicit_reward_model(path, cfg.implicit, cfg.ref_model, cfg.beta, dtype=dtype,
                                                            trust_remote_code=cfg.trust_remote_code, allow_pickle=cfg.allow_pickle)
    else:
        from rewardlab.models.reward_model import load_reward_model

        model, tokenizer, meta = load_reward_model(path, trust_remote_code=cfg.trust_remote_code, dtype=dtype,
                                                   append_eos=cfg.append_eos, allow_pickle=cfg.allow_pickle)
    model = model.to(resolve_device(cfg.device)).eval()
    if cfg.compile:
        from rewardlab.models.scoring import compile_scorer

        model = compile_scorer(model)
    return model, tokenizer, meta


def model_names(paths: list[str]) -> list[str]:
    """Short display names: the folder's last part, or the whole path when two last parts coincide."""
    short = [Path(p.rstrip("/")).name or p for p in paths]
    names = [s if short.count(s) == 1 else p for s, p in zip(short, paths)]
    return [n if names[:i].count(n) == 0 else f"{n}#{names[:i].count(n) + 1}" for i, n in enumerate(names)]


# --------------------------------------------------------------------------- metrics per form


def _prompt_key(prompt) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)


def analyse(data: EvalData, rewards: list, lengths: list, cfg: EvalConfig,
            outputs: tuple[list, list] | None = None) -> tuple[dict, np.ndarray, dict]:
    """(metrics, per-example correctness for paired comparisons, pairs for the report's plots). ``outputs``:
    (attribute names, ``ScoredRecords.attributes``) of a multi-attribute RM on ratings → ``attribute_outputs``."""
    recs, n_boot, seed = data.records, cfg.bootstrap, cfg.seed
    if data.form == "pairs":
        r = np.stack(rewards)  # (B, 2)
        ln = np.stack(lengths)  # (B, 2)
        tie = np.array([x.tie for x in recs], bool)
        margins = [x.margin for x in recs]
        strength = np.array([np.nan if m is None else m for m in margins], float) if any(m is not None for m in margins) else None
        annotators = None
        if data.annotators is not None:
            width = max(len(a) for a in data.annotators)
            annotators = np.full((len(recs), width), np.nan)
            for i, a in enumerate(data.annotators):
                annotators[i, : len(a)] = [np.nan if v is None else v for v in a]
        metrics = A.pair_analysis(r[:, 0], r[:, 1], tie=tie, strength=strength, len_chosen=ln[:, 0], len_rejected=ln[:, 1],
                                  subsets=data.subsets, annotators=annotators, n_boot=n_boot,
                                  calibration_split=cfg.calibration_split, strength_bins=cfg.strength_bins, seed=seed)
        strict = ~tie
        correct = M.correct_pairs(r[strict, 0], r[strict, 1])
        if data.layout == "rewardbench":
            metrics["rewardbench"] = A.rewardbench_v1(np.asarray(data.subsets, dtype=object)[strict], correct)
        plot = {"r_chosen": r[strict, 0], "r_rejected": r[strict, 1], "len_chosen": ln[strict, 0],
                "len_rejected": ln[strict, 1], "strength": None if strength is None else strength[strict]}
        if plot["strength"] is not None and np.isnan(plot["strength"]).any():
            plot["strength"] = None  # the plot needs a strength for every pair; the metrics have the partial table
        return metrics, correct, plot
    if data.form == "rankings":
        ranks = [np.asarray(x.ranks, float) for x in recs]
        metrics = A.ranking_analysis(rewards, ranks, lengths=lengths, n_boot=n_boot, seed=seed)
        correct = A.best_of_k_credits(rewards, ranks)
        if data.layout == "rewardbench2":
            chosen = [rw[:k] for rw, k in zip(rewards, data.n_chosen)]
            rejected = [rw[k:] for rw, k in zip(rewards, data.n_chosen)]
            from rewardlab.eval.rewardbench import rewardbench2_results

            correct = np.asarray(rewardbench2_results(chosen, rejected))
            metrics = {"accuracy": float(correct.mean()), "accuracy_ci95": A._ci(correct, n_boot, seed),
                       "rewardbench2": A.rewardbench_v2(data.subsets, data.ids, chosen, rejected), **{
                           k: v for k, v in metrics.items() if k != "accuracy"}}
        pairs = A.within_group_pairs(rewards, ranks, "lower", lengths)
        plot = {"r_chosen": pairs["r_chosen"], "r_rejected": pairs["r_rejected"], "len_chosen": pairs["len_chosen"],
                "len_rejected": pairs["len_rejected"], "strength": None}
        return metrics, correct, plot
    if data.form == "ratings":
        pred = np.concatenate(rewards)
        target = np.array([A.rating_target(x) for x in recs], float)
        names = sorted({k for x in recs if x.scores for k in x.scores})
        attributes = {n: [x.scores.get(n, np.nan) if x.scores else np.nan for x in recs] for n in names} or None
        groups = [_prompt_key(x.prompt) for x in recs]
        ln = np.concatenate(lengths)
        metrics = A.rating_analysis(pred, target, groups=groups, attributes=attributes, lengths=ln)
        if outputs:
            names, values = outputs
            metrics["attribute_outputs"] = A.attribute_analysis(np.concatenate(values), A.attribute_targets(recs, names), names)
        idx = {}
        for i, g in enumerate(groups):
            idx.setdefault(g, []).append(i)
        idx = [np.asarray(v) for v in idx.values()]
        pairs = A.within_group_pairs([pred[i] for i in idx], [target[i] for i in idx], "higher", [ln[i] for i in idx])
        correct = M.correct_pairs(pairs["r_chosen"], pairs["r_rejected"]) if len(pairs["r_chosen"]) else np.array([])
        plot = {"r_chosen": pairs["r_chosen"], "r_rejected": pairs["r_rejected"], "len_chosen": pairs["len_chosen"],
                "len_rejected": pairs["len_rejected"], "strength": None}
        return metrics, correct, plot
    # labels
    pred = np.concatenate(rewards)
    labels = np.array([x.label for x in recs], float)
    metrics = A.label_analysis(pred, labels, threshold=cfg.threshold, fit_fraction=cfg.calibration_split, seed=seed)
    correct = ((pred >= metrics["threshold"]) == (labels == 1)).astype(float)
    metrics["accuracy_all"] = float(correct.mean())
    return metrics, correct, {"rewards": pred, "labels": labels}


# --------------------------------------------------------------------------- per-example rows


def example_rows(data: EvalData, scored: dict[str, tuple]) -> list[dict]:
    """One JSON-able row per record with its rewards (and every compared model's under ``rewards_by_model``; a
    multi-attribute RM's outputs under ``rewards``). ``scored``: model name → (rewards, lengths, (attribute names,
    attribute values) or None)."""
    names = list(scored)
    first = names[0]
    rows = []
    for b, rec in enumerate(data.records):
        rw, ln = scored[first][0][b], scored[first][1][b]
        row = {"index": b, "source": rec.source}
        if data.subsets is not None:
            row["subset"] = data.subsets[b]
        if data.form == "pairs":
            row.update({"reward_chosen": float(rw[0]), "reward_rejected": float(rw[1]), "delta": float(rw[0] - rw[1]),
                        "correct": bool(rw[0] > rw[1]), "tie": rec.tie, "margin": rec.margin,
                        "len_chosen": int(ln[0]), "len_rejected": int(ln[1])})
        elif data.form == "rankings":
            row.update({"rewards": [float(x) for x in rw], "ranks": list(rec.ranks), "lengths": [int(x) for x in ln]})
            if data.n_chosen is not None:
                row.update({"n_chosen": data.n_chosen[b], "id": data.ids[b]})
        elif data.form == "ratings":
            row.update({"reward": float(rw[0]), "score": rec.score, "scores": rec.scores, "length": int(ln[0])})
            if scored[first][2]:  # a multi-attribute RM's outputs
                attribute_names, values = scored[first][2]
                row["rewards"] = dict(zip(attribute_names, map(float, values[b][0])))
        else:
            row.update({"reward": float(rw[0]), "label": rec.label, "length": int(ln[0])})
        if len(names) > 1:
            row["rewards_by_model"] = {n: [float(x) for x in scored[n][0][b]] for n in names}
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- outputs


_HEADLINE = ("accuracy", "accuracy_ci95", "best_of_k_accuracy", "pearson", "spearman", "auc", "f1", "loss",
             "reward_ties", "n_pairs")


def _headline(metrics: dict) -> dict:
    """The scalar metrics shown per model in the comparison table."""
    out = {k: metrics[k] for k in _HEADLINE if k in metrics and not isinstance(metrics[k], (list, dict))}
    cal = metrics.get("calibration") or {}
    if "ece" in cal:
        out["ece"] = cal["ece"]
        out["brier"] = cal["brier"]
    lb = metrics.get("length_bias") or {}
    if "spearman" in lb:
        out["reward_length_rho"] = lb["spearman"]  # no "better" direction: the name avoids the report's "spearman" = higher rule
    for key in ("rewardbench", "rewardbench2"):
        if metrics.get(key):
            out[f"{key}_score"] = metrics[key]["Score"]
    return out


def _for_report(metrics: dict) -> dict:
    """Metrics without the long arrays (reliability curves) and notes, for the report's table."""
    skip = {"reliability", "reliability_after", "notes", "per_model", "comparison", "versions", "config", "outputs"}
    out = {}
    for k, v in metrics.items():
        if k in skip:
            continue
        out[k] = _for_report(v) if isinstance(v, dict) else v
    return out


def explain_worst(model, tokenizer, data: EvalData, rewards: list, cfg: EvalConfig, max_length: int) -> tuple[str, dict] | None:
    """``--explain N`` on pairs: (report section, results entry) from ``rewardlab.explain``; None (with a note on
    stderr) for other forms."""
    from rewardlab.explain.run import explain_for_eval

    if data.form != "pairs":
        print(f"eval: --explain applies to pairs; the {data.form} were not explained", file=sys.stderr)
        return None
    return explain_for_eval(model, tokenizer, data.records, rewards, cfg.explain, Path(cfg.output), max_length=max_length,
                            truncation_side=cfg.truncation_side, batch_size=cfg.batch_size, progress=cfg.progress,
                            seed=cfg.seed)


def write_outputs(out_dir: Path, result: dict, rows: list[dict], plot: dict, cfg: EvalConfig,
                  extra: tuple[str, ...] = ()) -> dict:
    """results.json, examples.jsonl, rewardlab_config.yaml and (``cfg.report``) report.html + PNGs in ``out_dir``."""
    from rewardlab.eval.report import write_label_report, write_report

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"results": str(out_dir / "results.json"), "examples": str(out_dir / "examples.jsonl"),
             "config": str(out_dir / CONFIG_FILE)}
    with open(out_dir / "examples.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, default=str) + "\n")
    save_config(cfg, out_dir / CONFIG_FILE)
    if cfg.report:
        title = f"Reward model evaluation — {result['model_name']}"
        subtitle = f"{result['form']} from {cfg.data} · layout {result['layout']}"
        tables = {}
        if result["form"] in ("rankings", "ratings"):
            better = "ranks" if result["form"] == "rankings" else "scores (same prompt)"
            subtitle += f" · cards and plots use the pairs of responses with different {better}"
        if result["form"] == "rankings":
            tables["Best-of-K"] = [{k: result.get(k) for k in ("best_of_k_accuracy", "best_of_k_ci95", "chance_best_of_k",
                                                              "pairwise_accuracy", "spearman", "n_groups")}]
        if result["form"] == "ratings":
            tables["Ratings"] = [{k: result.get(k) for k in ("pearson", "spearman", "accuracy", "n")}]
        comparison = result.get("comparison")
        compare = None
        if comparison:
            compare = comparison["models"]
            tables["Paired differences (a − b, same examples; 95% paired bootstrap CI, McNemar p)"] = [
                {k: d[k] for k in ("a", "b", "accuracy_a", "accuracy_b", "difference", "ci_low", "ci_high", "n",
                                   "mcnemar_p")} for d in comparison["paired_differences"]]
        for key, name in (("rewardbench", "RewardBench v1 sections"), ("rewardbench2", "RewardBench 2 subsets")):
            if result.get(key):
                tables[name] = [{"part": k, "score": v} for k, v in result[key].items() if not isinstance(v, dict)]
        if result.get("subsets"):
            tables["Accuracy per subset"] = [{"subset": k, **v} for k, v in result["subsets"].items()]
        if result.get("attribute_outputs"):
            tables["Multi-attribute RM: each output against its ratings"] = [
                {"attribute": k, **v} for k, v in result["attribute_outputs"].items()]
        metrics = _for_report({k: v for k, v in result.items() if k not in ("data", "truncation")})
        if "rewards" in plot:  # labels
            path = write_label_report(out_dir, metrics, plot["rewards"], plot["labels"], threshold=result["threshold"],
                                      title=title, subtitle=subtitle, compare=compare, tables=tables)
        elif len(plot["r_chosen"]):
            ts = (result.get("calibration") or {}).get("temperature_scaled")
            path = write_report(out_dir, metrics, plot["r_chosen"], plot["r_rejected"], plot["len_chosen"],
                                plot["len_rejected"], strength=plot["strength"], title=title, compare=compare,
                                subtitle=subtitle, tables=tables, temperature=ts["temperature"] if ts else None,
                                length_label="response length (tokens, before truncation)", extra=extra)
        else:
            path = None
        if path is not None:
            files["report"] = str(path)
    result["outputs"] = files
    write_json_atomic(out_dir / "results.json", result)
    return files


# --------------------------------------------------------------------------- the verb


def run_eval(cfg: EvalConfig) -> dict:
    """Metrics of ``cfg.model`` (and ``cfg.compare``) on ``cfg.data``; see the module docstring.

    Raises DataError / ValueError / OSError on bad input (the CLI prints them).
    """
    paths = ([cfg.model] if cfg.model else []) + list(cfg.compare)
    if not paths or not cfg.data:
        raise ValueError("eval needs --data and --model (or --compare A,B)")
    if cfg.output:  # refused before any work: earlier results are not replaced unasked
        as_file = Path(cfg.output).suffix.lower() == ".json"
        refuse_existing_output(cfg.output, ("",) if as_file else ("results.json", "examples.jsonl"), overwrite=cfg.overwrite)
    data = load_eval_data(cfg.data, form=cfg.form, layout=cfg.layout, columns=cfg.columns, on_bad_record=cfg.on_bad_record,
                          limit=cfg.limit, subset_column=cfg.subset_column, annotator_column=cfg.annotator_column)
    if not data.records:
        raise ValueError(f"no records loaded from {cfg.data} ({data.report.n_skipped} skipped)")
    names = model_names(paths)
    device = resolve_device(cfg.device)
    per_model, scored, correct_by_model, plot, explained = {}, {}, {}, None, None
    for path, name in zip(paths, names):
        model, tokenizer, meta = load_scorer(path, cfg)
        max_length = cfg.max_length or meta.get("max_length", 512)
        if cfg.normalize:
            check_reward_stats(meta.get("reward_stats"), path)  # refused before any scoring
        append_eos = cfg.append_eos if cfg.implicit else None  # None: the convention load_reward_model resolved
        sequence = meta.get("sequence") or {"append_eos": bool(cfg.append_eos), "source": "flag" if cfg.append_eos is not None else "default"}
        print(f"eval {name}: append_eos={sequence['append_eos']} ({sequence['source']})", file=sys.stderr)
        names_a = getattr(model, "attributes", None) if data.form == "ratings" else None  # a multi-attribute RM's outputs
        s = score_dataset(model, tokenizer, data.records, cfg.batch_size, max_length, cfg.truncation_side,
                          cfg.padding_side, append_eos, cfg.progress, cfg.shared_prompt, attributes=bool(names_a))
        if cfg.explain and name == names[0]:
            explained = explain_worst(model, tokenizer, data, s.rewards, cfg, max_length)
        del model
        if cfg.shared_prompt and not s.shared_prompt:
            print(f"eval {name}: --shared-prompt not used: it needs a decoder reward model whose base model takes a KV cache "
                  f"and records of two or more responses; every sequence was scored in full (same rewards)", file=sys.stderr)
        if cfg.normalize:
            s = s._replace(rewards=[normalize_rewards(r, meta.get("reward_stats"), path) for r in s.rewards])
        outputs = (names_a, s.attributes) if names_a else None
        metrics, correct, p = analyse(data, s.rewards, s.lengths, cfg, outputs)
        metrics["notes"] = data.notes + metrics.get("notes", [])
        plot = plot if plot is not None else p
        scored[name] = (s.rewards, s.lengths, outputs)
        correct_by_model[name] = correct
        per_model[name] = {**metrics, "model": path, "max_length": max_length, "truncation": s.truncation, "sequence": sequence,
                           "normalized": bool(cfg.normalize), "reward_stats": meta.get("reward_stats"),
                           "implicit": meta.get("implicit") and {k: meta[k] for k in ("implicit", "beta", "ref_model")}}
    first = names[0]
    result = {**per_model[first], "model_name": first, "form": data.form, "layout": data.layout, "data": data.report.summary(),
              "dtype": cfg.dtype, "device": str(device), "versions": {**versions(), "numpy": np.__version__}}
    if len(paths) > 1:
        comparable = all(len(c) for c in correct_by_model.values())
        result["comparison"] = {"models": {n: _headline(per_model[n]) for n in names},
                                "paired_differences": A.paired_differences(correct_by_model, cfg.bootstrap, cfg.seed)
                                if comparable else []}
        if not comparable:
            result["notes"] = result["notes"] + ["no example gives a per-example result (e.g. no prompt with two "
                                                 "ratings): no paired differences"]
        result["per_model"] = {n: {k: v for k, v in per_model[n].items()} for n in names[1:]}
    if explained:
        result["explain"] = explained[1]
    result["config"] = to_dict(cfg)
    if cfg.output:
        out = Path(cfg.output)
        if out.suffix.lower() == ".json":
            out.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(out, result)
            save_config(cfg, config_beside(out))
        else:
            write_outputs(out, result, example_rows(data, scored), plot, cfg, (explained[0],) if explained else ())
    return result
