"""Property-based tests (hypothesis) of every detector: random tables give either a clear
error or one finite score per row.

A *clear error* is a ``ValueError`` whose message names the row and column of the bad value
(NaN, inf, a finite float64 beyond the float32 range, or a value whose score would overflow
the model's arithmetic: :class:`anoean.core.validation.UnscorableRowsError`), or the shape /
the rows that are missing (too few rows, no normal rows, no labelled anomaly for the two-class SVM).
Never a NaN or inf score, never another exception type, never a crash.

* fit time: random tables (1-60 rows, 1-8 columns, every numeric dtype, magnitudes up to
  1e308, sprinkled NaN / inf / extreme values, constant columns, constant tables, duplicate
  rows) with labels holding no, one or many anomalies;
* score time: one model per detector, fitted once on clean data, scores random tables
  (sometimes with the wrong number of columns, often with float32 values near the float32
  limit, where the models' arithmetic overflows: the rows must then be refused, named);
* the numpy scorer of a saved AnoEAN, at score time; its ONNX engine, whose raw function
  checks nothing, must score exactly the rows AnoEAN scores, with the same scores.

The number of examples comes from the profile in ``conftest.py`` (200 in CI, fixed seed;
``HYPOTHESIS_PROFILE=deep`` for 10,000).
"""

from __future__ import annotations

import re
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from anoean import AnoEAN
from anoean.baselines import ALAD, EGBAD, OCSVM, SVM, AnoGAN
from anoean.core.datachecks import DataWarning
from anoean.core.validation import FLOAT32_MAX, UnscorableRowsError
from anoean.export import NumpyScorer
from anoean.training.loop import TrainingDivergedError

P = 4  # columns of the score-time models

# the smallest settings each detector allows: a fit is a few milliseconds
DETECTORS: dict[str, Callable[[], Any]] = {
    "AnoEAN": lambda: AnoEAN(
        latent_dim=2, max_epochs=1, batch_size=32, device="cpu", random_state=0
    ),
    "OCSVM": lambda: OCSVM(random_state=0),
    "SVM": lambda: SVM(random_state=0),
    "AnoGAN": lambda: AnoGAN(
        latent_dim=1, batch_size=32, max_epochs=1, n_search_iter=3, device="cpu", random_state=0
    ),
    "EGBAD": lambda: EGBAD(latent_dim=1, batch_size=32, max_epochs=1, device="cpu", random_state=0),
    "ALAD": lambda: ALAD(latent_dim=1, batch_size=32, max_epochs=1, device="cpu", random_state=0),
}
NAMES = list(DETECTORS)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny nets: one intra-op thread is faster than two on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------- strategies
FLOAT_DTYPES = [np.float64, np.float32, np.float16]
INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
ALL_DTYPES = [*FLOAT_DTYPES, *INT_DTYPES, np.bool_]
#: largest |value| of a table's ordinary entries (capped at the dtype's largest finite)
MAGNITUDES = [1.0, 10.0, 1e3, 1e6, 1e20, 1e38, 3.4e38, FLOAT32_MAX, 1e39, 1e100, 1e308]


def _extremes(dtype: np.dtype, non_finite: bool = True) -> list[Any]:
    """Values sprinkled into a table of ``dtype``: NaN, inf, its largest values, and for
    float32 / float64 the large float32 values around which the models overflow."""
    if dtype.kind == "f":
        top = float(np.finfo(dtype).max)
        out = [np.nan, np.inf, -np.inf] if non_finite else []
        out += [top, -top]
        if dtype.itemsize >= 4:
            out += [1e37, -3e37, 1e38, -3e38, FLOAT32_MAX, -FLOAT32_MAX]
        if dtype == np.float64:
            out += [3.5e38, -1e39, 1e300, -1e308]
        return out
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return [int(info.max), int(info.min)]
    return [True, False]


