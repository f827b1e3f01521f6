"""Command-line interface: a thin shell over the library (one verb per library entry point)."""

from __future__ import annotations

import json
import logging
import sys

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="anoean")
@click.option("-v", "--verbose", count=True, help="Log more (repeat for debug).")
def main(verbose: int) -> None:
    """anoean: semi-supervised anomaly detection with an Encoding Adversarial Network."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _metrics_table(methods: dict[str, dict[str, float]]) -> str:
    head = f"{'method':<14} {'AUC-PR':>7} {'best F1':>8} {'FA':>7} {'recall':>7} {'AUROC':>7} {'fit s':>7}"
    lines = [head, "-" * len(head)]
    for name, m in methods.items():
        lines.append(
            f"{name:<14} {m['aucpr']:>7.3f} {m['best_f1']:>8.3f} {m['false_alarm']:>7.3f} "
            f"{m['recall']:>7.3f} {m['auroc']:>7.3f} {m['fit_s']:>7.2f}"
        )
    return "\n".join(lines)


@main.command()
@click.option("--normal", default=0, show_default=True, type=click.IntRange(0, 9), help="Normal digit.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option("--max-epochs", default=300, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def demo(normal: int, seed: int, max_epochs: int, as_json: bool, quiet: bool) -> None:
    """AnoEAN vs a one-class SVM on scikit-learn's bundled digits (no download)."""
    from .demo import run_demo

    res = run_demo(normal, seed=seed, max_epochs=max_epochs, verbose=0 if quiet else 1)
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    click.echo(res["split"])
    click.echo()
    click.echo(_metrics_table(res["methods"]))
    click.echo("\nFA = false-alarm rate (1 - precision) and recall at the best-F1 threshold.")


if __name__ == "__main__":  # pragma: no cover
    main()
