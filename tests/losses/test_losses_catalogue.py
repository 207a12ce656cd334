"""The catalogue: names, errors that list the known names, defaults == function keyword defaults,
call conventions by family, and the purity of the losses package (imports only torch / stdlib)."""

import ast
import inspect
from pathlib import Path

import pytest

from rewardlab.losses import LOSSES, REGULARIZERS, LossSpec, get_loss, get_regularizer, resolve_hparams
from rewardlab.losses import pairwise

LOSS_DIR = Path(__file__).resolve().parents[2] / "rewardlab" / "losses"
EXPECTED_LOSSES = ["bt", "bt_margin", "bt_scaled", "label_smoothing", "robust", "focal", "hinge", "squared", "ties",
                   "adaptive_margin", "kwise_bt", "plackett_luce", "infonce", "mse", "bce", "focal_bce", "bce_mse"]
EXPECTED_REGS = ["center", "l2_reward", "triplet", "length_decorrelation", "odin"]
DATA_ARGS = {"pairwise": ["r_chosen", "r_rejected", "margin", "tie"], "listwise": ["rewards", "ranks", "valid"],
             "pointwise": ["rewards", "target"]}


def test_catalogue_names():
    assert list(LOSSES) == EXPECTED_LOSSES
    assert list(REGULARIZERS) == EXPECTED_REGS
    for table in (LOSSES, REGULARIZERS):
        for key, spec in table.items():
            assert spec.name == key and spec.paper and spec.formula


def test_unknown_loss_lists_known_names():
    with pytest.raises(ValueError) as e:
        get_loss("x")
    assert str(e.value).startswith("unknown loss 'x'; known: bt, bt_margin, bt_scaled, ")
    assert all(n in str(e.value) for n in EXPECTED_LOSSES)


def test_unknown_regularizer_lists_known_names():
    with pytest.raises(ValueError, match="unknown regularizer 'bt'; known: center, l2_reward, triplet, "
                                         "length_decorrelation, odin"):
        get_regularizer("bt")


def test_get_returns_spec():
    assert get_loss("robust") is LOSSES["robust"] and get_regularizer("center") is REGULARIZERS["center"]


def test_resolve_hparams_merges_and_rejects_unknown_keys():
    spec = get_loss("ties")
    assert resolve_hparams(spec, {"model": "davidson"}) == {"model": "davidson", "theta": 2.0, "nu": 1.0}
    assert resolve_hparams(spec, None) == spec.defaults
    with pytest.raises(ValueError, match="unknown hyperparameter.*'beta'.*valid: model, theta, nu"):
        resolve_hparams(spec, {"beta": 1})
    with pytest.raises(ValueError, match="no hyperparameters"):
        resolve_hparams(get_loss("bt"), {"alpha": 0.1})


@pytest.mark.parametrize("name", EXPECTED_LOSSES + EXPECTED_REGS)
def test_defaults_match_function_keyword_defaults(name):
    """spec.defaults == the keyword-only arguments of spec.fn with their defaults (introspection)."""
    spec = LOSSES.get(name) or REGULARIZERS[name]
    params = inspect.signature(spec.fn).parameters.values()
    kw_only = {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert kw_only == spec.defaults
    assert resolve_hparams(spec, {}) == spec.defaults


@pytest.mark.parametrize("name", EXPECTED_LOSSES)
def test_loss_call_convention(name):
    """Tensor arguments by family; every pairwise loss takes margin and tie (default None); inputs ⊆ them."""
    spec = LOSSES[name]
    params = [p for p in inspect.signature(spec.fn).parameters.values() if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    assert [p.name for p in params] == DATA_ARGS[spec.family]
    if spec.family == "pairwise":
        assert params[2].default is None and params[3].default is None
        assert set(spec.inputs) <= {"margin", "tie"}
    else:
        assert spec.inputs == ()


@pytest.mark.parametrize("name", EXPECTED_REGS)
def test_regularizer_inputs_are_its_tensor_arguments(name):
    """The trainer calls fn(**{k: available[k] for k in spec.inputs}): inputs = the non-keyword-only args."""
    spec = REGULARIZERS[name]
    params = [p.name for p in inspect.signature(spec.fn).parameters.values()
              if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    assert tuple(params) == spec.inputs


def test_ties_flags():
    """Only `ties` models ties; it asks for the tie mask."""
    assert [n for n, s in LOSSES.items() if s.handles_ties] == ["ties"]
    assert LOSSES["ties"].inputs == ("tie",)


def test_losses_needing_margin_declare_it():
    assert {n for n, s in LOSSES.items() if "margin" in s.inputs} == {"bt_margin", "bt_scaled", "adaptive_margin"}
    assert LOSSES["hinge"].inputs == ()  # hinge uses its scalar m unless a margin tensor is passed explicitly


def test_spec_validates_family_and_form():
    with pytest.raises(ValueError, match="family"):
        LossSpec("x", pairwise.bt, "pairs", "pairs", {}, "p", "f")
    with pytest.raises(ValueError, match="data_form"):
        LossSpec("x", pairwise.bt, "pairwise", "pair", {}, "p", "f")


def test_losses_package_imports_only_torch_and_stdlib():
    """rewardlab/losses is pure: absolute imports are limited to torch and a few stdlib modules; the only
    imports of rewardlab code are relative ones within the package and the batch types (``rewardlab.types``,
    which imports only torch) that the objective reads."""
    allowed = {"__future__", "math", "dataclasses", "typing", "torch", "rewardlab.types"}
    for path in LOSS_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {node.module if node.module.startswith("rewardlab") else node.module.split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{path.name} imports {roots - allowed}"


def test_regularizer_inputs_are_ones_the_trainer_provides():
    """rewardlab.train.loop offers rewards, hidden, r_chosen, r_rejected, lengths; odin also needs a length head."""
    provided = {"rewards", "hidden", "r_chosen", "r_rejected", "lengths", "length_rewards"}
    for spec in REGULARIZERS.values():
        assert set(spec.inputs) <= provided, spec.name


def test_paper_index_lists_every_entry():
    """docs/papers.md has a row for every loss and regulariser."""
    index = (Path(__file__).resolve().parents[2] / "docs" / "papers.md").read_text()
    for name in EXPECTED_LOSSES + EXPECTED_REGS:
        assert f"| `{name}` |" in index, name
