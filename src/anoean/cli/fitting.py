"""The verbs that make a model: ``fit`` (a model directory from a labelled table),
``methods`` (the detectors ``fit --method`` takes) and ``export`` (a model's ONNX graph)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from anoean.cli.common import (
    _csv,
    _csv_list,
    _errors,
    _metrics_lines,
    _parse_params,
    _quiet,
    _with_csv_options,
    _with_label_options,
    _with_output_options,
)


@click.command()
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--label-column",
    help="Column holding the labels (1 or an --anomaly-value is a known anomaly). Omitted: the "
    "table has no labels, and every row is treated as unlabelled (AnoEANPlus then trains its "
    "anomaly generator).",
)
@click.option(
    "--out", "out", required=True, type=click.Path(path_type=Path), help="Model directory to write."
)
@click.option(
    "--categorical", help="Comma-separated categorical columns (default: every non-numeric column)."
)
@click.option("--exclude", help="Comma-separated columns to ignore (ids, timestamps).")
@click.option(
    "--method",
    default="anoeanplus",
    show_default=True,
    help="Detector: anoeanplus (the recommended one), anoean (the paper's method), or a "
    "baseline (see 'anoean methods').",
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
@click.option(
    "--distributed",
    is_flag=True,
    help="Train data-parallel (DistributedDataParallel) across the processes of a torchrun "
    "launch: torchrun --standalone --nproc_per_node 2 -m anoean fit ... --distributed "
    "(gloo on CPU, NCCL on GPUs; docs/scale.md). Checkpoints every epoch.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue an interrupted fit from its latest checkpoint (same data, options and "
    "number of processes).",
)
@click.option(
    "--checkpoint-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the training state here every epoch (default with --distributed or "
    "--resume: OUT.checkpoints beside OUT); removed once the model is saved.",
)
@_with_csv_options
@_with_output_options
@click.option("--json", "as_json", is_flag=True, help="Print the validation metrics as JSON.")
@click.pass_context
def fit(
    ctx: click.Context,
    data: Path,
    label_column: str | None,
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
    distributed: bool,
    resume: bool,
    checkpoint_dir: Path | None,
    sep: str,
    encoding: str,
    na_values: str | None,
    block_size: int | None,
    as_json: bool,
) -> None:
    """Fit preprocessing and a detector on DATA (.csv or .parquet) and write a model directory."""
    from anoean.core.modelfile import check_model_destination
    from anoean.data.tables import file_format, read_table
    from anoean.serve.fit import default_checkpoint_dir, fit_pipeline, training_session
    from anoean.serve.pipeline import save_pipeline, warm_graph_cache

    if checkpoint_dir is None and (distributed or resume):
        checkpoint_dir = default_checkpoint_dir(out)
    with _errors(ctx):
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        rank = int(os.environ.get("RANK", "0") or 0)  # only rank 0 shows progress
        if world > 1 and not distributed:
            raise click.UsageError(
                f"started by torchrun with {world} processes but without --distributed: each "
                f"process would train the whole model and write {out}; add --distributed"
            )
        kwargs = _parse_params(params)
        csv = _csv(sep, encoding, na_values, block_size)
        # before training, so that minutes of fitting are not lost to a path we will refuse
        check_model_destination(out, overwrite=overwrite)
        fmt = file_format(data)
        session = training_session(
            distributed_run=distributed,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            device=str(kwargs.get("device", "auto")),
        )
        with session as main_process:
            rep = fit_pipeline(
                read_table(data, csv=csv, progress=not _quiet(ctx) and rank == 0),
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
                verbose=0 if _quiet(ctx) else 1,
                source=str(data),
                fmt=fmt,
                max_categories=max_categories,
            )
            if main_process:
                path = save_pipeline(rep.pipeline, out, overwrite=overwrite)
                warm_graph_cache(path)  # the first `anoean score` then skips building it
    if not main_process:
        return  # rank 0 of a distributed run saves and prints
    if as_json:
        click.echo(
            json.dumps(
                {"model": str(path), **rep.pipeline.meta["fit"], "validation": rep.val_metrics},
                indent=2,
            )
        )
        return
    for line in _fit_summary(data, rep, path):
        click.echo(line)


def _fit_summary(data: Path, rep: Any, path: Path) -> list[str]:
    """What ``fit`` prints: the table, the features, the training and validation rows, the
    validation metrics, and where the model went."""
    pre = rep.pipeline.preprocessor
    return [
        f"{data}: {rep.n_rows} rows ({rep.n_anomalies} labelled anomalies); "
        f"{len(pre.numeric_columns_)} numeric + {len(pre.categorical_columns_)} categorical "
        f"columns -> {len(pre.feature_names_out_)} features",
        f"{rep.pipeline.meta['detector_class']} trained on {rep.n_train} rows; validation on "
        f"{rep.n_val} held-out rows (also used to set the threshold, and by neural models "
        "to stop early):",
        *_metrics_lines(rep.val_metrics),
        *_training_lines(rep.pipeline.meta["fit"]),
        f"wrote {path}/",
    ]


def _training_lines(fit: dict[str, Any]) -> list[str]:
    """How training ended: where early stopping stopped, the epoch kept and its validation
    AUC-PR (nothing for the kernel baselines)."""
    if "epochs" not in fit:
        return []
    best, auc = fit["best_epoch"], fit["best_val_aucpr"]
    kept = f"kept epoch {best}" + (f" (validation AUC-PR {auc:.4f})" if auc is not None else "")
    if fit["stopped_early"]:
        return [
            f"  early stopping: stopped at epoch {fit['epochs']} of {fit['max_epochs']}, no "
            f"better validation AUC-PR since epoch {best}; {kept}"
        ]
    return [f"  trained {fit['epochs']} of {fit['max_epochs']} epochs; {kept}"]


@click.command()
@_with_output_options
def methods() -> None:
    """List the detectors available to 'fit --method'."""
    from anoean.serve.pipeline import available_methods

    for name, cls in available_methods().items():
        click.echo(f"{name:<12} {cls.__module__}.{cls.__name__}")


# --------------------------------------------------------------------------- export
@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--onnx",
    "onnx_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX file to write: preprocessed features in, anomaly_score out.",
)
@_with_output_options
@click.pass_context
def export(ctx: click.Context, model: Path, onnx_path: Path) -> None:
    """Export MODEL's encoder and Mahalanobis distance as one ONNX graph."""
    from anoean.export import export_onnx

    with _errors(ctx):
        path = export_onnx(model, onnx_path)
    click.echo(f"wrote {path} (input 'x': preprocessed float32 features; output 'anomaly_score')")
