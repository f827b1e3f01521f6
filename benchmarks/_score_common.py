"""Shared by bench_score.py and bench_numpy_latency.py: the NSL-KDD model and a results file.

The model is the default method, AnoEANPlus (latent 16, encoder 128-64-32), fitted with
``anoean fit``'s library entry point on a 20,000-row sample of KDDTrain+ for a few epochs: its
speed is what matters here, not its accuracy (which is reported anyway).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs/benchmarks/score.md"
HEADER = (
    "# Benchmark: scoring at scale and single-row latency\n\n"
    "Produced by `benchmarks/bench_score.py` and `benchmarks/bench_numpy_latency.py` "
    "(do not edit by hand; each script rewrites its own section).\n"
)


def default_data_home() -> str:
    return os.environ.get("ANOEAN_DATA", str(ROOT.parent / "shared/datasets"))


def nsl_kdd_table(data_home: str) -> pa.Table:
    """KDDTrain+ features plus its ``label`` column (``normal`` or the attack name)."""
    from anoean.data.datasets import load_nsl_kdd

    d = load_nsl_kdd(data_home=data_home, subset="train", download=False)
    return d.features.append_column("label", pa.array(d.attack))


def fit_model(table: pa.Table, out: Path, *, rows: int = 20000, epochs: int = 3) -> dict:
    """Fit and save the benchmark model; returns its validation metrics and feature count."""
    from anoean.serve.fit import fit_pipeline
    from anoean.serve.pipeline import save_pipeline

    rng = np.random.default_rng(0)
    sample = table.take(np.sort(rng.choice(table.num_rows, rows, replace=False)))
    rep = fit_pipeline(
        sample,
        label_column="label",
        normal_values=["normal"],
        params={"max_epochs": epochs, "device": "cpu"},
        random_state=0,
    )
    save_pipeline(rep.pipeline, out)
    return {**rep.val_metrics, "n_features": rep.pipeline.meta["n_features"]}


def update_section(name: str, text: str, path: Path = RESULTS) -> None:
    """Replace (or append) the section between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    old = path.read_text(encoding="utf-8") if path.is_file() else HEADER
    if start in old:
        new = re.sub(
            re.escape(start) + r".*?" + re.escape(end) + r"\n?", lambda _: block, old, flags=re.S
        )
    else:
        new = old.rstrip() + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new, encoding="utf-8")


def machine_line() -> str:
    import platform
    import time

    import numpy
    import pyarrow

    try:
        import onnxruntime

        ort = f", onnxruntime {onnxruntime.__version__}"
    except ImportError:
        ort = ""
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU(s) visible; Python "
        f"{platform.python_version()}, numpy {numpy.__version__}, pyarrow {pyarrow.__version__}"
        f"{ort}; {time.strftime('%Y-%m-%d %H:%M')}"
    )
