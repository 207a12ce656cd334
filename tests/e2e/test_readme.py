"""The README's snippets run as written: the quickstart in a scratch folder on a fresh start (after
`make install && source .venv/bin/activate`), each line through bash, and the loss-catalogue snippet;
plus `rewardlab sample-data`, which makes the quickstart's data, and every `python -m rewardlab…` entry
point's `--help`."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import rewardlab
from typer.testing import CliRunner

from rewardlab import config as C
from rewardlab.cli import app

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent
COMMAND_LIMIT_S = 600
"""A README command that runs longer than this is hung (the quickstart takes about two minutes in all)."""


def bash_blocks(section: str | None = None) -> list[str]:
    """The ```bash blocks of the README, or of its ``## section`` only."""
    text = README.read_text()
    if section is not None:
        text = re.search(rf"^## {re.escape(section)}.*?(?=^## |\Z)", text, re.S | re.M).group(0)
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def run_lines(block: str, cwd: Path) -> list[tuple[str, subprocess.CompletedProcess]]:
    """Run each command line of ``block`` through bash in ``cwd``, as a shell with .venv activated does; every
    one must exit 0 within COMMAND_LIMIT_S. Returns (line, its result) per command."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(VENV_BIN.parent)}
    done = []
    for line in block.splitlines():
        if not line.split("#")[0].strip():
            continue
        assert not line.rstrip().endswith("\\"), "one command a line, so each can be checked"
        start = time.perf_counter()
        proc = subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_LIMIT_S)
        took = time.perf_counter() - start
        assert proc.returncode == 0, f"{line}\nexit {proc.returncode} after {took:.0f} s\n{proc.stderr[-3000:]}"
        done.append((line, proc))
    return done


def last_json(stdout: str) -> dict:
    return json.loads([x for x in stdout.splitlines() if x.startswith("{")][-1])


def test_quickstart_runs_as_written(tmp_path):
    """The quickstart's set-up line names a make target that exists and the venv's `rewardlab`; its snippet then
    runs line by line in an empty folder, and each command writes what it says."""
    setup, snippet = (b for b in bash_blocks("Quickstart") if "make install" in b or "rewardlab sample-data" in b)
    assert setup.split("#")[0].strip() == "make install && source .venv/bin/activate"
    assert subprocess.run(["make", "-n", "install"], cwd=ROOT, capture_output=True).returncode == 0
    assert (VENV_BIN / "rewardlab").is_file()

    done = {shlex.split(line)[1]: proc for line, proc in run_lines(snippet, tmp_path)}
    assert list(done) == ["sample-data", "tiny-model", "train", "eval", "score"]
    counts = last_json(done["sample-data"].stdout)["records"]
    for form in ("pairs", "rankings", "ratings", "labels"):
        for split in ("train", "test"):
            lines = (tmp_path / "data" / form / f"{split}.jsonl").read_text().splitlines()
            assert len(lines) == counts[f"{form}/{split}.jsonl"] > 0
    assert (tmp_path / "data" / "README.md").is_file() and (tmp_path / "data" / C.CONFIG_FILE).is_file()
    assert (tmp_path / "tiny" / "config.json").is_file()
    assert (tmp_path / "rm" / "rewardlab.json").is_file() and "accuracy" in last_json(done["train"].stdout)
    accuracy = last_json(done["eval"].stdout)["accuracy"]
    assert 0.65 < accuracy, f"held-out accuracy {accuracy}; the README says near 0.77"
    assert (tmp_path / "eval" / "results.json").is_file() and (tmp_path / "eval" / "report.html").is_file()
    scored = [json.loads(x) for x in (tmp_path / "scored.jsonl").read_text().splitlines()]
    assert len(scored) == counts["ratings/test.jsonl"] and all(isinstance(r["reward"], float) for r in scored)


def test_loss_catalogue_snippet_runs(tmp_path):
    (snippet,) = (b for b in bash_blocks() if "rewardlab losses plot" in b)
    done = run_lines(snippet, tmp_path)
    assert "formula" in done[0][1].stdout
    assert (tmp_path / "loss-plots" / "losses.png").is_file()


def test_sample_data_verb(tmp_path):
    """The verb writes the forms asked for, prints the counts as one JSON line, saves its config beside them;
    run again from that config it writes the same bytes."""
    runner = CliRunner()
    out = tmp_path / "d"
    r = runner.invoke(app, ["sample-data", "--output", str(out), "--n-train", "7", "--n-test", "3", "--forms", "pairs,labels",
                            "--noise", "0.5", "--seed", "2"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"output": str(out), "records": {
        "pairs/train.jsonl": 7, "pairs/test.jsonl": 3, "labels/train.jsonl": 7, "labels/test.jsonl": 3}}
    cfg = C.load_config(C.SampleDataConfig, out / C.CONFIG_FILE)
    assert (cfg.n_train, cfg.n_test, cfg.forms, cfg.noise, cfg.seed) == (7, 3, ["pairs", "labels"], 0.5, 2)
    again = tmp_path / "again"
    r = runner.invoke(app, ["sample-data", "--config", str(out / C.CONFIG_FILE), "--output", str(again)])
    assert r.exit_code == 0, r.output
    for name in ("pairs/train.jsonl", "pairs/test.jsonl", "labels/train.jsonl", "labels/test.jsonl", "README.md"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    r = runner.invoke(app, ["sample-data", "--output", str(tmp_path / "x"), "--forms", "pairs,nope"])
    assert r.exit_code == 2 and "unknown form(s) 'nope'" in r.output


def test_every_python_m_entry_point_prints_help():
    """`python -m rewardlab…` for every __main__.py in the package: --help exits 0 with usage, no traceback
    (`python -m rewardlab.tasks --help` used to end in one)."""
    package = Path(rewardlab.__file__).parent
    modules = sorted(".".join(p.relative_to(package.parent).parent.parts) for p in package.rglob("__main__.py"))
    assert "rewardlab.tasks" in modules
    for module in modules:
        proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, f"{module}\n{proc.stderr[-2000:]}"
        assert "usage" in proc.stdout.lower(), module
    tasks = subprocess.run([sys.executable, "-m", "rewardlab.tasks", "--help"], capture_output=True, text=True, timeout=120)
    assert "rewardlab sample-data" in tasks.stdout
