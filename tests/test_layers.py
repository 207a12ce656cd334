"""The package's layers: every import of a rewardlab module points down (or stays inside its own package).

   11  __main__                                        python -m rewardlab
   10  cli                                             the command line
    9  analysis, optimize, serve                       verbs built on the layers below
    8  rewards, score                                  rewards for optimisation; the score verb
    7  train                                           the training loop
    6  eval                                            metrics, evaluation runs, reports of evaluation
    5  explain                                         attributions, reward along a response, probes (eval embeds them)
    4  config                                          typed configs (checked against the catalogues below)
    3  models                                          the reward model, scoring beside it
    2  data, tasks                                     records, formats, tokenisation; the built-in task
    1  losses                                          pure loss functions (torch only)
    0  types, checkpoint, runtime, report, client,     shared pieces every layer may use (client: stdlib + httpx only)
       rewardlab

docs/architecture.md explains where new code goes. Imports inside functions count too: a deferred import
may put off a heavy import, never hide an upward one.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import rewardlab

LAYERS = [
    {"types", "checkpoint", "runtime", "report", "client", ""},
    {"losses"},
    {"data", "tasks"},
    {"models"},
    {"config"},
    {"explain"},
    {"eval"},
    {"train"},
    {"rewards", "score"},
    {"analysis", "optimize", "serve"},
    {"cli"},
    {"__main__"},
]
ROOT = Path(rewardlab.__file__).parent


def layer_of(part: str) -> int:
    found = [i for i, names in enumerate(LAYERS) if part in names]
    assert found, f"rewardlab.{part} is in no layer: add it to LAYERS in {__file__} (and docs/architecture.md)"
    return found[0]


def top_part(module: str) -> str:
    """'rewardlab.eval.metrics' → 'eval'; 'rewardlab' → ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def rewardlab_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of a rewardlab module in ``path``, relative imports resolved."""
    module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "rewardlab"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "rewardlab":
                # `from rewardlab import checkpoint` imports a module of the root package
                names = [f"{target}.{a.name}" for a in node.names] if target == "rewardlab" else [target]
                found += [(node.lineno, n) for n in names]
    return found


def violations() -> list[str]:
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        own = top_part(".".join(path.relative_to(ROOT.parent).with_suffix("").parts))
        for line, target in rewardlab_imports(path):
            other = top_part(target)
            if other in ("", own):
                continue
            if layer_of(other) >= layer_of(own):
                bad.append(f"{path.relative_to(ROOT.parent)}:{line}: {own} (layer {layer_of(own)}) imports {target} (layer {layer_of(other)})")
    return bad


def test_every_import_points_down():
    assert violations() == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The checker itself: a models module importing train is reported, with its line."""
    fake = tmp_path / "rewardlab"
    (fake / "models").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "models" / "x.py").write_text("import torch\n\ndef f():\n    from rewardlab.train.loop import train\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake)
    assert violations() == ["rewardlab/models/x.py:4: models (layer 3) imports rewardlab.train.loop (layer 7)"]
