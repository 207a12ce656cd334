"""``rewardlab eval``: load a reward model and data, compute metrics, write results."""

from __future__ import annotations

from pathlib import Path

from rewardlab.config import EvalConfig, save_config
from rewardlab.data.formats import load_records
from rewardlab.eval.evaluate import evaluate_records
from rewardlab.models.reward_model import load_reward_model
from rewardlab.train.checkpoint import versions, write_json_atomic


def run_eval(cfg: EvalConfig) -> dict:
    """Metrics of ``cfg.model`` on ``cfg.data``; written to ``cfg.output`` when given. Raises DataError/ValueError/OSError on bad input."""
    if not cfg.model or not cfg.data:
        raise ValueError("eval needs --model and --data")
    records, report = load_records(cfg.data, form=cfg.form, columns=cfg.columns, on_bad_record=cfg.on_bad_record, limit=cfg.limit)
    model, tokenizer, meta = load_reward_model(cfg.model, trust_remote_code=cfg.trust_remote_code)
    max_length = cfg.max_length or meta.get("max_length", 512)
    metrics = evaluate_records(model, tokenizer, records, cfg.batch_size, max_length, cfg.truncation_side, cfg.form, progress=True)
    result = {**metrics, "model": cfg.model, "data": report.summary(), "max_length": max_length, "versions": versions()}
    if cfg.output:
        Path(cfg.output).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(cfg.output), result)
        save_config(cfg, Path(cfg.output).with_suffix(".config.yaml"))
    return result
