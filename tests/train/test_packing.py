"""Padding-free (packed) training (``RewardModel.forward(packed=True)``, ``--packing``): the padded batch's rewards,
loss and gradients from one row per forward with position ids restarting at 0; refused where it cannot be that."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from rewardlab.losses.catalogue import get_loss, get_regularizer
from rewardlab.models.reward_model import RewardModel, packing_plan, reward_positions, set_attributes
from rewardlab.train.steps import LossSetup, chunked_step, plain_step, resolve_packing, split_backward_step
from rewardlab.types import PairBatch

pytestmark = pytest.mark.usefixtures("one_thread")


def _rows(n: int, T: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) (n, T): right-padded rows of different lengths (one of length 1, one full), pad id 0."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, T, (n,), generator=g)
    lengths[0], lengths[-1] = 1, T
    mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
    return torch.randint(5, 60, (n, T), generator=g) * mask, mask


def _left(t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Right padding moved to the left of each row."""
    return torch.stack([row.roll(int(len(m) - m.sum())) for row, m in zip(t, mask)])


def _rm(path, **kw) -> RewardModel:
    torch.manual_seed(0)
    model = RewardModel(AutoModelForSequenceClassification.from_pretrained(path, **kw))
    for m in model.modules():  # dropout off: padded and packed runs must see the same network
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


@pytest.fixture
def rm(tiny_llama):
    return _rm(tiny_llama).train()


def test_packing_plan_on_a_hand_made_batch():
    ids = torch.tensor([[5, 6, 7, 0],    # right padding
                        [5, 6, 0, 0],    # an appended EOS that is the pad token (mask 1): read before it, and dropped
                        [0, 5, 6, 7],    # left padding
                        [0, 0, 0, 0]])   # a ranking's padding row: one pad token, no real one
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0], [0, 1, 1, 1], [1, 0, 0, 0]])
    last = reward_positions(ids, mask, pad_id=0)
    assert last.tolist() == [2, 1, 3, 0]
    tokens, positions, ends = packing_plan(mask, last)
    assert tokens.tolist() == [0, 1, 2, 4, 5, 9, 10, 11, 12]  # indices into the flattened (4 * 4) rows
    assert positions.tolist() == [0, 1, 2, 0, 1, 0, 1, 2, 0]
    assert ends.tolist() == [2, 4, 7, 8]
    assert ids.flatten()[tokens][ends].tolist() == [7, 6, 7, 0]  # each row's reward token


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_packed_rewards_equal_the_padded_ones_on_either_padding_side(tiny_models, arch):
    rm = _rm(tiny_models[arch]).eval()
    ids, mask = _rows(7, 16)
    with torch.no_grad():
        padded = rm(ids, mask, return_hidden=True)
        for side in (lambda t: t, lambda t: _left(t, mask)):
            packed = rm(side(ids), side(mask), return_hidden=True, packed=True)
            torch.testing.assert_close(packed.rewards, padded.rewards, rtol=0, atol=1e-5)
            torch.testing.assert_close(packed.hidden, padded.hidden, rtol=0, atol=1e-5)


def test_packed_attributes_of_a_multi_attribute_head(tiny_llama):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_llama, id2label=dict(enumerate("abc")), ignore_mismatched_sizes=True)
    set_attributes(model.config, list("abc"), [0.5, 0.3, 0.2])
    rm = RewardModel(model).eval()
    ids, mask = _rows(5, 12)
    with torch.no_grad():
        padded, packed = rm(ids, mask), rm(ids, mask, packed=True)
    torch.testing.assert_close(packed.attributes, padded.attributes, rtol=0, atol=1e-5)
    torch.testing.assert_close(packed.rewards, padded.rewards, rtol=0, atol=1e-5)