@st.composite
def tables(
    draw: st.DrawFn,
    rows: st.SearchStrategy[int],
    cols: st.SearchStrategy[int],
    dtypes: list[Any] = ALL_DTYPES,
    magnitudes: list[float] = MAGNITUDES,
    extremes: str = "all",
) -> np.ndarray:
    """A 2-D array: any dtype of ``dtypes``, values up to a drawn magnitude, then maybe
    constant columns, a constant table or duplicate rows, then maybe a few extreme values
    (``extremes``: "all", "finite" or "none")."""
    # float64 (where values beyond float32 live), the other floats (NaN, inf) and the
    # rest (integers, bool) are each drawn about a third of the time
    kinds = [np.dtype(d) for d in dtypes]
    groups = [[d for d in kinds if d == np.float64]]
    groups.append([d for d in kinds if d.kind == "f" and d != np.float64])
    groups.append([d for d in kinds if d.kind != "f"])
    dtype = np.dtype(draw(st.one_of(*(st.sampled_from(g) for g in groups if g))))
    n, p = draw(rows), draw(cols)
    if dtype.kind == "f":
        top = float(np.finfo(dtype).max)
        # a bound the dtype represents exactly (hypothesis requires it)
        mags = sorted({float(dtype.type(m)) for m in magnitudes if m <= top} | {top})
        mag = draw(st.sampled_from(mags))
        elements = st.floats(
            -mag, mag, allow_nan=False, allow_infinity=False, width=8 * dtype.itemsize
        )
        X = draw(arrays(dtype, (n, p), elements=elements))
        # sometimes the whole table scaled up towards the overflow boundary (kept finite)
        factor = draw(st.sampled_from([1.0, 1.0, 1e10, 1e36, 1e37, 1e38]))
        if factor != 1.0:
            with np.errstate(over="ignore"):  # inf, then clipped to the largest finite
                X = np.clip(X.astype(np.float64) * factor, -top, top).astype(dtype)
    else:
        X = draw(arrays(dtype, (n, p)))
    structure = draw(st.sampled_from(["plain", "constant columns", "constant table", "dups"]))
    if structure == "constant columns":
        cs = sorted(draw(st.sets(st.integers(0, p - 1), min_size=1, max_size=p)))
        X[:, cs] = X[0, cs]
    elif structure == "constant table":
        X[:] = X[0]
    elif structure == "dups":
        X = X[draw(arrays(np.int64, n, elements=st.integers(0, n - 1)))]
    if extremes != "none":
        pool = _extremes(dtype, non_finite=extremes == "all")
        for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3]))):
            i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, p - 1))
            X[i, j] = draw(st.sampled_from(pool))
    return X


