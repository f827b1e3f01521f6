"""Command-line interface: a thin shell over the library (one verb per library entry point).

``fit``, ``score``, ``evaluate``, ``export`` and ``report`` call :mod:`anoean.serve.pipeline`,
:mod:`anoean.export` and :mod:`anoean.serve.report`; this module only parses options, prints, and
turns errors into a one-line message and exit status 1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

logger = logging.getLogger("anoean")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="anoean")
@click.option("-v", "--verbose", count=True, help="Log more (repeat for debug and tracebacks).")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """anoean: semi-supervised anomaly detection with an Encoding Adversarial Network."""
    _exit_cleanly_on_signals()
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("anoean").setLevel(level)
    ctx.obj = {"verbose": verbose}


def _terminate(signum: int, frame: Any) -> None:
    # SystemExit unwinds the stack like Ctrl-C does, so every temporary file is removed by
    # the code that made it (the atomic writers' cleanup), then the process exits 128 + N
    raise SystemExit(128 + signum)


def _exit_cleanly_on_signals() -> None:
    """SIGTERM (sent by timeout, systemd, Kubernetes) and SIGHUP end the command as SIGINT
    does, leaving no temporary file behind, instead of killing the process on the spot."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _terminate)


@contextlib.contextmanager
def _errors(ctx: click.Context) -> Iterator[None]:
    """Bad input -> ``error: <message>`` on stderr and exit status 1 (a traceback with -vv);
    warnings -> ``warning: <message>`` on stderr as they happen."""
    from anoean.core.modelfile import ModelFileError
    from anoean.data.tables import DataError

    def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        click.echo(f"warning: {message}", err=True)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        try:
            yield
        except (
            DataError,
            ModelFileError,
            FileExistsError,
            FileNotFoundError,
            ValueError,
            ImportError,
        ) as exc:
            if (ctx.obj or {}).get("verbose", 0) >= 2:
                raise
            raise click.ClickException(str(exc)) from exc


def _csv_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _parse_params(items: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint="--param")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw  # a bare string such as device=cpu
    return out


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def _metrics_lines(m: dict[str, Any]) -> list[str]:
    lines = []
    if "aucpr" in m:
        lines.append(
            f"  AUC-PR {_fmt(m['aucpr'])}   AUROC {_fmt(m['auroc'])}   "
            f"best F1 {_fmt(m['best_f1'])} "
            f"(false alarms {_fmt(m['false_alarm'], True)} of alarms, recall "
            f"{_fmt(m['recall'], True)})"
        )
    lines.append(
        f"  at the threshold {m['threshold']:.4g}: {_fmt(m['false_alarm_at_threshold'], True)} of "
        f"normal rows raise an alarm, recall {_fmt(m.get('recall_at_threshold'), True)}"
    )
    return lines


# --------------------------------------------------------------------------- demo
def _metrics_table(methods: dict[str, dict[str, float]]) -> str:
    head = (
        f"{'method':<14} {'AUC-PR':>7} {'best F1':>8} {'FA':>7} {'recall':>7} {'AUROC':>7} "
        f"{'fit s':>7}"
    )
    lines = [head, "-" * len(head)]
    for name, m in methods.items():
        lines.append(
            f"{name:<14} {m['aucpr']:>7.3f} {m['best_f1']:>8.3f} {m['false_alarm']:>7.3f} "
            f"{m['recall']:>7.3f} {m['auroc']:>7.3f} {m['fit_s']:>7.2f}"
        )
    return "\n".join(lines)


