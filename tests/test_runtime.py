"""Process settings the command line applies (rewardlab.runtime)."""

from __future__ import annotations

import platform

import pytest

from rewardlab.runtime import tune_allocator


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_tune_allocator_applies_on_glibc_and_can_be_turned_off(monkeypatch):
    assert tune_allocator() is True  # every mallopt call accepted (a value above glibc's limits is refused: 0)
    monkeypatch.setenv("REWARDLAB_MALLOC_TUNING", "0")
    assert tune_allocator() is False


def test_the_command_line_tunes_the_allocator_first(monkeypatch):
    import rewardlab.cli as cli
    import rewardlab.runtime as runtime

    calls = []
    monkeypatch.setattr(runtime, "tune_allocator", lambda: calls.append("tuned") or True)
    monkeypatch.setattr(cli, "app", lambda: calls.append("app"))
    cli.main()
    assert calls == ["tuned", "app"]


def test_help_does_not_import_torch():
    """`rewardlab --help` and each verb's --help build the command line only: torch (seconds to import) is loaded
    by the commands that run a model, not by the CLI module, runtime or the optimize package."""
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from rewardlab.cli import app; "
            "r = [CliRunner().invoke(app, a) for a in (['--help'], ['train', '--help'], ['optimize', 'ppo', '--help'])]; "
            "assert all(x.exit_code == 0 for x in r), [x.output for x in r]; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
