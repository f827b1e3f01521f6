"""The ADBench semi-supervised protocol on the 23 tabular datasets of ``../shared/adbench``.

For each dataset and seed (Han et al., "ADBench", NeurIPS 2022, semi-supervised setting):

1. a stratified subsample of ``--max-rows`` (10,000) rows when the dataset is larger;
2. a stratified 70/30 split into a training and a test part;
3. min-max scaling fitted on the training part (a constant column keeps its offset only);
4. the labels (y=1) of ceil(f x the training anomalies) are revealed, f = ``--label-fraction``
   (10% by default; 0 reveals none), chosen at random; every other training row gets y=0, so
   the unlabelled rows hide the remaining anomalies;
5. every method is fitted on the training part and scores the test part: AUC-PR (average
   precision) and AUROC, fit and score seconds.

``--split dev`` never touches the test part: it carves a stratified 30% of the training part
as a development test set (the same steps 3-4 on the remaining 70%). That is where the design
of AnoEANPlus was chosen (docs/benchmarks/adbench.md); the test part is for the final table.

One CSV row per run (``--out``); a run already in the CSV is skipped, so an interrupted
benchmark resumes where it stopped. ``--summary`` writes the Markdown summary (mean AUC-PR per
dataset and method, the mean over datasets, the average rank, the number of datasets where
each method is best, AUROC, the standard deviation over seeds and the fit and score times)
from whatever the CSV holds.

The peers come from PyPI with their libraries' defaults (``pip install -e '.[bench]'``, then
``pip install --no-deps deepod==0.4.1``): XGBOD, ECOD, KNN, LOF and DeepSVDD from pyod; DeepSAD,
DevNet and PReNet from deepod; a class-weighted RBF SVC, IsolationForest and OneClassSVM from
scikit-learn. The semi-supervised ones get (X, y); the unsupervised ones are fitted on the rows
with y=0 (the unlabelled rows, which still hide anomalies). The deep peers run on the CPU.

Examples::

    python benchmarks/adbench.py --seeds 5 --jobs 2 --out benchmarks/results/adbench_f10.csv \\
        --summary docs/benchmarks/adbench.md
    python benchmarks/adbench.py --datasets 14_glass,42_WBC --seeds 1 --quick --out /tmp/a.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_DATA = ROOT.parent / "shared" / "adbench"
FIELDS = [
    "dataset",
    "seed",
    "method",
    "label_fraction",
    "split",
    "status",
    "aucpr",
    "auroc",
    "fit_s",
    "score_s",
    "n_train",
    "n_test",
    "n_features",
    "n_labelled",
    "n_hidden",
    "test_anomaly_rate",
    "quick",
    "error",
    "commit",
    "versions",
    "config",
]
#: the methods of the semi-supervised table (label fraction > 0), in the table's order
SEMI_SUPERVISED = [
    "anoeanplus",
    "anoean",
    "xgbod",
    "deepsad",
    "devnet",
    "prenet",
    "svc",
    "iforest",
    "ocsvm",
]
#: the methods of the table without labels (label fraction 0)
UNSUPERVISED = [
    "anoeanplus",
    "anoean",
    "iforest",
    "ocsvm",
    "ecod",
    "knn",
    "lof",
    "deepsvdd",
]
#: methods that need at least one labelled anomaly
NEEDS_LABELS = {"xgbod", "deepsad", "devnet", "prenet", "svc"}


# ----------------------------------------------------------------------------- data
@dataclass
class Split:
    X_train: np.ndarray
    y_train: np.ndarray  # the revealed labels: 1 for a labelled anomaly, else 0
    X_test: np.ndarray
    y_test: np.ndarray  # the truth
    n_hidden: int  # anomalies among the y=0 training rows


def dataset_names(data_dir: Path) -> list[str]:
    names = [p.stem for p in data_dir.glob("*.npz")]
    return sorted(names, key=lambda n: int(n.split("_", 1)[0]) if n[0].isdigit() else 0)


def load_dataset(data_dir: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    path = data_dir / f"{name}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"no dataset {name!r} in {data_dir} (expected {path.name})")
    with np.load(path, allow_pickle=False) as f:
        X = np.asarray(f["X"], dtype=np.float64)
        y = np.asarray(f["y"]).astype(np.int64).ravel()
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: X has shape {X.shape} and y {y.shape}")
    if not np.isfinite(X).all():
        r, c = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(f"{name}: X has the value {X[r, c]} at row {r}, column {c}")
    if set(np.unique(y)) - {0, 1}:
        raise ValueError(f"{name}: y holds values other than 0 and 1: {np.unique(y)}")
    return X, y


def _stratified_take(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` row indices, each class in proportion (at least one row per class)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(y.shape[0])
    seed = int(rng.integers(2**31 - 1))
    take, _ = train_test_split(idx, train_size=n, stratify=y, random_state=seed)
    return np.sort(take)


def make_split(
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    label_fraction: float,
    max_rows: int = 10_000,
    split: str = "test",
) -> Split:
    """Steps 1-4 of the protocol (module docstring); ``split="dev"`` evaluates on a 30% of
    the training part instead of the test part."""
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(seed)
    if X.shape[0] > max_rows:
        keep = _stratified_take(y, max_rows, rng)
        X, y = X[keep], y[keep]
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=int(rng.integers(2**31 - 1))
    )
    if split == "dev":
        X_tr, X_te, y_tr, y_te = train_test_split(
            X_tr, y_tr, test_size=0.3, stratify=y_tr, random_state=int(rng.integers(2**31 - 1))
        )
    elif split != "test":
        raise ValueError(f"split must be 'test' or 'dev'; got {split!r}")
    lo, hi = X_tr.min(axis=0), X_tr.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    X_tr, X_te = (X_tr - lo) / span, (X_te - lo) / span
    anomalies = np.flatnonzero(y_tr == 1)
    n_lab = math.ceil(label_fraction * anomalies.size) if label_fraction > 0 else 0
    labelled = rng.choice(anomalies, size=n_lab, replace=False) if n_lab else np.empty(0, int)
    y_rev = np.zeros_like(y_tr)
    y_rev[labelled] = 1
    return Split(
        X_tr.astype(np.float32),
        y_rev,
        X_te.astype(np.float32),
        y_te,
        int(anomalies.size - n_lab),
    )


# -------------------------------------------------------------------------- methods
Scorer = Callable[[np.ndarray], np.ndarray]


def _epochs(quick: bool, default: int) -> int:
    return 2 if quick else default


def fit_method(
    name: str, X: np.ndarray, y: np.ndarray, seed: int, quick: bool
) -> tuple[Scorer, dict[str, Any]]:
    """Fit method ``name`` on (X, y); returns its scorer (higher = more anomalous) and the
    configuration it ran with (its non-default parameters)."""
    normal = X[y == 0]
    if name in ("anoean", "anoeanplus") or name.startswith("anoeanplus:"):
        import anoean

        cls = anoean.AnoEAN if name == "anoean" else anoean.AnoEANPlus
        kw: dict[str, Any] = {"random_state": seed, "device": "cpu"}
        if ":" in name:  # an ablation variant: anoeanplus:param=value;param=value
            for item in name.split(":", 1)[1].split(";"):
                key, _, value = item.partition("=")
                kw[key] = json.loads(value)
        if quick:
            kw["max_epochs"] = 2
        det = cls(**kw).fit(X, y)
        return det.anomaly_score, kw
    if name == "xgbod":
        from pyod.models.xgbod import XGBOD

        det = XGBOD(random_state=seed).fit(X, y)
        return det.decision_function, {"random_state": seed}
    if name in ("deepsad", "devnet", "prenet"):
        from deepod.models.tabular import DeepSAD, DevNet, PReNet

        cls = {"deepsad": DeepSAD, "devnet": DevNet, "prenet": PReNet}[name]
        kw = {"device": "cpu", "random_state": seed, "verbose": 0}
        if quick:
            kw["epochs"] = 2
        det = cls(**kw)
        det.fit(X, y)
        return det.decision_function, kw
    if name == "svc":
        from sklearn.svm import SVC

        det = SVC(kernel="rbf", class_weight="balanced").fit(X, y)
        return det.decision_function, {"kernel": "rbf", "class_weight": "balanced"}
    if name == "iforest":
        from sklearn.ensemble import IsolationForest

        det = IsolationForest(random_state=seed).fit(normal)
        return (lambda Z: -det.score_samples(Z)), {"random_state": seed}
    if name == "ocsvm":
        from sklearn.svm import OneClassSVM

        det = OneClassSVM().fit(normal)
        return (lambda Z: -det.score_samples(Z)), {}
    if name in ("ecod", "knn", "lof"):
        from pyod.models.ecod import ECOD
        from pyod.models.knn import KNN
        from pyod.models.lof import LOF

        det = {"ecod": ECOD, "knn": KNN, "lof": LOF}[name]().fit(normal)
        return det.decision_function, {}
    if name == "deepsvdd":
        from pyod.models.deep_svdd import DeepSVDD

        kw = {"n_features": X.shape[1], "random_state": seed, "verbose": 0}
        if quick:
            kw["epochs"] = 2
        det = DeepSVDD(**kw).fit(normal)
        return det.decision_function, kw
    raise ValueError(f"unknown method {name!r}")


# ----------------------------------------------------------------------------- runs
def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("anoean", "torch", "numpy", "scikit-learn", "pyod", "xgboost", "deepod"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _limit_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_one(
    data_dir: str,
    dataset: str,
    seed: int,
    method: str,
    label_fraction: float,
    split: str,
    max_rows: int,
    quick: bool,
    threads: int,
    commit: str,
) -> dict[str, Any]:
    """One (dataset, seed, method) run; never raises: a failure is a row with its error."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    _limit_threads(threads)
    X, y = load_dataset(Path(data_dir), dataset)
    s = make_split(X, y, seed, label_fraction, max_rows, split)
    row: dict[str, Any] = {
        "dataset": dataset,
        "seed": seed,
        "method": method,
        "label_fraction": label_fraction,
        "split": split,
        "n_train": s.X_train.shape[0],
        "n_test": s.X_test.shape[0],
        "n_features": s.X_train.shape[1],
        "n_labelled": int(s.y_train.sum()),
        "n_hidden": s.n_hidden,
        "test_anomaly_rate": round(float(s.y_test.mean()), 5),
        "quick": int(quick),
        "commit": commit,
        "versions": json.dumps(_versions(), sort_keys=True),
    }
    if method.split(":")[0] in NEEDS_LABELS and not s.y_train.any():
        return {**row, "status": "skipped", "error": "needs at least one labelled anomaly"}
    try:
        t0 = time.perf_counter()
        scorer, config = fit_method(method, s.X_train, s.y_train, seed, quick)
        t1 = time.perf_counter()
        scores = np.asarray(scorer(s.X_test), dtype=np.float64).ravel()
        t2 = time.perf_counter()
        if not np.isfinite(scores).all():
            bad = int(np.flatnonzero(~np.isfinite(scores))[0])
            raise ValueError(f"score of test row {bad} is {scores[bad]}")
        row.update(
            status="ok",
            aucpr=round(float(average_precision_score(s.y_test, scores)), 6),
            auroc=round(float(roc_auc_score(s.y_test, scores)), 6),
            fit_s=round(t1 - t0, 4),
            score_s=round(t2 - t1, 4),
            config=json.dumps(config, sort_keys=True, default=str),
        )
    except Exception as exc:  # recorded, so one failing peer does not stop the benchmark
        tb = traceback.format_exc(limit=3).strip().splitlines()[-1]
        row.update(status="error", error=f"{type(exc).__name__}: {exc}"[:500] or tb)
    return row