@st.composite
def labels(draw: st.DrawFn, n: int) -> np.ndarray | None:
    """None, or 0/1 labels of ``n`` rows holding no, one, many or only anomalies."""
    kinds = ["one anomaly", "many", "no anomaly", "none", "all", "any", "bad label"]
    kind = draw(st.sampled_from(kinds))
    if kind == "none":
        return None
    y = np.zeros(n, dtype=np.int64)
    if kind == "one anomaly":
        y[draw(st.integers(0, n - 1))] = 1
    elif kind == "many":
        y[: max(1, n // 2)] = 1
        y = y[draw(st.permutations(range(n)))]
    elif kind == "all":
        y[:] = 1
    elif kind == "any":
        y = draw(arrays(np.int64, n, elements=st.integers(0, 1)))
    elif kind == "bad label":  # must be refused, naming the row
        y = y.astype(np.float64)
        y[draw(st.integers(0, n - 1))] = draw(st.sampled_from([2.0, -1.0, 0.5, np.nan]))
        return y
    dtype = draw(st.sampled_from([np.int64, np.float64, np.bool_, np.int8]))
    return y.astype(dtype)


# ------------------------------------------------------------------------ the rule
def _bad_cells(X: np.ndarray) -> np.ndarray:
    """Where X holds a value no detector accepts: NaN, inf, or beyond the float32 range."""
    X64 = np.asarray(X, dtype=np.float64)
    return ~np.isfinite(X64) | (np.abs(X64) > FLOAT32_MAX)


#: a message about the size / label make-up of the data (no row or column to name)
SIZE_OR_LABELS = re.compile(
    r"n_samples|shape|features|normal rows?|labelled anomal|\brows?\b|\bcolumns?\b"
)


def _fail(exc: BaseException, why: str) -> None:
    tb = "".join(traceback.format_exception(exc))
    pytest.fail(f"{why}: {type(exc).__name__}: {exc}\n{tb}")


def check_error(
    exc: BaseException,
    X: np.ndarray,
    expected_p: int | None = None,
    X_val: np.ndarray | None = None,
) -> None:
    """``exc`` is a clear error for input X (and ``X_val``, at fit time): a ValueError
    naming what is wrong.

    * wrong number of columns (``expected_p`` given and different): the shape;
    * NaN / inf / beyond float32 somewhere in X: a row and column that hold such a value
      (and "float32" and the value when it is a finite one); in X_val (X being clean):
      the same, in a message that starts with "X_val" (unless X's size or y, checked
      before X_val, is refused first);
    * an unscorable row: an :class:`UnscorableRowsError` naming a row and column of X (of
      X_val if the message starts with "X_val");
    * otherwise, the size or label make-up of the data.
    """
    if not isinstance(exc, ValueError):
        _fail(exc, "not a ValueError")
    msg = str(exc)
    if expected_p is not None and X.shape[1] != expected_p:
        if not re.search(r"shape|features", msg):
            _fail(exc, "wrong number of columns, but the message names no shape")
        event(f"error: shape ({type(exc).__name__})")
        return
    about_val = X_val is not None and msg.startswith("X_val")
    if about_val and _bad_cells(X).any():
        _fail(exc, "X holds a bad value (checked first), but the error is about X_val")
    if X_val is not None and not about_val and _bad_cells(X_val).any():
        # fit checks X, its size and y before X_val
        if not _bad_cells(X).any() and not msg.startswith(("y", "n_samples")):
            _fail(exc, "X_val holds a bad value, but the error does not name X_val")
    if about_val:
        assert X_val is not None
        X = X_val
    n, p = X.shape
    bad = _bad_cells(X)
    if bad.any():
        m = re.search(r"row (\d+), column (\d+)", msg)
        if m is None:
            _fail(exc, "X holds a NaN/inf/beyond-float32 value, but no 'row i, column j'")
        i, j = int(m.group(1)), int(m.group(2))
        if not (i < n and j < p and bad[i, j]):
            _fail(exc, f"row {i}, column {j} is not a bad value of X")
        v = float(np.asarray(X[i, j], dtype=np.float64))
        if np.isfinite(v) and not ("float32" in msg and f"{v:.6g}" in msg):
            _fail(exc, "a finite value beyond float32, not named with its value and float32")
        event("error: non-finite" if not np.isfinite(v) else "error: beyond float32")
        return
    if isinstance(exc, UnscorableRowsError):
        m_row = re.search(r"row (\d+)", msg)
        m_col = re.search(r"column (\d+)", msg)
        if m_row is None or m_col is None:
            _fail(exc, "unscorable rows, but no row and column named")
        i, j = int(m_row.group(1)), int(m_col.group(1))
        if not (i < n and j < p and i in set(np.asarray(exc.rows).tolist())):
            _fail(exc, f"row {i} / column {j} named, outside X {X.shape} or not in .rows")
        event("error: unscorable row")
        return
    if not SIZE_OR_LABELS.search(msg):
        _fail(exc, "the message names neither a row, a column nor the shape")
    event(f"error: size or labels ({type(exc).__name__})")


def check_scores(s: Any, n: int) -> np.ndarray:
    s = np.asarray(s)
    assert s.shape == (n,), f"{s.shape} scores for {n} rows"
    assert np.issubdtype(s.dtype, np.floating)
    assert np.isfinite(s).all(), f"non-finite scores: {s}"
    return s


def _tame(X: np.ndarray) -> bool:
    """Clean and of ordinary size: no model may refuse such a table as unscorable."""
    return bool(np.all(np.abs(np.asarray(X, dtype=np.float64)) <= 1e4))


def _constant_columns(X: np.ndarray) -> bool:
    X32 = np.asarray(X, dtype=np.float32)
    return X32.shape[0] >= 2 and bool((X32 == X32[:1]).all(axis=0).any())


# ------------------------------------------------------------------- fit time
@st.composite
def fit_problems(draw: st.DrawFn) -> dict[str, Any]:
    """X and y; a quarter of the time the table's last rows are passed as X_val, y_val."""
    X = draw(tables(st.integers(1, 60), st.integers(1, 8)))
    y = draw(labels(X.shape[0]))
    n = X.shape[0]
    if n < 2 or draw(st.sampled_from([True, True, True, False])):
        return {"X": X, "y": y}
    k = draw(st.integers(1, n - 1))
    y_all = np.zeros(n, dtype=np.int64) if y is None else y
    y_fit = None if y is None else y_all[: n - k]
    return {"X": X[: n - k], "y": y_fit, "X_val": X[n - k :], "y_val": y_all[n - k :]}


@pytest.mark.parametrize("name", NAMES)
@given(problem=fit_problems())
def test_fit_gives_a_clear_error_or_finite_scores(name: str, problem: dict[str, Any]) -> None:
    X, y, X_val = problem["X"], problem["y"], problem.get("X_val")
    model = DETECTORS[name]()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if X_val is None:
                model.fit(X, y)
            else:
                model.fit(X, y, X_val=X_val, y_val=problem["y_val"])
        except Exception as exc:  # noqa: BLE001 - the property is about what is raised
            check_error(exc, X, X_val=X_val)
            ordinary = _tame(X) and (X_val is None or _tame(X_val))
            if ordinary and isinstance(exc, (UnscorableRowsError, TrainingDivergedError)):
                _fail(exc, "an ordinary table refused as unscorable or diverged")
            return
    event("fitted")
    if _constant_columns(X):
        assert any(issubclass(w.category, DataWarning) for w in caught), (
            "constant columns, but no DataWarning"
        )
    try:
        s = model.anomaly_score(X)
        pred = model.predict(X)
    except Exception as exc:  # noqa: BLE001
        _fail(exc, "the training table cannot be scored by the model fitted on it")
    check_scores(s, X.shape[0])
    assert set(np.unique(pred).tolist()) <= {-1, 1}
    assert pred.shape == (X.shape[0],)
    if X_val is not None:
        try:
            s_val = model.anomaly_score(X_val)
        except Exception as exc:  # noqa: BLE001
            _fail(exc, "the validation table cannot be scored by the model fitted with it")
        check_scores(s_val, X_val.shape[0])


# ----------------------------------------------------------------- score time
def _clean_problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(200, P)), rng.normal(3.0, 1.0, size=(20, P))])
    return X.astype(np.float32), np.r_[np.zeros(200), np.ones(20)].astype(np.int64)


