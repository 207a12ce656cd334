"""Every kind of broken input (corpus.py) through every verb that reads records, in-process through the CLI.

49 kinds × 3 verbs (train, eval, score) = 147 runs, plus 49 kinds × 2 verbs (train, eval) with
``--on-bad-record skip`` = 98 runs: 245 in all. Data problems are found before the model is loaded, so each
failing run takes milliseconds; the few valid kinds train or score the tiny model on three records.

The contract, for each run: no traceback; a valid kind exits 0; any other kind exits non-zero with an
``error:`` line that names the file (and ``path:1``, its line, when the problem sits on one line of the file).
With ``--on-bad-record skip`` a line problem is a counted skip ("skipped 1" / "1 skipped"), after which nothing
is left and that, too, is a clear error naming the file.
"""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from badinput.corpus import LINE_KINDS, VALID, _kinds, write_corpus
from rewardlab.cli import app

KINDS = sorted(_kinds())
VERBS = ("train", "eval", "score")
runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    return write_corpus(tmp_path_factory.mktemp("badinput"))


def invoke(verb: str, path, model, out, *extra: str):
    args = {"train": ["train", "--data", path, "--model", model, "--output", out / "rm", "--max-length", 32],
            "eval": ["eval", "--model", model, "--data", path, "--bootstrap", 0],
            "score": ["score", "--model", model, "--input", path, "--output", out / "scored.jsonl"]}[verb]
    return runner.invoke(app, [str(a) for a in args + ["--no-progress", *extra]])


def check_no_traceback(result) -> None:
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def check_names_file(result, path, kind: str) -> None:
    assert result.exit_code != 0, f"{kind}: exit 0 on bad input\n{result.output}"
    assert "error:" in result.output, result.output
    assert str(path) in result.output, f"{kind}: the error does not name {path}\n{result.output}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("verb", VERBS)
def test_bad_input(verb, kind, corpus, tiny_llama, tmp_path):
    path = corpus[kind]
    result = invoke(verb, path, tiny_llama, tmp_path)
    check_no_traceback(result)
    if kind in VALID[verb]:
        assert result.exit_code == 0, result.output
        return
    check_names_file(result, path, kind)
    if kind in LINE_KINDS:
        assert f"{path}:1" in result.output, f"{kind}: the error does not name the line\n{result.output}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("verb", ("train", "eval"))
def test_bad_input_skipped(verb, kind, corpus, tiny_llama, tmp_path):
    path = corpus[kind]
    result = invoke(verb, path, tiny_llama, tmp_path, "--on-bad-record", "skip")
    check_no_traceback(result)
    if kind in VALID[verb]:
        assert result.exit_code == 0, result.output
        return
    check_names_file(result, path, kind)  # every bad kind holds only bad records: nothing is left after the skips
    if kind in LINE_KINDS:
        assert re.search(r"skipped [1-9]|[1-9]\d* skipped", result.output), result.output
