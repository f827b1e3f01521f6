"""Run the paper's experiments: one JSON line per (experiment, case, method, seed).

Each run draws its split with :func:`anoean.data.protocol.make_split`, fits every configuration of
the method's grid on the training part, keeps the one with the best validation AUC-PR (as the
paper did), scores the test part and appends a record to ``runs.jsonl``: config, seed, split
description, metrics, timings, versions and git commit. Runs already in the file are skipped,
so an interrupted reproduction resumes where it stopped. Failed runs are logged to
``errors.jsonl`` and retried on the next call.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anoean.experiments import tables
from anoean.experiments.methods import (
    ALL_METHODS,
    GANS,
    METHODS,
    TABLE_ONLY,
    check_image_gan_budget,
    method_spec,
)
from anoean.experiments.store import ERRORS_FILE, RUNS_FILE, append_record, read_runs

logger = logging.getLogger("anoean")

#: the paper's experiments (the default)
EXPERIMENTS = ("nsl-kdd", "kdd99", "mnist-1vall", "mnist-nvm")
#: beyond the paper: Tables 1-2's setting with the test set drawn from the official test file
#: (KDDTest+, corrected), where attack types absent from the training file dominate
EXTRA_EXPERIMENTS = ("nsl-kdd-official", "kdd99-official")
#: image experiments, and the methods whose full-mode runs on them take hours on a CPU
IMAGE = ("mnist-1vall", "mnist-nvm")
SLOW_ON_IMAGES = GANS


@dataclass(frozen=True)
class Run:
    experiment: str
    case: str
    method: str
    seed: int
    split_name: str
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def run_id(self) -> str:
        return f"{self.experiment}/{self.case}/{self.method}/seed{self.seed}"


def nvm_normal_digits(n: int, seed: int) -> list[int]:
    """The n normal digits of an n-vs-m case: drawn by the seed, so that seeds average over
    digit combinations as well as over draws of the data."""
    rng = np.random.default_rng([seed, n, 1031])
    return sorted(int(d) for d in rng.choice(10, size=n, replace=False))


def mnist_options(normal: list[int]) -> dict[str, Any]:
    """Split options for MNIST cases.

    MNIST has about 7,000 images per digit (6,313 of digit 5). With one normal digit, 5,000
    training plus 1,360 test normals leave as few as 464 images (digit 4), so validation uses
    500 rows (400 normal) for every MNIST case, whatever n, to keep the protocol identical
    across n. Digit 5 alone cannot even give 5,000 + 1,360 + 400 normals: for it the training
    normals are lowered to 4,500 (recorded in the run's split options).
    """
    opts: dict[str, Any] = {"normal": list(normal), "n_val": 500}
    if list(normal) == [5]:
        opts["n_train_normal"] = 4500
    return opts


def cases(experiment: str, seed: int, *, quick: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """(case id, protocol split name, split options) for one experiment and seed."""
    if experiment in ("nsl-kdd", "kdd99"):
        return [("all", experiment, {})]
    if experiment in EXTRA_EXPERIMENTS:
        return [("all", experiment.removesuffix("-official"), {"test_file": "official"})]
    if experiment == "mnist-1vall":
        digits = (0, 1) if quick else tuple(range(10))
        return [(f"digit{d}", "mnist-1vall", mnist_options([d])) for d in digits]
    if experiment == "mnist-nvm":
        ns = (1, 3) if quick else (1, 2, 3, 4, 5)
        return [(f"n{n}", "mnist-nvm", mnist_options(nvm_normal_digits(n, seed))) for n in ns]
    known = ", ".join(EXPERIMENTS + EXTRA_EXPERIMENTS)
    raise ValueError(f"unknown experiment {experiment!r}; choose from {known}")


def _anomaly_groups(split: Any) -> np.ndarray:
    """Per test row: "normal", "seen" (an anomaly class allowed in training) or "unseen"."""
    y, c = split.y_test, split.c_test
    groups = np.full(y.shape[0], "normal", dtype=object)
    if split.name in ("nsl-kdd", "kdd99"):
        from anoean.data.datasets.kdd import attack_family

        classes = np.asarray(attack_family(c[y == 1]), dtype=object)
    else:
        classes = np.asarray(c[y == 1], dtype=object)
    seen = {str(x) for x in split.seen}
    groups[y == 1] = np.where([str(x) in seen for x in classes], "seen", "unseen")
    return groups


def metrics_by_group(split: Any, scores: np.ndarray) -> dict[str, Any]:
    """The metrics on the test normals plus only the seen, or only the unseen, anomalies:
    how well each kind of anomaly is detected. A group without test anomalies is left out;
    ``n_anomalies`` gives each group's size (AUC-PR depends on it; AUROC does not)."""
    from anoean.core.metrics import evaluate

    groups = _anomaly_groups(split)
    normal = groups == "normal"
    out: dict[str, Any] = {}
    for g in ("seen", "unseen"):
        rows = normal | (groups == g)
        n = int((groups == g).sum())
        if n:
            out[g] = {**evaluate(split.y_test[rows], scores[rows]), "n_anomalies": n}
    return out


def plan_runs(
    experiments: Sequence[str], methods: Sequence[str], seeds: Iterable[int], *, quick: bool
) -> list[Run]:
    for m in methods:
        if m not in ALL_METHODS:
            raise ValueError(f"unknown method {m!r}; choose from {', '.join(ALL_METHODS)}")
        images = [e for e in experiments if e in IMAGE]
        if m in TABLE_ONLY and images:
            raise ValueError(
                f"{m} scores tables only; leave it out of the image experiments {images}"
            )
    # seed-major order: an interrupted reproduction leaves whole seeds (every experiment,
    # case and method of seeds 0..k), which the tables can already report
    runs = []
    for seed in seeds:
        for exp in experiments:
            for case, split_name, options in cases(exp, seed, quick=quick):
                for m in methods:
                    runs.append(Run(exp, case, m, int(seed), split_name, options))
    return runs


def run_budget(run: Run, *, quick: bool, image_gan_budget: str) -> str | None:
    """The budget a run is done under (recorded as ``config["budget"]``): the one rule of
    :func:`method_spec`, so planning and running cannot disagree."""
    spec = method_spec(
        run.method, images=run.experiment in IMAGE, quick=quick, image_gan_budget=image_gan_budget
    )
    return spec.budget


def run_one(
    run: Run,
    *,
    quick: bool,
    data_home: str | None = None,
    image_gan_budget: str = "reduced",
    device: str = "cpu",
) -> dict[str, Any]:
    """Do one run and return its JSON record (nothing is written here); the neural methods
    train and score on ``device`` (recorded in the run's selected configuration)."""
    from anoean.core.metrics import evaluate
    from anoean.core.runtime import versions
    from anoean.data.protocol import make_split
    from anoean.experiments.search import select_hyperparameters

    t_start = time.perf_counter()
    split = make_split(run.split_name, seed=run.seed, data_home=data_home, **run.options)
    images = split.X_train.ndim > 2
    spec = method_spec(
        run.method, images=images, quick=quick, image_gan_budget=image_gan_budget, device=device
    )
    search = select_hyperparameters(
        spec.estimator_class(),
        spec.grid,
        split.X_train,
        split.y_train,
        split.X_val,
        split.y_val,
        base_params={**spec.fixed, "random_state": run.seed},
    )
    est, val_aucpr = search.best_estimator, search.best_score
    cfg = {**spec.fixed, **search.best_params}
    fit_s = next(r["fit_time_s"] for r in search.results if r["params"] == search.best_params)
    tried = search.results
    t0 = time.perf_counter()
    scores = est.anomaly_score(split.X_test)
    score_s = time.perf_counter() - t0
    return {
        "run_id": run.run_id,
        "experiment": run.experiment,
        "case": run.case,
        "method": run.method,
        "seed": run.seed,
        "quick": quick,
        "config": {"selected": cfg, "grid": spec.grid, "tried": tried, "budget": spec.budget},
        "split": split.to_dict(),
        "split_description": split.describe(),
        "metrics": evaluate(split.y_test, scores),
        "metrics_by_group": metrics_by_group(split, np.asarray(scores)),
        "val_aucpr": val_aucpr,
        "fit_s": fit_s,
        "score_s": score_s,
        "n_test": int(len(split.y_test)),
        "wall_s": time.perf_counter() - t_start,
        "epochs": len(getattr(est, "history_", []) or []) or None,
        "versions": versions(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _check_device(device: str) -> None:
    """Refuse a device this machine does not have before any run starts (each run would
    otherwise fail on its own)."""
    from anoean.core.runtime import resolve_device

    resolve_device(device)


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def reproduce(
    *,
    experiments: Sequence[str] = EXPERIMENTS,
    methods: Sequence[str] = METHODS,
    seeds: int = 5,
    jobs: int = 1,
    out: str | os.PathLike[str] = "results",
    quick: bool = False,
    data_home: str | None = None,
    progress: bool = True,
    write_report: bool = True,
    image_gan_budget: str = "reduced",
    device: str = "cpu",
) -> dict[str, Any]:
    """Run every missing run, append to ``out/runs.jsonl``, then write tables and figures.

    A run counts as done when ``runs.jsonl`` has its run id in the same mode (quick or full)
    and, for the GAN baselines on images, under the same ``image_gan_budget``.

    ``device`` ("cpu", "cuda", "cuda:N") is where the neural methods train and score: on a
    machine with a GPU, ``device="cuda"`` runs the whole reproduction there. A run counts as
    done whatever device it ran on.
    """
    from tqdm.auto import tqdm

    check_image_gan_budget(image_gan_budget)
    _check_device(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs_path, errors_path = out / RUNS_FILE, out / ERRORS_FILE
    plan = plan_runs(experiments, methods, range(seeds), quick=quick)
    todo = _todo(plan, runs_path, quick=quick, image_gan_budget=image_gan_budget)
    logger.info(
        "%d runs planned, %d already done, %d to do", len(plan), len(plan) - len(todo), len(todo)
    )
    _warn_slow_image_gans(todo, quick=quick, image_gan_budget=image_gan_budget)
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), desc="reproduce", unit="run", disable=not progress)
    bar.set_postfix_str(f"{len(plan) - len(todo)} done before")
    recorder = _Recorder(runs_path, errors_path, bar)
    options = {
        "quick": quick,
        "data_home": data_home,
        "image_gan_budget": image_gan_budget,
        "device": device,
    }
    if jobs <= 1:
        _run_serial(todo, recorder.finish, options)
    else:
        _run_parallel(todo, jobs, recorder.finish, options)
    bar.close()
    summary = {
        "planned": len(plan),
        "ran": len(todo),
        "failed": recorder.failures,
        "wall_s": time.perf_counter() - t0,
        "out": str(out),
    }
    if write_report:
        summary["written"] = [str(p) for p in tables.write_report(out)]
    return summary


def _todo(plan: list[Run], runs_path: Path, *, quick: bool, image_gan_budget: str) -> list[Run]:
    """The runs of ``plan`` that ``runs.jsonl`` does not hold in this mode (quick or full)
    and, for the GAN baselines on images, under this budget."""
    done = {
        (r["run_id"], r.get("config", {}).get("budget"))
        for r in read_runs(runs_path)
        if r.get("quick", False) == quick
    }
    return [
        r
        for r in plan
        if (r.run_id, run_budget(r, quick=quick, image_gan_budget=image_gan_budget)) not in done
    ]


def _warn_slow_image_gans(todo: list[Run], *, quick: bool, image_gan_budget: str) -> None:
    """Warn before full-mode GAN runs on MNIST under the original, hours-long budget."""
    slow = sorted({r.method for r in todo if r.method in SLOW_ON_IMAGES and r.experiment in IMAGE})
    if slow and not quick and image_gan_budget == "original":
        logger.warning(
            "full-mode runs of %s on MNIST under the original budget are planned: with the "
            "originals' DCGAN nets each costs hours of CPU (3 learning rates x up to 30 epochs "
            "of 31-69 s on one core; docs/results.md); the default reduced budget takes "
            "minutes per run",
            ", ".join(slow),
        )


#: what is done with a finished run: (run, its record, or the exception it raised)
_Finish = Callable[[Run, dict[str, Any] | None, BaseException | None], None]


class _Recorder:
    """Records each finished run: its record in ``runs.jsonl``, or its error in
    ``errors.jsonl`` (retried next time); either way the progress bar moves on."""

    def __init__(self, runs_path: Path, errors_path: Path, bar: Any) -> None:
        self.runs_path, self.errors_path, self.bar = runs_path, errors_path, bar
        self.failures = 0

    def finish(self, run: Run, record: dict[str, Any] | None, exc: BaseException | None) -> None:
        if exc is None and record is not None:
            append_record(self.runs_path, record)
        else:
            self.failures += 1
            logger.error("run %s failed: %r", run.run_id, exc)
            failed = {"run_id": run.run_id, "error": repr(exc), "run": asdict(run)}
            append_record(self.errors_path, failed)
        self.bar.update(1)


def _run_serial(todo: list[Run], finish: _Finish, options: dict[str, Any]) -> None:
    """Do the runs one after the other in this process."""
    for run in todo:
        try:
            record = run_one(run, **options)
            finish(run, record, None)
        except Exception as exc:  # noqa: BLE001 - recorded and retried next time
            finish(run, None, exc)


def _run_parallel(todo: list[Run], jobs: int, finish: _Finish, options: dict[str, Any]) -> None:
    """Do the runs in ``jobs`` spawned worker processes, sharing the cores between them;
    each is recorded as it finishes."""
    import multiprocessing as mp

    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=mp.get_context("spawn"),
        initializer=_worker_init,
        initargs=(threads,),
    ) as pool:
        pending = {pool.submit(run_one, r, **options): r for r in todo}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                run = pending.pop(fut)
                exc = fut.exception()
                finish(run, None if exc else fut.result(), exc)
