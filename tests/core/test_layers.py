"""The layers of docs/architecture.md hold: no import cycle (function-level imports
included), each layer imports only the layers below it, and the scoring path imports
neither torch nor scikit-learn."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

#: layer -> the anoean layers it must never import (docs/architecture.md, "Who may import what")
FORBIDDEN = {
    "core": {"nn", "training", "models", "data", "serve", "distributed", "experiments", "cli"},
    "data": {"nn", "training", "models", "serve", "distributed", "experiments", "cli"},
    "nn": {"training", "models", "data", "serve", "distributed", "experiments", "cli"},
    "training": {"models", "data", "serve", "distributed", "experiments", "cli"},
    "models": {"serve", "distributed", "experiments", "cli", "data"},
    "serve": {"distributed", "experiments", "cli"},
    "distributed": {"nn", "training", "models", "experiments", "cli"},
    "experiments": {"cli"},
}


def _modules() -> dict[str, Path]:
    mods = {}
    for f in SRC.rglob("*.py"):
        parts = list(f.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def _imports() -> dict[str, set[str]]:
    """module -> the anoean modules it imports, anywhere in its body."""
    mods = _modules()

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        for node in ast.walk(ast.parse(f.read_text())):
            targets: list[str | None] = []
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("anoean"):
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    targets.append(full if full in mods else known(str(node.module)))
            elif isinstance(node, ast.Import):
                targets += [known(a.name) for a in node.names if a.name.startswith("anoean")]
            edges[m] |= {t for t in targets if t and t != m}
    return edges


def test_no_import_cycle_even_behind_function_level_imports() -> None:
    edges = _imports()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(t) :], t]))
            if t not in state:
                visit(t)
        path.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_each_layer_imports_only_the_layers_below_it() -> None:
    bad = []
    for m, targets in _imports().items():
        parts = m.split(".")
        layer = parts[1] if len(parts) > 1 else None
        for t in targets:
            t_parts = t.split(".")
            t_layer = t_parts[1] if len(t_parts) > 1 else None
            if layer in FORBIDDEN and t_layer in FORBIDDEN[layer]:
                bad.append(f"{m} imports {t}")
    assert not bad, bad


def _fresh(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(SRC)})


def test_the_scoring_path_imports_neither_torch_nor_sklearn() -> None:
    _fresh(
        "import sys, anoean.export, anoean.serve.engine, anoean.serve.pipeline\n"
        "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules, sys.modules.keys()"
    )


def test_the_kernel_baselines_do_not_import_torch() -> None:
    _fresh(
        "import sys\nfrom anoean.baselines import OCSVM, SVM\nOCSVM(); SVM()\n"
        "assert 'torch' not in sys.modules"
    )
