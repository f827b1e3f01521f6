"""A self-contained HTML report of a model on labelled data.

One HTML file, no external resources: four PNG figures made with matplotlib (imported
lazily, the ``plot`` extra) are embedded as base64 ``data:`` URIs.

1. the precision-recall curve, with the model's operating point at its threshold;
2. histograms of the scores of normal rows and anomalies, with the threshold;
3. the latent space E(x) projected to 2-D by PCA, coloured by class (for detectors with a
   ``transform``; AnoEAN's codes live in R^d and the score is their Mahalanobis distance);
4. the training curves from ``history_`` (losses and validation AUC-PR per epoch);

then a table of the highest-scoring rows with their columns and, for detectors that explain
their scores (AnoEAN, AnoEANPlus), the columns that weigh most in each score.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from anoean.core.modelfile import atomic_output
from anoean.serve.evaluate import evaluate_table

#: points drawn in the latent scatter plot (a seeded subsample of each class beyond that)
MAX_SCATTER = 5000
#: rows in the report's table of the highest scores
TOP_K = 20
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


def latent_sample(y: np.ndarray, limit: int = MAX_SCATTER, seed: int = 0) -> np.ndarray:
    """Row indices to draw: all rows up to ``limit``; beyond it a seeded sample of each class
    (half the budget each, or all of a smaller class), so a rare class stays visible."""
    idx = np.arange(len(y))
    if idx.size <= limit:
        return idx
    rng = np.random.default_rng(seed)
    parts = [idx[y == 1], idx[y == 0]]
    small = min(parts, key=len)
    k_small = min(len(small), limit // 2)
    picks = []
    for part in parts:
        k = k_small if part is small else limit - k_small
        picks.append(part if len(part) <= k else rng.choice(part, k, replace=False))
    return np.sort(np.concatenate(picks))


def latent_axes(Z: np.ndarray, normal: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust 2-D axes of the codes: the principal components of the *normal* codes around
    their median (so a few far-out anomalies do not set the axes), every code projected on
    them; the share of the normals' variance each explains; and the view limits
    ``[[xmin, xmax], [ymin, ymax]]`` that hold every normal and the bulk (98%) of the
    other points, so one outlier does not shrink the picture to a dot."""
    Z = np.asarray(Z, dtype=np.float64)
    ref = Z[normal] if normal.sum() >= 2 else Z
    centre = np.median(ref, axis=0)
    if Z.shape[1] == 1:
        P = np.c_[Z[:, 0] - centre[0], np.zeros(len(Z))]
        share = np.array([1.0, 0.0])
    else:
        _, s, vt = np.linalg.svd(ref - centre, full_matrices=False)
        var = s**2
        share = var[:2] / max(var.sum(), 1e-300)
        P = (Z - centre) @ vt[:2].T
    Pn = P[normal] if normal.any() else P
    lo = np.minimum(np.quantile(P, 0.01, axis=0), Pn.min(axis=0))
    hi = np.maximum(np.quantile(P, 0.99, axis=0), Pn.max(axis=0))
    pad = 0.05 * np.maximum(hi - lo, 1e-9)
    return P, share, np.stack([lo - pad, hi + pad], axis=1)


