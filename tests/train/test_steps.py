"""The three ways a training step runs (rewardlab.train.steps), each against the plain one: the same loss and
gradient; and which one a run gets."""

from __future__ import annotations

import pytest
import torch

from rewardlab.losses.catalogue import get_loss, get_regularizer, resolve_hparams
from rewardlab.models.reward_model import RewardModel
from rewardlab.train.steps import LossSetup, choose_step, chunked_step, plain_step, split_backward_step
from rewardlab.types import PairBatch, PointBatch, RankBatch


def _ids(n: int, T: int, g) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.randint(3, T + 1, (n,), generator=g)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).long()  # right padding, rows of different lengths
    return torch.randint(5, 60, (n, T), generator=g) * mask, mask


def _batch(form: str, B: int = 8, T: int = 12):
    g = torch.Generator().manual_seed(1)
    if form == "pairs":
        return PairBatch(*_ids(2 * B, T, g), torch.zeros(B), torch.zeros(B, dtype=torch.bool))
    if form == "rankings":
        K = 3
        valid = torch.ones(B, K, dtype=torch.bool)
        valid[0, 2] = False
        return RankBatch(*_ids(B * K, T, g), torch.rand(B, K, generator=g), valid)
    return PointBatch(*_ids(B, T, g), torch.rand(B, generator=g))


def _loss_and_grads(rm, fn):
    rm.zero_grad(set_to_none=True)
    loss = fn(lambda loss, last: loss.backward()).loss
    return float(loss.detach()), [p.grad.clone() for p in rm.parameters() if p.grad is not None]


@pytest.fixture
def rm(tiny_llama):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = RewardModel(AutoModelForSequenceClassification.from_pretrained(tiny_llama)).train()
    for m in model.modules():  # dropout off: the two runs must see the same network
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


@pytest.mark.parametrize("loss_name,form,regs", [("bt", "pairs", {"center": 0.1}), ("plackett_luce", "rankings", {"l2_reward": 0.1}),
                                                 ("mse", "ratings", {"l2_reward": 0.1})])
def test_chunked_step_equals_plain_step(rm, loss_name, form, regs):
    spec = get_loss(loss_name)
    setup = LossSetup(spec, resolve_hparams(spec, {}), [(get_regularizer(n), c, {}) for n, c in regs.items()], form)
    batch = _batch(form)
    loss_a, grads_a = _loss_and_grads(rm, lambda bw: plain_step(rm, batch, bw, setup))
    loss_b, grads_b = _loss_and_grads(rm, lambda bw: chunked_step(rm, batch, bw, setup, 4))
    assert loss_b == pytest.approx(loss_a, rel=1e-5, abs=1e-6)
    assert len(grads_a) == len(grads_b) > 0
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_split_backward_step_calls_backward_once_per_group_and_last_only_at_the_end(rm):
    setup = LossSetup(get_loss("bt"), {}, [], "pairs")
    calls = []
    split_backward_step(rm, _batch("pairs"), lambda loss, last: calls.append(last) or loss.backward(), setup, 3, 3)
    assert calls == [False, False, True]


