"""``rewardlab explain``: token attributions, reward along the response and counterfactual probes of a reward model.

Reads pairs (prompt, chosen, rejected) or single responses (prompt, response); writes, under ``--output``:

    explanations.jsonl   one line per record: {"index", "prompt_text", "reward", "method", "completeness",
                         "tokens": [{"text", "start", "end", "attribution"}], "prefix_rewards"}; a pair has one
                         such entry per side under "chosen" / "rejected", plus "margin" and "correct"
    probes.json          the probe table (``rewardlab.explain.probes``)
    report.html          probes, reward curves and highlighted responses (worst pairs first), with its PNGs
    rewardlab_config.yaml
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rewardlab.checkpoint import refuse_existing_output, write_json_atomic
from rewardlab.config import CONFIG_FILE, ExplainConfig, save_config
from rewardlab.data.formats import LoadReport, load_records, source_rows
from rewardlab.data.records import DataError, check_nonempty_response, check_text, require
from rewardlab.data.render import prompt_text
from rewardlab.explain.attribution import attribute, baseline_token, prefix_rewards
from rewardlab.explain.probes import format_row, load_rewrite, run_probes
from rewardlab.explain.report import explain_section
from rewardlab.explain.tokens import encode_explained
from rewardlab.models.scoring import score_texts


def read_input(source: str, on_bad_record: str = "error", limit: int | None = None) -> tuple[str, list, LoadReport]:
    """("pairs", PairRecords) when the first row has chosen/rejected, else ("responses", [{"prompt", "response"}])."""
    rows, _, _ = source_rows(str(source))
    first, error = None, None
    for where, row in rows:  # the first record decides the form; an unreadable row before it is reported as read
        if isinstance(row, dict):
            first = row
            break
        error = error or (row if isinstance(row, DataError) else
                          DataError(where, None, f"expected an object (prompt, chosen, rejected or prompt, response), "
                                                 f"got {type(row).__name__}"))
        if on_bad_record == "error":
            raise error
    if first is None:
        raise error or ValueError(f"{source}: no records")
    if "chosen" in first and "rejected" in first:
        records, rep = load_records(source, form="pairs", on_bad_record=on_bad_record, limit=limit)
        return "pairs", records, rep
    rep = LoadReport(source=str(source), form="responses")
    out = []
    for where, row in source_rows(str(source))[0]:
        rep.n_read += 1
        if limit is not None and len(out) >= limit:
            break
        try:
            if isinstance(row, DataError):
                raise row
            if not isinstance(row, dict):
                raise DataError(where, None, f"expected an object with prompt and response, got {type(row).__name__}")
            prompt = check_text(row.get("prompt", ""), where, "prompt", allow_empty=True)
            response = check_nonempty_response(check_text(require(row, "response", where, "the response text"), where,
                                                          "response"), where, "response")
        except DataError as e:
            if on_bad_record == "error":
                raise
            rep.n_skipped += 1
            if len(rep.skipped) < 10:
                rep.skipped.append(str(e))
            continue
        out.append({"prompt": prompt, "response": response})
    rep.n_loaded = len(out)
    return "responses", out, rep


def explain_side(rm, tokenizer, prompt, response, cfg: ExplainConfig, baseline_id: int, append_eos: bool, max_length: int) -> dict:
    seq = encode_explained(tokenizer, prompt, response, append_eos, max_length, cfg.truncation_side)
    a = attribute(rm, seq.ids, seq.positions, baseline_id, cfg.method, n_steps=cfg.n_steps, n_samples=cfg.n_samples,
                  batch=cfg.batch_size, tolerance=cfg.tolerance, max_steps=cfg.max_steps)
    tokens = [{"text": t, "start": s, "end": e, "attribution": float(v)}
              for t, (s, e), v in zip(seq.token_texts(), seq.spans, a.scores)]
    return {"reward": a.reward, "baseline_reward": a.baseline_reward, "method": cfg.method, "completeness": a.completeness,
            **({"n_steps": a.n_steps} if cfg.method == "ig" else {}), "response": seq.response, "tokens": tokens, "prefix_rewards": prefix_rewards(rm, seq.ids, seq.positions)}


def explain_records(rm, tokenizer, form: str, records: list, cfg: ExplainConfig, append_eos: bool, max_length: int) -> list[dict]:
    """One explanation per record (see the module docstring), with a progress bar."""
    import torch
    from tqdm.auto import tqdm

    torch.manual_seed(cfg.seed)  # Shapley value sampling draws permutations from torch's generator
    baseline_id = baseline_token(tokenizer, rm.model.get_input_embeddings())
    out = []
    for i, rec in enumerate(tqdm(records, desc=f"explain ({cfg.method})", unit="record", disable=not cfg.progress)):
        prompt = rec.prompt if form == "pairs" else rec["prompt"]
        entry = {"index": i, "prompt_text": prompt_text(prompt, tokenizer) if prompt else ""}
        if form == "pairs":
            c = explain_side(rm, tokenizer, prompt, rec.chosen, cfg, baseline_id, append_eos, max_length)
            r = explain_side(rm, tokenizer, prompt, rec.rejected, cfg, baseline_id, append_eos, max_length)
            entry.update({"chosen": c, "rejected": r, "margin": c["reward"] - r["reward"], "correct": c["reward"] > r["reward"]})
        else:
            entry.update(explain_side(rm, tokenizer, prompt, rec["response"], cfg, baseline_id, append_eos, max_length))
        out.append(entry)
    return out


def probe_model(rm, tokenizer, form: str, records: list, cfg: ExplainConfig, max_length: int) -> list[dict]:
    """The probe table over every response of ``records`` (both sides of a pair)."""
    if not cfg.probes and not cfg.rewrite:
        return []
    prompts, responses = [], []
    for rec in records:
        sides = [rec.chosen, rec.rejected] if form == "pairs" else [rec["response"]]
        for resp in sides:
            if isinstance(resp, str):  # probes edit text; chat-message responses are left out
                prompts.append(rec.prompt if form == "pairs" else rec["prompt"])
                responses.append(resp)
    if not responses:
        return []

    def score(ps, rs):
        return score_texts(rm, tokenizer, ps, rs, cfg.batch_size, max_length, cfg.truncation_side)[0]

    rewrite = load_rewrite(cfg.rewrite) if cfg.rewrite else None
    return run_probes(score, prompts, responses, cfg.probes, cfg.filler_words, cfg.seed, cfg.bootstrap, rewrite,
                      cfg.rewrite.split(":")[-1] if cfg.rewrite else "rewrite")


def write_explanations(out: Path, explained: list[dict]) -> Path:
    """OUT/explanations.jsonl, one explained record per line (the folder is made if missing)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "explanations.jsonl", "w", encoding="utf-8") as f:
        for e in explained:
            f.write(json.dumps(e) + "\n")
    return out / "explanations.jsonl"