def latent_figure(plt: Any, y: np.ndarray, Z: np.ndarray, seed: int = 0) -> str:
    idx = latent_sample(y, MAX_SCATTER, seed)
    yy = y[idx]
    P, share, lim = latent_axes(Z[idx], yy == 0)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    # the anomalies first, the normals on top: a dense cloud of anomalies cannot hide them
    ax.scatter(P[yy == 1, 0], P[yy == 1, 1], s=6, alpha=0.6, color=ANOMALY_COLOUR, label="anomaly")
    ax.scatter(P[yy == 0, 0], P[yy == 0, 1], s=6, alpha=0.5, color=NORMAL_COLOUR, label="normal")
    outside = int((~((P >= lim[:, 0]) & (P <= lim[:, 1])).all(axis=1)).sum())
    ax.set_xlim(*lim[0])
    ax.set_ylim(*lim[1])
    drawn = f"{len(idx):,} of {len(y):,} rows" if len(idx) < len(y) else f"{len(y):,} rows"
    ax.set(
        xlabel=f"PC1 of the normals ({share[0]:.0%} of their variance)",
        ylabel=f"PC2 ({share[1]:.0%})",
        title=f"Latent space E(x), d={Z.shape[1]}: {drawn}"
        + (f", {outside} beyond the frame" if outside else ""),
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
.note{color:#555} .wide{overflow-x:auto} h2{font-size:1.2em;margin-top:1.5em}
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
    top_k: int = TOP_K,
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
    top = top_rows(pipe, table, y, scores, k=top_k, fmt=fmt)
    if top.note:
        notes.append(top.note)
    return _html(source, _summary_rows(pipe, metrics, source), figures, notes, top)


@dataclass
class TopRows:
    """The report's table of the highest-scoring rows."""

    header: list[str]
    rows: list[list[str]]
    #: why the "why" column is missing, if it is
    note: str = ""


def top_rows(
    pipe: Any, table: pa.Table, y: np.ndarray, scores: np.ndarray, *, k: int, fmt: str
) -> TopRows:
    """The ``k`` highest-scoring rows: where each is in the file, its score, its label, the
    columns it was scored on (as they are in the file) and, when the detector can explain
    its scores, the columns that weigh most in it (their share of the positive attributions,
    :meth:`anoean.serve.pipeline.Pipeline.explain`)."""
    from anoean.data.tables import where

    order = np.argsort(-scores, kind="stable")[: max(0, int(k))]
    cols = list(pipe.preprocessor.input_columns_)
    sub = table.take(pa.array(order, type=pa.int64())) if order.size else table.slice(0, 0)
    why: list[str] | None = None
    note = ""
    if order.size:
        try:
            attr = pipe.explain(sub)
        except TypeError as exc:
            note = f"Top rows: no attributions ({exc})."
        else:
            matrix = np.column_stack([attr.column(c).to_numpy() for c in attr.column_names])
            why = [_why(attr.column_names, row) for row in matrix]
    values = {c: sub.column(c).to_pylist() for c in cols}
    header = ["where", "score", "label", *(["why (share of the score)"] if why else []), *cols]
    rows = []
    for i, r in enumerate(order.tolist()):
        row = [where(r, fmt), f"{scores[r]:.4g}", "anomaly" if y[r] == 1 else "normal"]
        if why:
            row.append(why[i])
        row += [_cell(values[c][i]) for c in cols]
        rows.append(row)
    return TopRows(header, rows, note)


def _why(names: Sequence[str], a: np.ndarray, top: int = 3) -> str:
    """The columns with the largest positive attributions ``a`` of a row, with their share."""
    pos = np.clip(np.asarray(a, dtype=np.float64), 0.0, None)
    total = pos.sum()
    if not total > 0:
        return "(no column raises it above the baseline)"
    best = np.argsort(-pos, kind="stable")[:top]
    return ", ".join(f"{names[j]} {pos[j] / total:.0%}" for j in best if pos[j] > 0)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v)


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
                "Latent codes E(x) on the first two principal components of the normal "
                "rows' codes (centred on their median), normals drawn on top; the frame "
                "holds every normal and 98% of the rest. Training pushes normal data "
                "towards N(0, I).",
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
            f"{metrics['best_f1']:.4f} (there {metrics['false_discovery_rate']:.1%} of the "
            f"alarms are false, recall {metrics['recall']:.1%})",
        ),
        (
            "at the model's threshold",
            f"false-positive rate {metrics['false_positive_rate']:.2%} (normal rows that raise "
            "an alarm)" + _budget_text(metrics) + f"; recall {metrics['recall_at_threshold']:.1%}",
        ),
    ]


def _budget_text(metrics: dict[str, Any]) -> str:
    budget = metrics.get("false_positive_budget")
    if budget is None:
        return ""
    if metrics.get("false_positive_budget_exceeded"):
        return f", ABOVE the model's budget of {budget:.1%} beyond sampling noise"
    return f", within the model's budget of {budget:.1%}"


def _html(
    source: str,
    rows: list[tuple[str, str]],
    figures: list[tuple[str, str, str]],
    notes: list[str],
    top: TopRows | None = None,
) -> str:
    """The page: title and time stamp, the summary table, the notes, the figures, then the
    table of the highest-scoring rows."""
    esc = html.escape
    table_html = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    top_html = ""
    if top is not None and top.rows:
        head = "".join(f"<th>{esc(h)}</th>" for h in top.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(v)}</td>" for v in r) + "</tr>" for r in top.rows
        )
        top_html = (
            f'<h2 id="top">The {len(top.rows)} highest-scoring rows</h2><div class="wide">'
            f'<table id="top-rows"><tr>{head}</tr>{body}</table></div>'
        )
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
        f"{top_html}</body></html>\n"
    )


def write_report(pipe: Any, table: pa.Table, out: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Build the report and write it to ``out`` atomically (temporary file, then rename)."""
    text = build_report(pipe, table, **kwargs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out