def _key(row: dict[str, Any]) -> tuple[str, int, str, float, str, int]:
    return (
        str(row["dataset"]),
        int(row["seed"]),
        str(row["method"]),
        float(row["label_fraction"]),
        str(row["split"]),
        int(row["quick"]),
    )


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def run_benchmark(
    *,
    data_dir: Path,
    datasets: list[str],
    methods: list[str],
    seeds: list[int],
    label_fraction: float,
    split: str,
    out: Path,
    max_rows: int = 10_000,
    quick: bool = False,
    jobs: int = 1,
    threads: int = 1,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run every (dataset, seed, method) not yet in ``out``; append each row as it ends."""
    done = {_key(r) for r in read_rows(out) if r.get("status") in ("ok", "skipped")}
    todo = [
        (d, s, m)
        for d in datasets
        for s in seeds
        for m in methods
        if (d, s, m, float(label_fraction), split, int(quick)) not in done
    ]
    log(f"{len(todo)} runs to do ({len(done)} already in {out})")
    out.parent.mkdir(parents=True, exist_ok=True)
    commit = _commit()
    new = not out.is_file() or out.stat().st_size == 0
    rows: list[dict[str, Any]] = []
    with out.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        args = [
            (str(data_dir), d, s, m, label_fraction, split, max_rows, quick, threads, commit)
            for d, s, m in todo
        ]

        def record(row: dict[str, Any]) -> None:
            writer.writerow({k: row.get(k, "") for k in FIELDS})
            f.flush()
            rows.append(row)
            log(
                f"{row['dataset']:>18} seed {row['seed']} {row['method']:<12} "
                f"{row['status']:<7} aucpr={row.get('aucpr', '')} fit={row.get('fit_s', '')}s "
                f"{row.get('error', '')}"
            )

        if jobs <= 1:
            for a in args:
                record(run_one(*a))
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(run_one, *a) for a in args]
                for fut in as_completed(futures):
                    record(fut.result())
    return rows


# -------------------------------------------------------------------------- summary
def _ok(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs that count: the successful ones, and the failed ones at chance level.

    A method that cannot be fitted on a dataset (PReNet with a single labelled anomaly, for
    example) gives its user no better ranking than a random one: such a run counts as
    AUC-PR = the test anomaly rate and AUROC = 0.5, and the table says how many there were.
    Skipped runs (a method that needs labels, at label fraction 0) do not count.
    """
    out = []
    for r in rows:
        if r.get("status") == "ok":
            out.append(r)
        elif r.get("status") == "error":
            out.append(
                {**r, "aucpr": r["test_anomaly_rate"], "auroc": 0.5, "fit_s": "", "score_s": ""}
            )
    return out


def summarise(rows: list[dict[str, Any]], methods: list[str] | None = None) -> dict[str, Any]:
    """Means over seeds per (dataset, method), then over the datasets every method ran on."""
    ok = _ok(rows)
    if methods is None:
        methods = sorted({r["method"] for r in ok})
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in ok:
        by.setdefault((r["dataset"], r["method"]), []).append(r)
    datasets = sorted(
        {d for d, m in by if m in methods},
        key=lambda n: int(n.split("_", 1)[0]) if n[0].isdigit() else 0,
    )
    # the datasets every method has a result on: the means and ranks compare like with like
    common = [d for d in datasets if all((d, m) in by for m in methods)]

    def mean(d: str, m: str, key: str) -> float:
        return float(np.mean([float(r[key]) for r in by[(d, m)]]))

    def std(d: str, m: str, key: str) -> float:
        return float(np.std([float(r[key]) for r in by[(d, m)]]))

    aucpr = {(d, m): mean(d, m, "aucpr") for d, m in by if m in methods}
    ranks: dict[str, list[float]] = {m: [] for m in methods}
    wins = dict.fromkeys(methods, 0.0)
    for d in common:
        vals = np.array([aucpr[(d, m)] for m in methods])
        from scipy.stats import rankdata

        r = rankdata(-vals)  # 1 = best, ties share the average rank
        for m, rk in zip(methods, r, strict=True):
            ranks[m].append(float(rk))
        best = np.flatnonzero(vals == vals.max())
        for b in best:
            wins[methods[b]] += 1.0 / best.size
    per_method = {}
    for m in methods:
        runs = [r for r in ok if r["method"] == m and r["dataset"] in common]
        timed = [r for r in runs if r["status"] == "ok"]
        failed = len(runs) - len(timed)
        per_method[m] = {
            "mean_aucpr": float(np.mean([aucpr[(d, m)] for d in common])) if common else None,
            "mean_auroc": float(np.mean([mean(d, m, "auroc") for d in common])) if common else None,
            "mean_std_aucpr": float(np.mean([std(d, m, "aucpr") for d in common]))
            if common
            else None,
            "avg_rank": float(np.mean(ranks[m])) if ranks[m] else None,
            "wins": wins[m],
            "median_fit_s": float(np.median([float(r["fit_s"]) for r in timed])) if timed else None,
            "median_score_s": float(np.median([float(r["score_s"]) for r in timed]))
            if timed
            else None,
            "runs": len(runs),
            "failed": failed,
        }
    return {
        "methods": methods,
        "datasets": datasets,
        "common": common,
        "aucpr": aucpr,
        "std": {(d, m): std(d, m, "aucpr") for d, m in by if m in methods},
        "seeds": {(d, m): len(by[(d, m)]) for d, m in by if m in methods},
        "per_method": per_method,
    }


def _fmt(v: float | None, scale: float = 100.0, digits: int = 1) -> str:
    return "–" if v is None else f"{v * scale:.{digits}f}"


def summary_markdown(rows: list[dict[str, Any]], methods: list[str], title: str) -> str:
    s = summarise(rows, methods)
    pm = s["per_method"]
    order = sorted(methods, key=lambda m: (pm[m]["avg_rank"] is None, pm[m]["avg_rank"] or 0))
    lines = [f"### {title}", ""]
    ok = _ok(rows)
    seeds = sorted({int(r["seed"]) for r in ok})
    lines.append(
        f"{len(s['common'])} datasets with every method, seeds {seeds}, "
        f"{sum(p['runs'] for p in pm.values())} runs."
    )
    lines += [
        "",
        "| method | mean AUC-PR | mean AUROC | avg rank | datasets best | mean std over seeds"
        " | median fit s | median score s | failed runs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in order:
        p = pm[m]
        lines.append(
            f"| {m} | {_fmt(p['mean_aucpr'])} | {_fmt(p['mean_auroc'])} | "
            f"{_fmt(p['avg_rank'], 1, 2)} | {p['wins']:g} | {_fmt(p['mean_std_aucpr'])} | "
            f"{_fmt(p['median_fit_s'], 1, 2)} | {_fmt(p['median_score_s'], 1, 3)} | "
            f"{p['failed']} |"
        )
    lines += ["", "AUC-PR (x100, mean over seeds) per dataset; the best of each row in bold:", ""]
    lines.append("| dataset | " + " | ".join(order) + " |")
    lines.append("|---|" + "---|" * len(order))
    for d in s["datasets"]:
        vals = [s["aucpr"].get((d, m)) for m in order]
        best = max((v for v in vals if v is not None), default=None)
        cells = []
        for v in vals:
            txt = _fmt(v)
            cells.append(f"**{txt}**" if v is not None and v == best else txt)
        mark = "" if d in s["common"] else " (incomplete)"
        lines.append(f"| {d}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def ablation_markdown(rows: list[dict[str, Any]], methods: list[str]) -> str:
    """Each AnoEANPlus variant against the default, on the datasets both ran on."""
    s = summarise(rows, methods)
    pm, base = s["per_method"], s["per_method"]["anoeanplus"]["mean_aucpr"]
    lines = [
        "Ablation: each variant differs from the default AnoEANPlus in the parameters named "
        f"(same datasets, splits and seeds; {len(s['common'])} datasets).",
        "",
        "| variant | mean AUC-PR | difference | mean AUROC | avg rank among these |",
        "|---|---|---|---|---|",
    ]
    for m in methods:
        p = pm[m]
        diff = "–" if base is None or p["mean_aucpr"] is None else _fmt(p["mean_aucpr"] - base)
        name = "anoeanplus (default)" if m == "anoeanplus" else f"`{m.split(':', 1)[1]}`"
        lines.append(
            f"| {name} | {_fmt(p['mean_aucpr'])} | {diff} | {_fmt(p['mean_auroc'])} | "
            f"{_fmt(p['avg_rank'], 1, 2)} |"
        )
    return "\n".join(lines) + "\n"


def write_section(path: Path, name: str, text: str) -> None:
    """Write ``text`` between the markers of section ``name`` in ``path`` (replacing what
    was there, keeping everything else), or append the section."""
    begin, end = f"<!-- adbench:{name}:begin -->", f"<!-- adbench:{name}:end -->"
    block = f"{begin}\n{text}{end}\n"
    old = path.read_text() if path.is_file() else ""
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        new = old + ("\n" if old and not old.endswith("\n\n") else "") + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


# ------------------------------------------------------------------------------ CLI
def _seeds(text: str) -> list[int]:
    if "," in text or "-" in text[1:]:
        out: list[int] = []
        for part in text.split(","):
            a, _, b = part.partition("-")
            out += list(range(int(a), int(b) + 1)) if b else [int(a)]
        return out
    return list(range(int(text)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("ANOEAN_ADBENCH", DEFAULT_DATA))
    )
    ap.add_argument("--datasets", default="all", help="comma-separated names, or 'all'")
    ap.add_argument("--methods", default=None, help="comma-separated (default: the table's)")
    ap.add_argument("--seeds", default="5", help="N (seeds 0..N-1), or a list: 0,3 or 0-4")
    ap.add_argument("--label-fraction", type=float, default=0.1)
    ap.add_argument("--split", choices=["test", "dev"], default="test")
    ap.add_argument("--max-rows", type=int, default=10_000)
    ap.add_argument("--quick", action="store_true", help="2 epochs for the neural methods")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "adbench.csv")
    ap.add_argument("--summary", type=Path, default=None, help="write the Markdown summary")
    ap.add_argument("--summary-only", action="store_true", help="summarise --out, run nothing")
    ap.add_argument("--section", default=None, help="name of the summary's section")
    ap.add_argument(
        "--also",
        type=Path,
        action="append",
        default=[],
        help="another CSV of runs to include in the summary (repeatable)",
    )
    args = ap.parse_args(argv)
    if not 0 <= args.label_fraction <= 1:
        ap.error(f"--label-fraction must be in [0, 1]; got {args.label_fraction}")
    if not args.data_dir.is_dir():
        ap.error(f"--data-dir {args.data_dir} is not a directory")
    available = dataset_names(args.data_dir)
    datasets = available if args.datasets == "all" else args.datasets.split(",")
    unknown = sorted(set(datasets) - set(available))
    if unknown:
        ap.error(f"unknown datasets {unknown}; available: {', '.join(available)}")
    default_methods = SEMI_SUPERVISED if args.label_fraction > 0 else UNSUPERVISED
    methods = args.methods.split(",") if args.methods else default_methods
    # numpy/BLAS threads of the worker processes (read when they import numpy)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))
    seeds = _seeds(args.seeds)
    if not args.summary_only:
        run_benchmark(
            data_dir=args.data_dir,
            datasets=datasets,
            methods=methods,
            seeds=seeds,
            label_fraction=args.label_fraction,
            split=args.split,
            out=args.out,
            max_rows=args.max_rows,
            quick=args.quick,
            jobs=args.jobs,
            threads=args.threads,
        )
    if args.summary is not None:
        rows = [
            r
            for path in (args.out, *args.also)
            for r in read_rows(path)
            if float(r["label_fraction"]) == args.label_fraction
            and r["split"] == args.split
            and int(r["quick"]) == int(args.quick)
            and r["dataset"] in datasets
            and int(r["seed"]) in seeds
        ]
        title = f"label fraction {args.label_fraction:g}, {args.split} split, seeds {seeds}"
        text = summary_markdown(rows, methods, title)
        variants = sorted({r["method"] for r in rows if r["method"].startswith("anoeanplus:")})
        if variants:
            text += "\n" + ablation_markdown(rows, ["anoeanplus", *variants])
        section = args.section or f"f{args.label_fraction:g}-{args.split}"
        write_section(args.summary, section, text)
        print(f"summary written to {args.summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