_FITTED: dict[str, Any] = {}


def fitted_model(name: str) -> Any:
    if name not in _FITTED:
        X, y = _clean_problem()
        _FITTED[name] = DETECTORS[name]().fit(X, y)
    return _FITTED[name]


#: mostly the fitted width, sometimes another
score_cols = st.one_of(st.just(P), st.just(P), st.just(P), st.integers(1, 9))

#: float32 entries of ordinary size or near the float32 limit, where the encoder overflows
_BIG = float(np.float32(1e37))
_near_limit = st.one_of(
    st.floats(-10, 10, width=32),
    st.floats(_BIG, FLOAT32_MAX, width=32),
    st.floats(-FLOAT32_MAX, -_BIG, width=32),
)
#: score-time tables: any table, or float32 rows near the float32 limit
score_tables = st.one_of(
    tables(st.integers(1, 50), score_cols),
    arrays(np.float32, st.tuples(st.integers(1, 50), st.just(P)), elements=_near_limit),
)


@pytest.mark.parametrize("name", NAMES)
@given(X=score_tables)
def test_score_gives_a_clear_error_or_finite_scores(name: str, X: np.ndarray) -> None:
    model = fitted_model(name)
    try:
        s = model.anomaly_score(X)
        pred = model.predict(X)
    except Exception as exc:  # noqa: BLE001
        check_error(exc, X, expected_p=P)
        if _tame(X) and X.shape[1] == P:
            _fail(exc, "an ordinary table refused")
        return
    assert X.shape[1] == P, "scores for a table of the wrong width"
    event("scored")
    check_scores(s, X.shape[0])
    assert set(np.unique(pred).tolist()) <= {-1, 1}


# ------------------------------------------------ the numpy scorer and the ONNX engine
@pytest.fixture(scope="module")
def saved_anoean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    model = fitted_model("AnoEAN")
    return model, model.save(tmp_path_factory.mktemp("props") / "anoean")


@pytest.fixture(scope="module")
def numpy_scorer(saved_anoean) -> NumpyScorer:
    return NumpyScorer.load(saved_anoean[1])