def test_a_batch_of_long_rows_goes_backward_in_more_groups_with_the_same_gradient(rm):
    """group_cells: groups are added until each holds about that many attention cells (Σ length² over the batch's
    16 rows of up to 12 tokens), at most one pair a group; a batch under 2 × the budget keeps its 2 groups; the
    gradient is the plain step's."""
    setup = LossSetup(get_loss("bt"), {}, [], "pairs")
    batch = _batch("pairs")
    cells = int((batch.attention_mask.sum(-1) ** 2).sum())

    def backward_calls(group_cells: int) -> list:
        calls = []
        split_backward_step(rm, batch, lambda loss, last: calls.append(last) or loss.backward(), setup, 2, 4, group_cells=group_cells)
        return calls

    calls = backward_calls(cells // 5)
    assert len(calls) == 6 and calls[-1] and not any(calls[:-1])  # ceil(5.x) groups
    assert len(backward_calls(cells // 2)) == 2
    assert len(backward_calls(1)) == 8  # one pair a group at most
    loss_a, grads_a = _loss_and_grads(rm, lambda bw: plain_step(rm, batch, bw, setup))
    loss_b, grads_b = _loss_and_grads(rm, lambda bw: split_backward_step(rm, batch, bw, setup, 2, 4, group_cells=cells // 5))
    assert loss_b == pytest.approx(loss_a, rel=1e-5, abs=1e-6)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_choose_step_picks_the_speed_path_once():
    pairs = LossSetup(get_loss("bt"), {}, [], "pairs")
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    step, chunks, groups = choose_step(pairs, 0, 0, cpu)  # auto on a CPU: 4 chunks, 2 groups (measured)
    assert (step.func, chunks, groups) == (split_backward_step, 4, 2)
    assert step.keywords["group_cells"] == 2**20  # and more groups for a batch of long rows
    assert choose_step(pairs, 0, 0, cpu, processes=2)[0].keywords["group_cells"] == 0  # every process runs as many forwards
    assert choose_step(pairs, 0, 2, cpu)[0].keywords["group_cells"] == 0  # a chosen count is kept
    step, chunks, groups = choose_step(pairs, 4, 1, cpu)
    assert (step.func, chunks, groups) == (chunked_step, 4, 1)
    step, chunks, groups = choose_step(pairs, 0, 0, cuda)  # a GPU wants one big forward and one backward
    assert (step.func, chunks, groups) == (plain_step, 1, 1)
    ranks = LossSetup(get_loss("plackett_luce"), {}, [], "rankings")
    assert choose_step(ranks, 0, 0, cpu)[0].func is chunked_step  # rankings never split by pairs


# --------------------------------------------------------------------------- the loop's guards


def _cfg(toy_data, tiny_llama, out, **kw):
    from rewardlab.config import TrainConfig

    return TrainConfig(data=str(toy_data["train"]), model=str(tiny_llama), output=str(out), loss="bt", epochs=1, batch_size=16,
                       max_length=48, eval_split=0.0, progress=False, mixed_precision="no", limit=96, **kw)


def _nan_on_call(monkeypatch, k: int):
    """The objective returns NaN on its k-th call (counting from 1), as a diverged loss would."""
    import rewardlab.train.steps as steps

    real, calls = steps.objective, []

    def objective(*args, **kw):
        calls.append(1)
        loss = real(*args, **kw)
        return loss * float("nan") if len(calls) == k else loss

    monkeypatch.setattr(steps, "objective", objective)


def test_a_nan_loss_stops_the_run_naming_the_update_and_keeping_the_last_checkpoint(toy_data, tiny_llama, tmp_path, monkeypatch):
    from rewardlab.checkpoint import checkpoint_steps
    from rewardlab.train.loop import NonFiniteError, train

    _nan_on_call(monkeypatch, 4)
    with pytest.raises(NonFiniteError, match=r"update 4 \(epoch 0, batch 3 of the epoch.*loss nan.*checkpoints/step-3"):
        train(_cfg(toy_data, tiny_llama, tmp_path / "run", save_every=1, backward_groups=1, length_chunks=1), log=lambda *a: None)
    assert checkpoint_steps(tmp_path / "run") == [2, 3] and not (tmp_path / "run" / "model.safetensors").exists()


def test_skip_nonfinite_drops_the_update_counts_it_and_finishes(toy_data, tiny_llama, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from rewardlab.train.loop import train

    _nan_on_call(monkeypatch, 2)
    meta = train(_cfg(toy_data, tiny_llama, tmp_path / "run", skip_nonfinite=True, backward_groups=1, length_chunks=1), log=lambda *a: None)
    assert [s["update"] for s in meta["train"]["skipped_nonfinite"]] == [2] and meta["update"] == 6  # 96 pairs / 16
    assert all(torch.isfinite(t).all() for t in load_file(tmp_path / "run" / "model.safetensors").values())


def test_an_output_folder_holding_a_run_is_refused_unless_overwrite_or_resume(toy_data, tiny_llama, tmp_path):
    from rewardlab.train.loop import train

    out = tmp_path / "run"
    train(_cfg(toy_data, tiny_llama, out, max_steps=2), log=lambda *a: None)
    with pytest.raises(ValueError, match="already holds a run .*--overwrite"):
        train(_cfg(toy_data, tiny_llama, out, max_steps=2), log=lambda *a: None)
    (out / "checkpoints" / "step-1").mkdir(parents=True)  # a stale checkpoint: --overwrite must not leave it for a later --resume
    assert train(_cfg(toy_data, tiny_llama, out, max_steps=2, overwrite=True), log=lambda *a: None)["final"]
    assert not (out / "checkpoints" / "step-1").exists()


def test_flag_combinations_that_would_do_nothing_are_refused():
    from rewardlab.config import TrainConfig

    with pytest.raises(ValueError, match="--form rankings does not fit --loss bt"):
        TrainConfig(loss="bt", form="rankings")
    with pytest.raises(ValueError, match="--save-every does nothing with --lora-r"):
        TrainConfig(lora_r=8, save_every=5)
    with pytest.raises(ValueError, match="give one"):
        TrainConfig(resume=True, overwrite=True)
    assert TrainConfig(loss="bce_mse", form="labels").form == "labels"


def test_throughput_counts_records_not_padding_rows():
    from rewardlab.train.loop import RunningStats
    from rewardlab.train.steps import StepOutput

    stats, zero = RunningStats(), torch.zeros((), dtype=torch.long)
    out = StepOutput(torch.tensor(1.0), zero, zero)
    stats.add(out, _batch("rankings", B=8))  # 8 prompts × 3 rows, one of them padding
    stats.add(out, _batch("pairs", B=8))  # 8 pairs, 16 rows
    stats.add(out, _batch("ratings", B=8))
    assert stats.examples == 24