@main.command()
@click.option(
    "--normal", default=0, show_default=True, type=click.IntRange(0, 9), help="Normal digit."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option("--max-epochs", default=300, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def demo(normal: int, seed: int, max_epochs: int, as_json: bool, quiet: bool) -> None:
    """AnoEAN vs a one-class SVM on scikit-learn's bundled digits (no download)."""
    from anoean.experiments.demo import run_demo

    res = run_demo(normal, seed=seed, max_epochs=max_epochs, verbose=0 if quiet else 1)
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    click.echo(res["split"])
    click.echo()
    click.echo(_metrics_table(res["methods"]))
    click.echo("\nFA = false-alarm rate (1 - precision) and recall at the best-F1 threshold.")


# --------------------------------------------------------------------------- fit
_label_options = [
    click.option(
        "--anomaly-value",
        "anomaly_values",
        multiple=True,
        metavar="VALUE",
        help="A label value meaning 'anomaly' (repeatable); other values are normal unless "
        "--normal-value is also given.",
    ),
    click.option(
        "--normal-value",
        "normal_values",
        multiple=True,
        metavar="VALUE",
        help="A label value meaning 'normal' (repeatable); other values are anomalies unless "
        "--anomaly-value is also given.",
    ),
]


def _with(options: list[Any]) -> Any:
    """A decorator adding each of ``options`` to a command, in the order listed."""

    def add(f: Any) -> Any:
        for opt in reversed(options):
            f = opt(f)
        return f

    return add


#: the default of --na-values, as shown in --help (anoean.data.tables.DEFAULT_NA_VALUES)
_NA_HELP = "?,-,--,n/a,N/A,NA,na,#N/A,null,NULL,None,none,<NA>"

_csv_options = [
    click.option(
        "--sep",
        default=",",
        show_default=True,
        help="Field separator of CSV input: one character, or 'tab'.",
    ),
    click.option(
        "--encoding",
        default="utf-8",
        show_default=True,
        help="Text encoding of CSV input (e.g. latin-1, utf-16).",
    ),
    click.option(
        "--na-values",
        default=None,
        metavar="TOKENS",
        help="Comma-separated tokens read as missing values in every column, in place of "
        f"the default list ({_NA_HELP}); an empty field is always missing. Missing values "
        "follow the NaN policy: refused at fit, unscorable at score.",
    ),
    click.option(
        "--block-size",
        type=click.IntRange(1024),
        default=None,
        metavar="BYTES",
        help="CSV reader block size (default: automatic, at least 1 MiB); raise it for "
        "rows or quoted fields longer than that.",
    ),
]

_with_label_options = _with(_label_options)
_with_csv_options = _with(_csv_options)


def _csv(sep: str, encoding: str, na_values: str | None, block_size: int | None) -> Any:
    from anoean.data.tables import DEFAULT_NA_VALUES, CsvOptions

    if sep.lower() in ("tab", "\\t"):
        sep = "\t"
    if len(sep) != 1:
        raise click.BadParameter(
            f"expected one character or 'tab', got {sep!r}", param_hint="--sep"
        )
    tokens = (
        DEFAULT_NA_VALUES
        if na_values is None
        else tuple(t.strip() for t in na_values.split(",") if t.strip())
    )
    return CsvOptions(sep=sep, encoding=encoding, na_values=tokens, block_size=block_size)


@main.command()
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--label-column", required=True, help="Column holding the labels.")
@click.option(
    "--out", "out", required=True, type=click.Path(path_type=Path), help="Model directory to write."
)
@click.option(
    "--categorical", help="Comma-separated categorical columns (default: every non-numeric column)."
)
@click.option("--exclude", help="Comma-separated columns to ignore (ids, timestamps).")
@click.option(
    "--method",
    default="anoean",
    show_default=True,
    help="Detector: anoean, or a baseline when installed (see 'anoean methods').",
)
@click.option(
    "--target-false-alarm",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Set the threshold so this share of validation normals raise an alarm.",
)
@_with_label_options
@click.option(
    "--unknown-categories",
    type=click.Choice(["ignore", "error"]),
    default="ignore",
    show_default=True,
    help="Default policy at score time for categories not seen in "
    "fit: encode as all-zero, or treat the row as unscorable.",
)
@click.option(
    "--validation-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
    help="Share of each class held out for validation.",
)
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A detector parameter, e.g. --param max_epochs=50 (repeatable; JSON values).",
)
@click.option(
    "--max-categories",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="Warn when a categorical column has more levels than this (each level is a feature).",
)
@click.option("--overwrite", is_flag=True, help="Replace OUT if it already holds an anoean model.")
@_with_csv_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the validation metrics as JSON.")
@click.pass_context
def fit(
    ctx: click.Context,
    data: Path,
    label_column: str,
    out: Path,
    categorical: str | None,
    exclude: str | None,
    method: str,
    target_false_alarm: float | None,
    anomaly_values: tuple[str, ...],
    normal_values: tuple[str, ...],
    unknown_categories: str,
    validation_fraction: float,
    seed: int,
    params: tuple[str, ...],
    max_categories: int,
    overwrite: bool,
    sep: str,
    encoding: str,
    na_values: str | None,
    block_size: int | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Fit preprocessing and a detector on DATA (.csv or .parquet) and write a model directory."""
    from anoean.core.modelfile import check_model_destination
    from anoean.data.tables import file_format, read_table
    from anoean.serve.fit import fit_pipeline
    from anoean.serve.pipeline import save_pipeline

    with _errors(ctx):
        kwargs = _parse_params(params)
        csv = _csv(sep, encoding, na_values, block_size)
        # before training, so that minutes of fitting are not lost to a path we will refuse
        check_model_destination(out, overwrite=overwrite)
        fmt = file_format(data)
        table = read_table(data, csv=csv)
        rep = fit_pipeline(
            table,
            label_column=label_column,
            categorical=_csv_list(categorical),
            exclude=_csv_list(exclude) or [],
            method=method,
            params=kwargs,
            target_false_alarm=target_false_alarm,
            anomaly_values=anomaly_values,
            normal_values=normal_values,
            unknown=unknown_categories,
            validation_fraction=validation_fraction,
            random_state=seed,
            verbose=0 if quiet else 1,
            source=str(data),
            fmt=fmt,
            max_categories=max_categories,
        )
        path = save_pipeline(rep.pipeline, out, overwrite=overwrite)
    if as_json:
        click.echo(
            json.dumps(
                {"model": str(path), **rep.pipeline.meta["fit"], "validation": rep.val_metrics},
                indent=2,
            )
        )
        return
    pre = rep.pipeline.preprocessor
    click.echo(
        f"{data}: {rep.n_rows} rows ({rep.n_anomalies} labelled anomalies); "
        f"{len(pre.numeric_columns_)} numeric + {len(pre.categorical_columns_)} categorical "
        f"columns -> {len(pre.feature_names_out_)} features"
    )
    click.echo(
        f"{rep.pipeline.meta['detector_class']} trained on {rep.n_train} rows; validation on "
        f"{rep.n_val} held-out rows (also used to set the threshold, and by neural models "
        "to stop early):"
    )
    for line in _metrics_lines(rep.val_metrics):
        click.echo(line)
    click.echo(f"wrote {path}/")


@main.command()
def methods() -> None:
    """List the detectors available to 'fit --method'."""
    from anoean.serve.pipeline import available_methods
    for name, cls in available_methods().items():
        click.echo(f"{name:<12} {cls.__module__}.{cls.__name__}")


# --------------------------------------------------------------------------- score
@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file (.parquet or .csv): the input rows plus anomaly_score and is_anomaly.",
)
@click.option(
    "--on-error",
    type=click.Choice(["fail", "flag"]),
    default="fail",
    show_default=True,
    help="A row that cannot be scored: stop with its row and column (fail), or keep it "
    "with a null score, marked as an anomaly, and the reason in a score_error column (flag).",
)
@click.option(
    "--strict-categories/--lenient-categories",
    default=None,
    help="Treat categories not seen in fit as unscorable rows (default: as chosen in "
    "fit with --unknown-categories).",
)
@click.option(
    "--engine",
    type=click.Choice(["auto", "torch", "numpy", "onnx"]),
    default="auto",
    show_default=True,
    help="How scores are computed: auto = ONNX Runtime for AnoEAN when installed (fastest), "
    "else numpy; torch = the detector itself (every method). Same scores to float32 round-off.",
)
@click.option(
    "--batch-rows",
    type=click.IntRange(1),
    default=32768,  # anoean.data.tables.DEFAULT_BATCH_ROWS (not imported: keeps --help fast)
    show_default=True,
    help="Rows per streamed batch (bounds memory).",
)
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@_with_csv_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def score(
    ctx: click.Context,
    model: Path,
    data: Path,
    out: Path,
    on_error: str,
    strict_categories: bool | None,
    engine: str,
    batch_rows: int,
    overwrite: bool,
    sep: str,
    encoding: str,
    na_values: str | None,
    block_size: int | None,
    as_json: bool,
) -> None:
    """Score every row of DATA with MODEL, streaming in bounded memory."""
    from anoean.data.tables import file_format, where
    from anoean.serve.pipeline import load_pipeline
    from anoean.serve.scoring import check_output, score_file

    with _errors(ctx):
        csv = _csv(sep, encoding, na_values, block_size)
        check_output(data, out, overwrite=overwrite)  # before loading the model
        pipe = load_pipeline(model, engine=engine)
        res = score_file(
            pipe,
            data,
            out,
            batch_rows=batch_rows,
            on_error=on_error,
            strict_categories=strict_categories,
            overwrite=overwrite,
            csv=csv,
        )
    if as_json:
        click.echo(json.dumps({**res.as_dict(), "threshold": pipe.threshold}, indent=2))
        return
    rate = res.rows / res.seconds if res.seconds > 0 else float("inf")
    unknown = ", ".join(f"{c!r} {k}" for c, k in res.unknown_categories.items())
    click.echo(
        f"scored {res.rows} rows in {res.seconds:.2f} s ({rate:,.0f} rows/s): {res.alarms} "
        f"alarm(s) at threshold {pipe.threshold:.4g}"
        + (
            f", {res.unscored} row(s) not scored (null score, marked as anomalies, reason in "
            "score_error): "
            + ", ".join(where(r, file_format(data)) for r in res.unscored_rows[:10])
            + (" ..." if res.unscored > 10 else "")
            if res.unscored
            else ""
        )
        + (f"; categories not seen in fit (encoded as all-zero): {unknown}" if unknown else "")
        + f"; wrote {out}"
    )


# --------------------------------------------------------------------------- evaluate
@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--label-column", help="Label column (default: the one used in fit).")
@_with_label_options
@_with_csv_options
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.pass_context
def evaluate(
    ctx: click.Context,
    model: Path,
    data: Path,
    label_column: str | None,
    anomaly_values: tuple[str, ...],
    normal_values: tuple[str, ...],
    sep: str,
    encoding: str,
    na_values: str | None,
    block_size: int | None,
    as_json: bool,
) -> None:
    """The paper's metrics of MODEL on labelled DATA."""
    from anoean.data.tables import file_format, read_table
    from anoean.serve.evaluate import evaluate_table
    from anoean.serve.pipeline import load_pipeline

    with _errors(ctx):
        pipe = load_pipeline(model)
        fmt = file_format(data)
        mapped = bool(anomaly_values or normal_values)
        metrics, _, _ = evaluate_table(
            pipe,
            read_table(data, csv=_csv(sep, encoding, na_values, block_size)),
            label_column=label_column,
            anomaly_values=anomaly_values if mapped else None,
            normal_values=normal_values if mapped else None,
            source=str(data),
            fmt=fmt,
        )
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    click.echo(f"{data}: {metrics['rows']:.0f} rows, {metrics['anomalies']:.0f} anomalies")
    for line in _metrics_lines(metrics):
        click.echo(line)


# --------------------------------------------------------------------------- export
@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--onnx",
    "onnx_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX file to write: preprocessed features in, anomaly_score out.",
)
@click.pass_context
def export(ctx: click.Context, model: Path, onnx_path: Path) -> None:
    """Export MODEL's encoder and Mahalanobis distance as one ONNX graph."""
    from anoean.export import export_onnx

    with _errors(ctx):
        path = export_onnx(model, onnx_path)
    click.echo(f"wrote {path} (input 'x': preprocessed float32 features; output 'anomaly_score')")


# --------------------------------------------------------------------------- report
@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--label-column", help="Label column (default: the one used in fit).")
@_with_label_options
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="HTML file to write.",
)
@_with_csv_options
@click.pass_context
def report(
    ctx: click.Context,
    model: Path,
    data: Path,
    label_column: str | None,
    anomaly_values: tuple[str, ...],
    normal_values: tuple[str, ...],
    out: Path,
    sep: str,
    encoding: str,
    na_values: str | None,
    block_size: int | None,
) -> None:
    """A self-contained HTML report of MODEL on labelled DATA."""
    from anoean.data.tables import file_format, read_table
    from anoean.serve.pipeline import load_pipeline
    from anoean.serve.report import write_report

    with _errors(ctx):
        pipe = load_pipeline(model)
        mapped = bool(anomaly_values or normal_values)
        path = write_report(
            pipe,
            read_table(data, csv=_csv(sep, encoding, na_values, block_size)),
            out,
            label_column=label_column,
            anomaly_values=anomaly_values if mapped else None,
            normal_values=normal_values if mapped else None,
            source=str(data),
            fmt=file_format(data),
        )
    click.echo(f"wrote {path}")


