"""The verbs that apply a model to a table: ``score`` (every row, streamed), ``evaluate``
(the paper's metrics on labelled rows) and ``report`` (an HTML report)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from anoean.cli.common import (
    _csv,
    _errors,
    _metrics_lines,
    _quiet,
    _with_csv_options,
    _with_label_options,
    _with_output_options,
)


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Output file (.parquet or .csv): the input rows plus anomaly_score and is_anomaly. "
    "With --engine dask, an output folder: one file per input file, of the same name.",
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
    type=click.Choice(["auto", "torch", "numpy", "onnx", "dask"]),
    default="auto",
    show_default=True,
    help="How scores are computed: auto = ONNX Runtime for AnoEAN when installed (fastest), "
    "else numpy; torch = the detector itself (every method). Same scores to float32 round-off. "
    "dask = many files (a list, a folder or a quoted pattern such as 'flows/*.parquet') on a "
    "Dask cluster, one task per file, each worker computing as auto (the distributed extra).",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="With --engine dask: the address of a running Dask scheduler (tcp://host:8786).",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    help="With --engine dask: start a local cluster of N worker processes of one thread "
    "each (default: one per CPU).",
)
@click.option(
    "--batch-rows",
    type=click.IntRange(1),
    default=65536,  # anoean.data.tables.DEFAULT_BATCH_ROWS (not imported: keeps --help fast)
    show_default=True,
    help="Rows per streamed batch (bounds memory).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace OUT (with --engine dask: its files of the same names) if it exists.",
)
@_with_csv_options
@_with_output_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def score(
    ctx: click.Context,
    model: Path,
    data: tuple[Path, ...],
    out: Path,
    on_error: str,
    strict_categories: bool | None,
    engine: str,
    scheduler: str | None,
    workers: int | None,
    batch_rows: int,
    overwrite: bool,
    sep: str,
    encoding: str,
    na_values: str | None,
    block_size: int | None,
    as_json: bool,
) -> None:
    """Score every row of DATA with MODEL, streaming in bounded memory.

    DATA is one file; with --engine dask, any number of files, folders or patterns.
    """
    if engine == "dask":
        return _score_dask(
            ctx,
            model,
            data,
            out,
            on_error=on_error,
            strict_categories=strict_categories,
            scheduler=scheduler,
            workers=workers,
            batch_rows=batch_rows,
            overwrite=overwrite,
            csv_args=(sep, encoding, na_values, block_size),
            as_json=as_json,
        )
    if scheduler is not None or workers is not None:
        raise click.UsageError("--scheduler and --workers go with --engine dask")
    if len(data) != 1:
        raise click.UsageError(
            f"give one DATA file ({len(data)} given); several files, folders and patterns "
            "need --engine dask"
        )
    src = data[0]
    if src.is_dir():
        raise click.BadParameter(
            f"{src} is a folder; give one file, or score a folder with --engine dask",
            param_hint="'DATA'",
        )
    from anoean.serve.pipeline import load_pipeline
    from anoean.serve.scoring import check_output, score_file

    with _errors(ctx):
        csv = _csv(sep, encoding, na_values, block_size)
        check_output(src, out, overwrite=overwrite)  # before loading the model
        pipe = load_pipeline(model, engine=engine)
        res = score_file(
            pipe,
            src,
            out,
            batch_rows=batch_rows,
            on_error=on_error,
            strict_categories=strict_categories,
            overwrite=overwrite,
            csv=csv,
            progress=not (as_json or _quiet(ctx)),
        )
    if as_json:
        click.echo(json.dumps({**res.as_dict(), "threshold": pipe.threshold}, indent=2))
        return
    click.echo(_score_summary(res, pipe.threshold, src, out))


def _score_dask(
    ctx: click.Context,
    model: Path,
    data: tuple[Path, ...],
    out: Path,
    *,
    on_error: str,
    strict_categories: bool | None,
    scheduler: str | None,
    workers: int | None,
    batch_rows: int,
    overwrite: bool,
    csv_args: tuple[str, str, str | None, int | None],
    as_json: bool,
) -> None:
    """``score --engine dask``: every input file on a Dask cluster, into the folder OUT."""
    if scheduler is not None and workers is not None:
        raise click.UsageError(
            "--scheduler and --workers are exclusive: --workers starts a local cluster, "
            "--scheduler uses a running one"
        )
    with _errors(ctx):
        from anoean.distributed.files import ScoringJobError, score_files_dask

        try:
            res = score_files_dask(
                model,
                [str(d) for d in data],
                out,
                scheduler=scheduler,
                workers=workers,
                on_error=on_error,
                strict_categories=strict_categories,
                batch_rows=batch_rows,
                overwrite=overwrite,
                csv=_csv(*csv_args),
            )
        except ScoringJobError as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(res.as_dict(), indent=2))
        return
    click.echo(_dask_summary(res))


def _dask_summary(res: Any) -> str:
    """What ``score --engine dask`` prints: as :func:`_score_summary`, over every file."""
    from anoean.data.tables import file_format, where

    rate = res.rows / res.seconds if res.seconds > 0 else float("inf")
    unknown = ", ".join(f"{c!r} {k}" for c, k in res.unknown_categories.items())
    shown = [
        f"{f.source} {where(r, file_format(f.source))}" for f in res.files for r in f.unscored_rows
    ][:10]
    return (
        f"scored {res.rows} rows from {len(res.files)} file(s) in {res.seconds:.2f} s "
        f"({rate:,.0f} rows/s) on {res.workers} Dask worker(s), {res.threads} thread(s): "
        f"{res.alarms} alarm(s) at threshold {res.threshold:.4g}"
        + (
            f", {res.unscored} row(s) not scored (null score, marked as anomalies, reason in "
            "score_error): " + ", ".join(shown) + (" ..." if res.unscored > 10 else "")
            if res.unscored
            else ""
        )
        + (f"; categories not seen in fit (encoded as all-zero): {unknown}" if unknown else "")
        + f"; wrote {len(res.files)} file(s) to {res.output}"
    )


def _score_summary(res: Any, threshold: float, data: Path, out: Path) -> str:
    """What ``score`` prints: rows, speed, alarms, the rows not scored (the first 10) and
    the categories not seen in fit."""
    from anoean.data.tables import file_format, where

    rate = res.rows / res.seconds if res.seconds > 0 else float("inf")
    unknown = ", ".join(f"{c!r} {k}" for c, k in res.unknown_categories.items())
    return (
        f"scored {res.rows} rows in {res.seconds:.2f} s ({rate:,.0f} rows/s): {res.alarms} "
        f"alarm(s) at threshold {threshold:.4g}"
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
@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--label-column", help="Label column (default: the one used in fit).")
@_with_label_options
@_with_csv_options
@_with_output_options
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
            read_table(
                data,
                csv=_csv(sep, encoding, na_values, block_size),
                progress=not (as_json or _quiet(ctx)),
            ),
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


# --------------------------------------------------------------------------- report
@click.command()
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
@_with_output_options
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
            read_table(
                data, csv=_csv(sep, encoding, na_values, block_size), progress=not _quiet(ctx)
            ),
            out,
            label_column=label_column,
            anomaly_values=anomaly_values if mapped else None,
            normal_values=normal_values if mapped else None,
            source=str(data),
            fmt=file_format(data),
        )
    click.echo(f"wrote {path}")
