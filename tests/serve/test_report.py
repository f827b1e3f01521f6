"""The HTML report: self-contained, four embedded PNG figures, renders in headless Chromium."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from _cli_helpers import flows, write_table
from click.testing import CliRunner

from anoean.cli import main

pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a.get("src") or "")
        for key in ("src", "href"):
            if a.get(key) and not str(a[key]).startswith("data:"):
                self.external.append(str(a[key]))


def _pngs(html_text: str) -> list[bytes]:
    p = _Images()
    p.feed(html_text)
    assert not p.external, f"the report must be self-contained; found {p.external}"
    out = []
    for src in p.srcs:
        m = re.fullmatch(r"data:image/png;base64,([A-Za-z0-9+/=]+)", src)
        assert m, src[:60]
        out.append(base64.b64decode(m.group(1), validate=True))
    return out


@pytest.fixture(scope="module")
def report_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("report")
    write_table(flows(600, seed=0), d / "train.parquet")
    write_table(flows(400, seed=1), d / "test.parquet")
    res = CliRunner().invoke(
        main,
        [
            "fit",
            str(d / "train.parquet"),
            "--label-column",
            "is_attack",
            "--exclude",
            "id",
            "--out",
            str(d / "model"),
            "--param",
            "max_epochs=3",
            "--param",
            "device=cpu",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(
        main, ["report", str(d / "model"), str(d / "test.parquet"), "--out", str(d / "r.html")]
    )
    assert res.exit_code == 0, res.output
    return d, d / "r.html"


def test_report_embeds_four_png_figures(report_model: tuple[Path, Path]) -> None:
    _, report = report_model
    text = report.read_text(encoding="utf-8")
    pngs = _pngs(text)
    assert len(pngs) == 4
    for png in pngs:
        assert png.startswith(PNG_MAGIC) and len(png) > 5000
    for fig_id in ("pr", "hist", "latent", "training"):
        assert f'<figure id="{fig_id}">' in text
    assert "AUC-PR" in text and "threshold" in text and "400 rows" in text


def test_report_metrics_match_evaluate(report_model: tuple[Path, Path]) -> None:
    d, report = report_model
    res = CliRunner().invoke(
        main, ["evaluate", str(d / "model"), str(d / "test.parquet"), "--json"]
    )
    import json

    aucpr = json.loads(res.stdout)["aucpr"]  # stderr may hold the over-budget warning
    assert f"<th>AUC-PR</th><td>{aucpr:.4f}</td>" in report.read_text(encoding="utf-8")


def test_pca_matches_scikit_learn() -> None:
    from sklearn.decomposition import PCA

    from anoean.serve.report import pca_2d

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    P, share = pca_2d(Z)
    ref = PCA(2).fit(Z)
    np.testing.assert_allclose(share, ref.explained_variance_ratio_, rtol=1e-8)
    # components are defined up to sign
    np.testing.assert_allclose(np.abs(P), np.abs(ref.transform(Z)), atol=1e-8)


def test_detector_without_latent_space_or_history_gets_notes(
    report_model: tuple[Path, Path],
) -> None:
    from anoean.serve.pipeline import load_pipeline
    from anoean.serve.report import build_report

    d, _ = report_model
    pipe = load_pipeline(d / "model")
    real = pipe.detector

    class ScoreOnly:  # the minimal detector contract a report needs
        threshold_ = real.threshold_
        threshold_rule_ = "fixed"

        def anomaly_score(self, X: np.ndarray) -> np.ndarray:
            return real.anomaly_score(X)

    pipe.detector = ScoreOnly()
    text = build_report(pipe, pq.read_table(d / "test.parquet"))
    assert len(_pngs(text)) == 2
    assert "no latent plot" in text and "no training curves" in text


def test_report_bad_labels_write_nothing(report_model: tuple[Path, Path], tmp_path: Path) -> None:
    d, _ = report_model
    res = CliRunner().invoke(
        main,
        [
            "report",
            str(d / "model"),
            str(d / "test.parquet"),
            "--label-column",
            "proto",
            "--out",
            str(tmp_path / "r.html"),
        ],
    )
    assert res.exit_code == 1 and "'proto'" in res.output and "'tcp'" in res.output
    assert list(tmp_path.iterdir()) == []


class _Table(HTMLParser):
    """The cells of the table with id "top-rows"."""

    def __init__(self) -> None:
        super().__init__()
        self.inside, self.rows, self._cell = False, [], None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and dict(attrs).get("id") == "top-rows":
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(self._cell)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell += data


def _top_rows(html_text: str) -> tuple[list[str], list[list[str]]]:
    p = _Table()
    p.feed(html_text)
    assert p.rows, "no top-rows table"
    return p.rows[0], p.rows[1:]


def test_report_lists_the_top_rows_with_their_columns_and_why(
    report_model: tuple[Path, Path],
) -> None:
    d, report = report_model
    header, rows = _top_rows(report.read_text(encoding="utf-8"))
    table = pq.read_table(d / "test.parquet")
    from anoean.serve.pipeline import load_pipeline

    pipe = load_pipeline(d / "model")
    cols = list(pipe.preprocessor.input_columns_)
    assert header == ["where", "score", "label", "why (share of the score)", *cols]
    assert len(rows) == 20
    scores = [float(r[1]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    all_scores = pipe.score(pipe.features(table))
    assert scores[0] == pytest.approx(float(all_scores.max()), rel=1e-3)
    for r in rows:
        named = [part.rsplit(" ", 1)[0] for part in r[3].split(", ")]
        assert named and all(n in cols for n in named), r[3]
        row = int(r[0].split()[-1]) if r[0].split()[-1].isdigit() else None
        assert row is not None, r[0]


def test_pipeline_explain_folds_one_hot_blocks_onto_their_columns(
    report_model: tuple[Path, Path],
) -> None:
    from anoean.serve.pipeline import load_pipeline

    d, _ = report_model
    pipe = load_pipeline(d / "model")
    table = pq.read_table(d / "test.parquet").slice(0, 50)
    per_column = pipe.explain(table)
    pre = pipe.preprocessor
    assert per_column.column_names == list(pre.input_columns_)
    assert pre.categorical_columns_  # the fold is exercised
    per_feature = pipe.detector.explain(pipe.features(table))
    folded = np.column_stack([per_column.column(c).to_numpy() for c in per_column.column_names])
    np.testing.assert_allclose(folded.sum(1), per_feature.sum(1), rtol=1e-9, atol=1e-12)
    c = pre.categorical_columns_[0]
    k = len(pre.numeric_columns_)
    before = sum(len(pre.categories_[x]) for x in pre.categorical_columns_[:0])
    width = len(pre.categories_[c])
    np.testing.assert_allclose(
        per_column.column(c).to_numpy(), per_feature[:, k + before : k + before + width].sum(1)
    )


def test_latent_axes_follow_the_normals_not_the_outliers() -> None:
    from anoean.serve.report import latent_axes, latent_sample

    rng = np.random.default_rng(0)
    normals = rng.normal(size=(500, 3)) * np.array([0.2, 3.0, 0.1])  # spread along axis 1
    far = np.c_[np.full(20, 500.0), np.zeros(20), np.zeros(20)]  # far out along axis 0
    Z = np.vstack([normals, far])
    y = np.r_[np.zeros(500), np.ones(20)].astype(int)
    P, share, lim = latent_axes(Z, y == 0)
    # PC1 is the normals' long axis, not the direction of the outliers
    assert abs(np.corrcoef(P[:500, 0], normals[:, 1])[0, 1]) > 0.99
    assert share[0] > 0.9
    # the frame holds every normal
    inside = (P[:500] >= lim[:, 0]) & (P[:500] <= lim[:, 1])
    assert inside.all()
    # a large set is subsampled per class: the rare class survives
    y_big = np.r_[np.zeros(100_000), np.ones(30)].astype(int)
    idx = latent_sample(y_big, 5000, seed=0)
    assert len(idx) == 5000 and (y_big[idx] == 1).sum() == 30


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(
    report_model: tuple[Path, Path], tmp_path: Path
) -> None:
    import matplotlib.image as mpimg

    _, report = report_model
    url = report.resolve().as_uri()
    shot = tmp_path / "shot.png"
    res = _chromium([f"--screenshot={shot}", "--window-size=1280,1800", url], tmp_path / "p1")
    assert shot.is_file(), res.stderr[-2000:]
    assert shot.read_bytes().startswith(PNG_MAGIC) and shot.stat().st_size > 30_000
    px = mpimg.imread(str(shot))[..., :3]
    # the figures were drawn: the anomaly red (#d1493f) and normal blue (#3b75af) appear
    red = np.all(np.abs(px - np.array([209, 73, 63]) / 255) < 0.08, axis=-1).sum()
    blue = np.all(np.abs(px - np.array([59, 117, 175]) / 255) < 0.08, axis=-1).sum()
    assert red > 200 and blue > 200, (red, blue)
    dom = _chromium(["--dump-dom", url], tmp_path / "p2")
    assert dom.returncode == 0, dom.stderr[-2000:]
    pngs = _pngs(dom.stdout)
    assert len(pngs) == 4 and all(p.startswith(PNG_MAGIC) for p in pngs)
    # the table of the highest-scoring rows is in the rendered page, with its "why" column
    header, rows = _top_rows(dom.stdout)
    assert len(rows) == 20 and header[3].startswith("why")