def run_explain(cfg: ExplainConfig, log=print) -> dict:
    """Explain ``cfg.model`` on ``cfg.input`` into ``cfg.output``; returns the summary the CLI prints."""
    from rewardlab import report as R
    from rewardlab.models.reward_model import load_reward_model

    if not cfg.model or not cfg.input or not cfg.output:
        raise ValueError("explain needs --model, --input and --output")
    if cfg.rewrite:
        load_rewrite(cfg.rewrite)  # refused before any work
    out = Path(cfg.output)
    refuse_existing_output(out, ["explanations.jsonl", "probes.json", "report.html"], overwrite=cfg.overwrite)
    form, records, rep = read_input(cfg.input, cfg.on_bad_record, cfg.limit)
    if not records:
        raise ValueError(f"no records loaded from {cfg.input} ({rep.n_skipped} skipped)")
    rm, tokenizer, meta = load_reward_model(cfg.model, trust_remote_code=cfg.trust_remote_code, append_eos=cfg.append_eos,
                                            allow_pickle=cfg.allow_pickle)
    rm.float()
    max_length = cfg.max_length or meta.get("max_length", 512)
    sequence = meta["sequence"]
    log(f"explain: {len(records)} {form} from {cfg.input}" + (f" ({rep.n_skipped} skipped)" if rep.n_skipped else "")
        + f"; append_eos={sequence['append_eos']} ({sequence['source']}); method {cfg.method}")
    explained = explain_records(rm, tokenizer, form, records, cfg, rm.append_eos, max_length)
    probes = probe_model(rm, tokenizer, form, records, cfg, max_length)

    write_explanations(out, explained)
    write_json_atomic(out / "probes.json", probes)
    save_config(cfg, out / CONFIG_FILE)
    sides = [s for e in explained for s in ([e["chosen"], e["rejected"]] if form == "pairs" else [e])]
    gaps = np.array([abs(s["completeness"]) for s in sides])
    summary = {"output": str(out), "records": len(explained), "form": form, "method": cfg.method,
               "skipped": rep.n_skipped, "mean_abs_completeness": float(gaps.mean()),
               "append_eos": sequence["append_eos"], "probes": [format_row(p) for p in probes]}
    if form == "pairs":
        summary["accuracy"] = float(np.mean([e["correct"] for e in explained]))
    cards = [("records", str(len(explained))), ("method", cfg.method), ("mean |completeness gap|", f"{gaps.mean():.3g}")]
    if form == "pairs":
        cards.append(("pair accuracy", f"{summary['accuracy']:.3f}"))
    page = R.page(f"Why {Path(cfg.model).name or cfg.model} gives its rewards",
                  [R.cards(cards), explain_section(explained, probes, out, cfg.top, cfg.method)],
                  subtitle=f"{cfg.model} on {cfg.input}", footer="rewardlab explain; attributions with Captum")
    R.write(out / "report.html", page)
    summary["report"] = str(out / "report.html")
    return summary


def explain_for_eval(rm, tokenizer, records: list, rewards: list, n: int, out: Path, *, max_length: int,
                     truncation_side: str = "left", batch_size: int = 16, progress: bool = False,
                     probe_records: int = 100, seed: int = 0) -> tuple[str, dict]:
    """``rewardlab eval --explain N``: (report section, results entry) for pairs ``records`` scored ``rewards``
    ((2,) per record): integrated gradients on the ``n`` pairs with the smallest chosen − rejected margin,
    probes on the first ``probe_records`` pairs; the explanations also go to ``out/explanations.jsonl``."""
    cfg = ExplainConfig(method="ig", limit=None, top=n, batch_size=batch_size, truncation_side=truncation_side, max_steps=400,
                        progress=progress, seed=seed)
    margins = np.array([float(r[0] - r[1]) for r in rewards])
    worst = [int(i) for i in np.argsort(margins, kind="stable")[:n]]
    explained = explain_records(rm, tokenizer, "pairs", [records[i] for i in worst], cfg, rm.append_eos, max_length)
    for e, i in zip(explained, worst):
        e["index"] = i  # the record's index in the evaluated data
    probes = probe_model(rm, tokenizer, "pairs", records[:probe_records], cfg, max_length)
    write_explanations(out, explained)
    html = explain_section(explained, probes, out, n, "ig")
    return html, {"probes": probes, "explained": worst, "explanations": str(out / "explanations.jsonl")}