def _loss_and_grads(rm, fn):
    rm.zero_grad(set_to_none=True)
    loss = fn(lambda loss, last: loss.backward()).loss
    return float(loss.detach()), {n: p.grad.clone() for n, p in rm.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("step", ["plain", "chunked", "groups"])
def test_packed_steps_give_the_padded_loss_and_gradients(rm, step):
    spec = get_loss("bt")
    setup = LossSetup(spec, {}, [(get_regularizer("center"), 0.1, {})], "pairs")
    B = 6
    ids, mask = _rows(2 * B, 14, seed=3)
    batch = PairBatch(ids, mask, torch.zeros(B), torch.zeros(B, dtype=torch.bool))
    run = {"plain": lambda bw, p: plain_step(rm, batch, bw, setup, packed=p),
           "chunked": lambda bw, p: chunked_step(rm, batch, bw, setup, 3, packed=p),
           "groups": lambda bw, p: split_backward_step(rm, batch, bw, setup, 2, 4, packed=p)}[step]
    loss_a, grads_a = _loss_and_grads(rm, lambda bw: plain_step(rm, batch, bw, setup))  # padded, one forward
    loss_b, grads_b = _loss_and_grads(rm, lambda bw: run(bw, True))
    assert loss_b == pytest.approx(loss_a, abs=1e-5)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) == len(list(rm.parameters()))
    for name, g in grads_a.items():
        torch.testing.assert_close(grads_b[name], g, rtol=0, atol=1e-5, msg=name)


def test_packing_is_refused_where_it_cannot_give_the_padded_rewards(tiny_models):
    bert = _rm(tiny_models["bert"]).eval()
    ids, mask = _rows(3, 8)
    with pytest.raises(ValueError, match="needs pooling .last_token.*an encoder .it attends in both directions"):
        bert(ids, mask, packed=True)
    with pytest.raises(ValueError, match="--packing on: packing needs pooling .last_token."):
        resolve_packing("on", torch.device("cpu"), bert)
    assert resolve_packing("auto", torch.device("cuda"), bert) is False
    llama = _rm(tiny_models["llama"]).eval()
    llama.model.config._attn_implementation = "paged|sdpa"
    with pytest.raises(ValueError, match="'paged\\|sdpa' does not read packed sequences"):
        llama(ids, mask, packed=True)


def test_a_backbone_that_lets_packed_sequences_see_each_other_is_refused_at_its_first_packed_forward(rm, monkeypatch):
    from transformers import masking_utils

    monkeypatch.setattr(masking_utils, "find_packed_sequence_indices", lambda position_ids: None)  # one causal mask over the row
    ids, mask = _rows(4, 10)
    with pytest.raises(ValueError, match="packed rewards differ from the padded forward's .* use --packing off"):
        rm(ids, mask, packed=True)
    assert rm.training  # the check ran in eval mode and gave the mode back


def test_auto_packs_only_on_cuda_with_flash_attention():
    def stub(attn):
        config = SimpleNamespace(_attn_implementation=attn, is_causal=True)
        return SimpleNamespace(model=SimpleNamespace(config=config), config=config, pooling="last_token")

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_packing("auto", cuda, stub("flash_attention_2")) is True
    assert resolve_packing("auto", cuda, stub("sdpa")) is False
    assert resolve_packing("auto", cpu, stub("sdpa")) is False
    assert resolve_packing("on", cpu, stub("sdpa")) is True and resolve_packing("off", cuda, stub("flash_attention_2")) is False


def test_cli_train_with_packing_on_records_it(toy_data, tiny_llama, tmp_path):
    from typer.testing import CliRunner

    from rewardlab.cli import app

    out = tmp_path / "rm"
    args = ["train", "--data", toy_data["train"], "--model", tiny_llama, "--output", out, "--loss", "bt", "--limit", 48,
            "--batch-size", 8, "--max-steps", 3, "--max-length", 48, "--eval-split", 0.0, "--mixed-precision", "no",
            "--no-progress", "--packing", "on", "--attn-implementation", "eager"]
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "rewardlab.json").read_text())
    assert meta["final"] and meta["update"] == 3 and meta["packing"] is True
    assert meta["config"]["attn_implementation"] == "eager"  # packing with eager attention (the masks above: sdpa)
    assert meta["config"]["packing"] == "on" and (meta["length_chunks"], meta["backward_groups"]) == (4, 2)  # composes with both