@main.command()
@click.option(
    "--experiments",
    default="nsl-kdd,kdd99,mnist-1vall,mnist-nvm",
    show_default=True,
    help="Comma-separated experiments: the paper's nsl-kdd, kdd99, mnist-1vall, mnist-nvm; "
    "also nsl-kdd-official, kdd99-official (test set from the official test file).",
)
@click.option(
    "--methods",
    "methods_",
    default="ocsvm,svm,anogan,egbad,alad,anoean",
    show_default=True,
    help="Comma-separated methods.",
)
@click.option("--seeds", default=5, show_default=True, type=click.IntRange(1), help="Seeds 0..N-1.")
@click.option(
    "--jobs", default=1, show_default=True, type=click.IntRange(1), help="Worker processes."
)
@click.option("--out", default="results", show_default=True, type=click.Path(path_type=Path))
@click.option("--quick", is_flag=True, help="1 seed, fewer epochs, 2 digits, n in {1, 3}.")
@click.option(
    "--image-gan-budget",
    type=click.Choice(["reduced", "original"]),
    default="reduced",
    show_default=True,
    help="AnoGAN/EGBAD/ALAD on MNIST (full mode): 'reduced' trains lr 2e-4 for 4 epochs "
    "(AnoGAN: 20-step search), minutes per run; 'original' runs the learning-rate grid for "
    "up to 30 epochs with a 100-step search, hours per run on a CPU.",
)
@click.option(
    "--data-home", default=None, help="Dataset folder (default: ANOEAN_DATA or the cache)."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def reproduce(
    ctx: click.Context,
    experiments: str,
    methods_: str,
    seeds: int,
    jobs: int,
    out: Path,
    quick: bool,
    image_gan_budget: str,
    data_home: str | None,
    quiet: bool,
) -> None:
    """Regenerate the paper's tables and figures; resumes from OUT/runs.jsonl."""
    from anoean.experiments import reproduce as run

    with _errors(ctx):
        summary = run(
            experiments=_csv_list(experiments) or [],
            methods=_csv_list(methods_) or [],
            seeds=1 if quick else seeds,
            jobs=jobs,
            out=out,
            quick=quick,
            data_home=data_home,
            progress=not quiet,
            image_gan_budget=image_gan_budget,
        )
    click.echo(
        f"{summary['ran']} run(s) done ({summary['failed']} failed) of {summary['planned']} "
        f"planned in {summary['wall_s']:.0f} s; wrote " + ", ".join(summary.get("written", []))
    )
    if summary["failed"]:
        raise click.ClickException(f"{summary['failed']} run(s) failed: see {out}/errors.jsonl")


if __name__ == "__main__":  # pragma: no cover
    main()
