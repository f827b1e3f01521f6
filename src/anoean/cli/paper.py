"""The paper's verbs: ``demo`` (AnoEAN against a one-class SVM on scikit-learn's digits) and
``reproduce`` (the paper's tables and figures)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from anoean.cli.common import _csv_list, _errors, _quiet, _with_output_options


def _metrics_table(methods: dict[str, dict[str, float]]) -> str:
    head = (
        f"{'method':<26} {'AUC-PR':>7} {'AUROC':>7} {'unseen':>7} {'best F1':>8} {'FDR':>6} "
        f"{'recall':>7} {'fit s':>6}"
    )
    lines = [head, "-" * len(head)]
    for name, m in methods.items():
        unseen = m.get("auroc_unseen")
        lines.append(
            f"{name:<26} {m['aucpr']:>7.3f} {m['auroc']:>7.3f} "
            + (f"{unseen:>7.3f}" if unseen is not None else f"{'':>7}")
            + f" {m['best_f1']:>8.3f} {m['false_alarm']:>6.3f} {m['recall']:>7.3f} "
            f"{m['fit_s']:>6.2f}"
        )
    best = max(methods, key=lambda k: methods[k]["aucpr"])
    lines += ["", f"best AUC-PR here: {best} ({methods[best]['aucpr']:.3f})"]
    with_unseen = {k: v for k, v in methods.items() if v.get("auroc_unseen") is not None}
    if with_unseen:
        top = max(with_unseen, key=lambda k: with_unseen[k]["auroc_unseen"])
        lines[-1] += f"; best on the unseen kinds: {top} ({with_unseen[top]['auroc_unseen']:.3f})"
    lines += [
        "unseen = AUROC of the test normals against the anomaly kinds never seen in training.",
        "FDR (share of the alarms that are false, 1 - precision: the paper's FA) and recall at "
        "the best-F1 threshold.",
    ]
    return "\n".join(lines)


@click.command()
@click.option(
    "--normal",
    default="0,1,2,3,4",
    show_default=True,
    help="Comma-separated normal digits (the other digits are the anomalies).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option("--max-epochs", default=300, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@_with_output_options
@click.pass_context
def demo(ctx: click.Context, normal: str, seed: int, max_epochs: int, as_json: bool) -> None:
    """AnoEANPlus, AnoEAN and the two SVMs on scikit-learn's bundled digits, with anomaly
    kinds never seen in training (no download)."""
    from anoean.experiments.demo import run_demo

    with _errors(ctx):
        try:
            digits = [int(d) for d in _csv_list(normal) or []]
        except ValueError as exc:
            raise click.BadParameter(f"digits 0-9, comma-separated; got {normal!r}") from exc
        res = run_demo(digits, seed=seed, max_epochs=max_epochs, verbose=0 if _quiet() else 1)
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    click.echo(res["split"])
    click.echo()
    click.echo(_metrics_table(res["methods"]))


@click.command()
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
    "--device",
    default="cpu",
    show_default=True,
    help="Where the neural methods train and score: cpu, cuda or cuda:N (a GPU runs the "
    "whole reproduction in a fraction of the CPU time).",
)
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
@click.option(
    "--report-only",
    is_flag=True,
    help="Run nothing: write the tables, figures and report into OUT from the records "
    "(OUT/runs.jsonl, or --runs).",
)
@click.option(
    "--runs",
    "runs_file",
    default=None,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="With --report-only: the run records to report (default OUT/runs.jsonl).",
)
@click.option(
    "--doc",
    default=None,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="With --report-only: also refresh the generated blocks of this Markdown document "
    "(e.g. docs/results.md).",
)
@_with_output_options
@click.pass_context
def reproduce(
    ctx: click.Context,
    experiments: str,
    methods_: str,
    seeds: int,
    jobs: int,
    out: Path,
    quick: bool,
    device: str,
    image_gan_budget: str,
    data_home: str | None,
    report_only: bool,
    runs_file: Path | None,
    doc: Path | None,
) -> None:
    """Regenerate the paper's tables and figures; resumes from OUT/runs.jsonl."""
    from anoean.experiments import reproduce as run

    if (runs_file is not None or doc is not None) and not report_only:
        raise click.UsageError("--runs and --doc go with --report-only")
    if report_only:
        from anoean.experiments.tables import write_report

        with _errors(ctx):
            out.mkdir(parents=True, exist_ok=True)
            written = write_report(out, runs=runs_file, doc=doc)
        click.echo("wrote " + ", ".join(str(p) for p in written))
        return
    with _errors(ctx):
        summary = run(
            experiments=_csv_list(experiments) or [],
            methods=_csv_list(methods_) or [],
            seeds=1 if quick else seeds,
            jobs=jobs,
            out=out,
            quick=quick,
            data_home=data_home,
            progress=not _quiet(ctx),
            image_gan_budget=image_gan_budget,
            device=device,
        )
    click.echo(
        f"{summary['ran']} run(s) done ({summary['failed']} failed) of {summary['planned']} "
        f"planned in {summary['wall_s']:.0f} s; wrote " + ", ".join(summary.get("written", []))
    )
    if summary["failed"]:
        raise click.ClickException(f"{summary['failed']} run(s) failed: see {out}/errors.jsonl")
