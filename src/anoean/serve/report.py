"""A self-contained HTML report of a model on labelled data.

One HTML file, no external resources: four PNG figures made with matplotlib (imported
lazily, the ``plot`` extra) are embedded as base64 ``data:`` URIs.

1. the precision-recall curve, with the model's operating point at its threshold;
2. histograms of the scores of normal rows and anomalies, with the threshold;
3. the latent space E(x) projected to 2-D by PCA, coloured by class (for detectors with a
   ``transform``; AnoEAN's codes live in R^d and the score is their Mahalanobis distance);
4. the training curves from ``history_`` (losses and validation AUC-PR per epoch).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from anoean.core.modelfile import atomic_output
from anoean.serve.evaluate import evaluate_table

#: points drawn in the latent scatter plot (a seeded subsample beyond that)
MAX_SCATTER = 5000
NORMAL_COLOUR, ANOMALY_COLOUR = "#3b75af", "#d1493f"


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the report needs matplotlib: pip install 'anoean[plot]'") from exc
    matplotlib.use("Agg", force=True)  # no display: render to memory only
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    fig.clf()
    return base64.b64encode(buf.getvalue()).decode("ascii")


def pca_2d(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows of Z onto their first two principal components.

    Returns the (n, 2) projection and the share of variance each component explains.

    Examples
    --------
    >>> Z = np.c_[np.arange(5.0), 2 * np.arange(5.0), np.zeros(5)]
    >>> P, share = pca_2d(Z)
    >>> P.shape, round(float(share[0]), 6)
    ((5, 2), 1.0)
    """
    Z = np.asarray(Z, dtype=np.float64)
    Zc = Z - Z.mean(axis=0)
    if Z.shape[1] == 1:
        return np.c_[Zc[:, 0], np.zeros(len(Z))], np.array([1.0, 0.0])
    _, s, vt = np.linalg.svd(Zc, full_matrices=False)
    var = s**2
    share = var[:2] / max(var.sum(), 1e-300)
    return Zc @ vt[:2].T, share


def pr_figure(plt: Any, y: np.ndarray, scores: np.ndarray, threshold: float) -> str:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    p, r, _ = precision_recall_curve(y, scores)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.step(r, p, where="post", color=ANOMALY_COLOUR, lw=2)
    alarm = scores > threshold
    if alarm.any():
        ax.plot([alarm[y == 1].mean()], [y[alarm].mean()], "ko", label="at the threshold")
        ax.legend(loc="lower left")
    ax.axhline(y.mean(), color="grey", ls=":", lw=1)
    ax.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1.01),
        ylim=(0, 1.02),
        title=f"Precision-recall (AUC-PR {average_precision_score(y, scores):.3f})",
    )
    return _png(fig)


def histogram_figure(plt: Any, y: np.ndarray, scores: np.ndarray, threshold: float) -> str:
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    lo, hi = float(scores.min()), float(scores.max())
    log = lo > 0 and hi / lo > 100  # distances spanning decades read better on a log axis
    bins = np.geomspace(lo, hi, 60) if log else np.linspace(lo, hi, 60)
    ax.hist(
        scores[y == 0],
        bins=bins,
        alpha=0.6,
        color=NORMAL_COLOUR,
        label=f"normal ({int((y == 0).sum())})",
    )
    ax.hist(
        scores[y == 1],
        bins=bins,
        alpha=0.6,
        color=ANOMALY_COLOUR,
        label=f"anomaly ({int((y == 1).sum())})",
    )
    ax.axvline(threshold, color="k", ls="--", lw=1.5, label=f"threshold {threshold:.4g}")
    if log:
        ax.set_xscale("log")
    ax.set(xlabel="anomaly score a(x)", ylabel="rows", title="Scores by class")
    ax.legend()
    return _png(fig)


def latent_figure(plt: Any, y: np.ndarray, Z: np.ndarray, seed: int = 0) -> str:
    idx = np.arange(len(y))
    if idx.size > MAX_SCATTER:
        idx = np.sort(np.random.default_rng(seed).choice(idx, MAX_SCATTER, replace=False))
    P, share = pca_2d(Z[idx])
    yy = y[idx]
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.scatter(P[yy == 0, 0], P[yy == 0, 1], s=6, alpha=0.5, color=NORMAL_COLOUR, label="normal")
    ax.scatter(P[yy == 1, 0], P[yy == 1, 1], s=6, alpha=0.7, color=ANOMALY_COLOUR, label="anomaly")
    ax.set(
        xlabel=f"PC1 ({share[0]:.0%} of variance)",
        ylabel=f"PC2 ({share[1]:.0%})",
        title=f"Latent space E(x), d={Z.shape[1]}, PCA to 2-D",
    )
    ax.legend(markerscale=3)
    return _png(fig)