@given(X=score_tables)
def test_numpy_scorer_gives_a_clear_error_or_finite_scores(numpy_scorer, X: np.ndarray) -> None:
    try:
        s = numpy_scorer.score(X)
    except Exception as exc:  # noqa: BLE001
        if not isinstance(exc, ValueError):
            _fail(exc, "not a ValueError")
        msg = str(exc)
        if X.shape[1] != P:
            if not re.search(r"shape|features", msg):
                _fail(exc, "wrong number of columns, but the message names no shape")
            event("error: shape")
            return
        # NumpyScorer reads X as float32 (a value beyond float32 becomes inf there): a
        # non-finite value is named by row and column, and so is an unscorable row
        with np.errstate(over="ignore"):
            bad = ~np.isfinite(np.asarray(X, dtype=np.float32))
        m = re.search(r"row (\d+), column (\d+)", msg)
        if m is not None:
            i, j = int(m.group(1)), int(m.group(2))
            if not (i < X.shape[0] and j < P and bad[i, j]):
                _fail(exc, f"row {i}, column {j} is not a non-finite value of X")
            event("error: non-finite")
            return
        m = re.search(r"row (\d+) cannot be scored: column (\d+)", msg)
        if m is None or bad.any():
            _fail(exc, "no row and column named")
        assert m is not None
        if not (int(m.group(1)) < X.shape[0] and int(m.group(2)) < P):
            _fail(exc, "row or column outside X")
        event("error: unscorable row")
        return
    assert X.shape[1] == P, "scores for a table of the wrong width"
    event("scored")
    check_scores(s, X.shape[0])


@pytest.fixture(scope="module")
def onnx_fn(saved_anoean) -> Callable[[np.ndarray], np.ndarray]:
    pytest.importorskip("onnxruntime")
    from anoean.serve.engine import load_scorer

    return load_scorer(saved_anoean[1], "onnx").fn


@given(
    X=st.one_of(
        arrays(np.float32, st.tuples(st.integers(1, 50), st.just(P)), elements=_near_limit),
        tables(
            st.integers(1, 50),
            st.just(P),
            dtypes=[np.float32, np.float16, np.int64, np.uint8],
            magnitudes=[1.0, 1e3, 1e10, 1e20, 1e30, 1e37, 1e38, 3.4e38],
            extremes="finite",
        ),
    )
)
def test_onnx_engine_agrees_with_the_model_on_what_it_scores(
    saved_anoean, onnx_fn, X: np.ndarray
) -> None:
    """The ONNX engine's raw ``fn`` (no input checks) on valid float32 rows: finite where
    AnoEAN scores the row, equal to its score; non-finite exactly on the rows AnoEAN
    refuses as unscorable.

    "Equal" is rtol 1e-5 plus float32 round-off of the row's largest scaled input: a row
    such as (-3.4e38, 3.34e38, 0, 0) cancels in the first layer down to a score of 3.4e36,
    and its float32 rounding (1 ulp of 3.4e38 is 2e31) then moves the score by 1e-5 of
    itself, between engines and even within torch, with the row's place in the batch.
    """
    model, _ = saved_anoean
    onnx_s = np.asarray(onnx_fn(np.asarray(X, dtype=np.float32)), dtype=np.float64)
    assert onnx_s.shape == (X.shape[0],)
    refused = np.zeros(X.shape[0], dtype=bool)
    try:
        ref = model.anomaly_score(X)
    except UnscorableRowsError as exc:
        check_error(exc, X)
        refused[exc.rows] = True
        ref = model._unchecked_anomaly_score(X)
        np.testing.assert_array_equal(np.flatnonzero(~np.isfinite(ref)), exc.rows)
    event("some rows refused" if refused.any() else "all rows scored")
    np.testing.assert_array_equal(~np.isfinite(onnx_s), refused)
    shift, scale = model._input_scaling()
    z = np.abs((np.asarray(X, dtype=np.float64) - shift) / scale).max(axis=1)
    ok = ~refused
    tol = 1e-5 * np.abs(ref[ok]) + 1e-6 * z[ok] + 1e-5
    diff = np.abs(onnx_s[ok] - ref[ok])
    assert (diff <= tol).all(), f"ONNX {onnx_s[ok]} vs AnoEAN {ref[ok]} (tolerance {tol})"
