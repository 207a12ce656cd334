"""The README's usage snippet runs as written (on the toy task's files, in a scratch folder)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from toydata import toy_pairs, write_jsonl
from typer.testing import CliRunner

from rewardlab.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_usage_snippet_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    snippet = next(b for b in blocks if "rewardlab tiny-model" in b)
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "train.jsonl", toy_pairs(300, seed=1))
    write_jsonl(tmp_path / "test.jsonl", toy_pairs(80, seed=2))
    write_jsonl(tmp_path / "answers.jsonl", [{"prompt": p["prompt"], "response": p["chosen"]} for p in toy_pairs(5, seed=3)])
    runner = CliRunner()
    for line in snippet.splitlines():
        command = line.split("#")[0].strip()
        if not command:
            continue
        args = shlex.split(command)
        assert args[0] == "rewardlab"
        r = runner.invoke(app, args[1:], catch_exceptions=False)
        assert r.exit_code == 0, f"{command}\n{r.output}"
    assert (tmp_path / "eval" / "results.json").is_file() and (tmp_path / "eval" / "report.html").is_file()
    assert (tmp_path / "scored.jsonl").read_text().count('"reward"') == 5
    assert (tmp_path / "loss-plots" / "losses.png").is_file()
