"""Backward per group of pairs (`--backward-groups`): the same gradient as one backward of the whole batch."""

from __future__ import annotations

import pytest
import torch

from rewardlab.losses.catalogue import get_loss, get_regularizer, resolve_hparams
from rewardlab.models.reward_model import RewardModel
from rewardlab.train.steps import LossSetup, can_split_pairs, plain_step, resolve_backward_groups, split_backward_step
from rewardlab.types import PairBatch


def _batch(B: int = 6, T: int = 12, seed: int = 0) -> PairBatch:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, T + 1, (2 * B,), generator=g)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).long()  # right padding, rows of different lengths
    ids = torch.randint(5, 60, (2 * B, T), generator=g) * mask
    tie = torch.zeros(B, dtype=torch.bool)
    tie[1] = True  # one tie: losses that do not model ties drop it from the mean
    return PairBatch(ids, mask, torch.rand(B, generator=g) * 2, tie)


def _grads(model, fn) -> tuple[float, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = fn()
    return float(loss.detach()), [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("loss_name", ["bt", "bt_margin", "ties", "hinge"])
@pytest.mark.parametrize("groups", [2, 3])
def test_split_backward_equals_whole_batch_backward(tiny_llama, loss_name, groups):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    rm = RewardModel(AutoModelForSequenceClassification.from_pretrained(tiny_llama)).train()
    for m in rm.modules():  # dropout off: the two runs must see the same network
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    spec = get_loss(loss_name)
    hp = resolve_hparams(spec, {})
    regs = [(get_regularizer("center"), 0.1, {}), (get_regularizer("l2_reward"), 0.05, {})]
    batch = _batch()

    setup = LossSetup(spec, hp, regs, "pairs")

    def whole():
        return plain_step(rm, batch, lambda loss, last: loss.backward(), setup).loss

    def split():
        return split_backward_step(rm, batch, lambda loss, last: loss.backward(), setup, groups, 4).loss

    loss_a, grads_a = _grads(rm, whole)
    loss_b, grads_b = _grads(rm, split)
    assert loss_b == pytest.approx(loss_a, rel=1e-5, abs=1e-6)
    assert len(grads_a) == len(grads_b) > 0
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_only_splittable_objectives_split():
    bt, infonce = get_loss("bt"), get_loss("infonce")
    center, triplet = get_regularizer("center"), get_regularizer("triplet")
    assert can_split_pairs(bt, [(center, 0.1, {})], False, None)
    assert not can_split_pairs(bt, [(triplet, 0.1, {})], True, None)  # triplet pairs each chosen with another pair's
    assert not can_split_pairs(infonce, [], False, None)
    assert resolve_backward_groups(0, torch.device("cpu"), True) == 2  # auto: measured to pay on the CPU
    assert resolve_backward_groups(0, torch.device("cpu"), False) == 1
    assert resolve_backward_groups(0, torch.device("cuda"), True) == 1
    with pytest.raises(ValueError, match="backward_groups=2 needs a pairwise loss"):
        resolve_backward_groups(2, torch.device("cpu"), False)


def test_train_with_backward_groups_matches_one_backward(toy_data, tiny_llama, tmp_path):
    """End to end through the loop: two groups give the same weights as one backward (float tolerance)."""
    from safetensors.torch import load_file

    from rewardlab.config import TrainConfig
    from rewardlab.train.loop import train

    outs = {}
    for groups in (1, 2):
        cfg = TrainConfig(data=str(toy_data["train"]), model=str(tiny_llama), output=str(tmp_path / f"g{groups}"), loss="bt", epochs=1,
                          batch_size=16, max_length=48, eval_split=0.0, progress=False, mixed_precision="no", backward_groups=groups,
                          regularizers={"center": 0.01})
        meta = train(cfg, log=lambda *a: None)
        assert meta["backward_groups"] == groups
        outs[groups] = load_file(tmp_path / f"g{groups}" / "model.safetensors")
    for k in outs[1]:
        torch.testing.assert_close(outs[2][k], outs[1][k], rtol=1e-3, atol=2e-5)