def training_figure(plt: Any, history: Sequence[dict[str, Any]], best_epoch: int | None) -> str:
    epochs = np.arange(1, len(history) + 1)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    loss_keys = [k for k in history[0] if k.startswith("loss")]
    for k in loss_keys:
        ax.plot(epochs, [h.get(k) for h in history], label=k)
    ax.set(xlabel="epoch", ylabel="loss", title="Training curves")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    handles, labels = ax.get_legend_handles_labels()
    aps = [h.get("val_aucpr") for h in history]
    if any(a is not None for a in aps):
        ax2 = ax.twinx()
        ax2.plot(
            epochs,
            [np.nan if a is None else a for a in aps],
            color="k",
            ls="--",
            label="validation AUC-PR",
        )
        ax2.set_ylabel("validation AUC-PR")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if best_epoch is not None:
        ax.axvline(best_epoch, color="grey", ls=":", lw=1)
    ax.legend(handles, labels, loc="best")
    return _png(fig)


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{font-size:1.5em} table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:.3em .8em;text-align:left}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:1em}
figure{margin:0} figcaption{color:#555;font-size:.9em} img{max-width:100%}
.note{color:#555}
"""


def build_report(
    pipe: Any,
    table: pa.Table,
    *,
    label_column: str | None = None,
    anomaly_values: Sequence[str] | None = None,
    normal_values: Sequence[str] | None = None,
    source: str = "data",
    fmt: str = "parquet",
) -> str:
    """The report as an HTML string (see the module documentation)."""
    plt = _pyplot()
    metrics, y, scores = evaluate_table(
        pipe,
        table,
        label_column=label_column,
        anomaly_values=anomaly_values,
        normal_values=normal_values,
        source=source,
        fmt=fmt,
    )
    try:
        figures, notes = _figures(plt, pipe, table, y, scores)
    finally:
        plt.close("all")
    return _html(source, _summary_rows(pipe, metrics, source), figures, notes)


def _figures(
    plt: Any, pipe: Any, table: pa.Table, y: np.ndarray, scores: np.ndarray
) -> tuple[list[tuple[str, str, str]], list[str]]:
    """The figures as (id, caption, base64 png), and a note for each one the detector
    cannot have (no latent space, no training history)."""
    det = pipe.detector
    threshold = pipe.threshold
    figures: list[tuple[str, str, str]] = []  # (id, caption, base64 png)
    figures.append(
        (
            "pr",
            "Precision-recall curve on this data; the dot is the model's "
            "operating point at its threshold, the dotted line the anomaly share.",
            pr_figure(plt, y, scores, threshold),
        )
    )
    figures.append(
        (
            "hist",
            "Anomaly scores of normal rows and anomalies; the dashed line "
            "is the decision threshold.",
            histogram_figure(plt, y, scores, threshold),
        )
    )
    notes = []
    if hasattr(det, "transform"):
        Z = det.transform(pipe.features(table))
        figures.append(
            (
                "latent",
                "Latent codes E(x) projected on their first two principal "
                "components; normal data is pushed towards N(0, I).",
                latent_figure(plt, y, Z),
            )
        )
    else:
        notes.append(f"{type(det).__name__} has no latent space: no latent plot.")
    history = getattr(det, "history_", None)
    if history:
        figures.append(
            (
                "training",
                "Losses and validation AUC-PR per epoch; the dotted "
                "line marks the epoch whose weights were kept.",
                training_figure(plt, history, getattr(det, "best_epoch_", None)),
            )
        )
    else:
        notes.append(f"{type(det).__name__} records no training history: no training curves.")
    return figures, notes


def _summary_rows(pipe: Any, metrics: dict[str, Any], source: str) -> list[tuple[str, str]]:
    """The summary table: the data, the model, its threshold and the paper's metrics."""
    det = pipe.detector
    threshold = pipe.threshold
    return [
        ("data", f"{source}: {metrics['rows']:.0f} rows, {metrics['anomalies']:.0f} anomalies"),
        (
            "model",
            f"{pipe.meta.get('detector_class', type(det).__name__)} ({pipe.path or 'in memory'})",
        ),
        ("threshold", f"{threshold:.6g} ({getattr(det, 'threshold_rule_', '')})"),
        ("AUC-PR", f"{metrics['aucpr']:.4f}"),
        ("AUROC", f"{metrics['auroc']:.4f}"),
        (
            "best F1",
            f"{metrics['best_f1']:.4f} (false alarms {metrics['false_alarm']:.1%} of "
            f"alarms, recall {metrics['recall']:.1%})",
        ),
        (
            "at the threshold",
            f"{metrics['false_alarm_at_threshold']:.2%} of normal rows raise an "
            f"alarm; recall {metrics['recall_at_threshold']:.1%}",
        ),
    ]


def _html(
    source: str,
    rows: list[tuple[str, str]],
    figures: list[tuple[str, str, str]],
    notes: list[str],
) -> str:
    """The page: title and time stamp, the summary table, the notes, then the figures."""
    esc = html.escape
    table_html = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    figs_html = "".join(
        f'<figure id="{fid}"><img alt="{esc(cap)}" src="data:image/png;base64,{b64}">'
        f"<figcaption>{esc(cap)}</figcaption></figure>"
        for fid, cap, b64 in figures
    )
    notes_html = "".join(f'<p class="note">{esc(n)}</p>' for n in notes)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>anoean report: {esc(source)}</title><style>{_CSS}</style></head><body>"
        f'<h1>Anomaly detection report</h1><p class="note">Generated {stamp} by anoean.</p>'
        f'<table>{table_html}</table>{notes_html}<div class="grid">{figs_html}</div>'
        "</body></html>\n"
    )


def write_report(pipe: Any, table: pa.Table, out: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Build the report and write it to ``out`` atomically (temporary file, then rename)."""
    text = build_report(pipe, table, **kwargs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out
