"""scikit-learn model selection with anomaly detectors: ``score(X, y)`` and the scorers
``anoean.metrics.aucpr_scorer`` / ``auroc_scorer`` rank by the anomaly score, where the stock
string scorers (built on decision_function, higher for more normal) come out inverted."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline

from anoean.baselines import OCSVM
from anoean.metrics import aucpr, aucpr_scorer, auroc, auroc_scorer


class PickColumn(TransformerMixin, BaseEstimator):
    """Keep column ``k`` only: the parameter the searches below must choose."""

    def __init__(self, k: int = 0) -> None:
        self.k = k

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X)[:, [self.k]]


def _data(seed: int = 0):
    """Anomalies differ from the normals in column 0 only; column 1 is noise for both."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, 2))
    y = np.zeros(400, dtype=int)
    y[:40] = 1
    X[:40, 0] += rng.choice([-5.0, 5.0], size=40)
    return X, y


CV = StratifiedKFold(3, shuffle=True, random_state=0)
GRID = {"pick__k": [1, 0]}


def _search(scoring):
    pipe = Pipeline([("pick", PickColumn()), ("det", OCSVM(random_state=0))])
    return GridSearchCV(pipe, GRID, scoring=scoring, cv=CV).fit(*_data())


def test_score_is_the_aucpr_of_the_anomaly_score():
    X, y = _data()
    det = OCSVM(random_state=0).fit(X[y == 0])
    assert det.score(X, y) == pytest.approx(aucpr(y, det.anomaly_score(X)))
    assert aucpr_scorer(det, X, y) == det.score(X, y)
    assert auroc_scorer(det, X, y) == pytest.approx(auroc(y, det.anomaly_score(X)))
    with pytest.raises(ValueError, match="only one class"):
        det.score(X[y == 0], y[y == 0])


@pytest.mark.parametrize("scoring", [None, aucpr_scorer, auroc_scorer])
def test_grid_search_picks_the_informative_column(scoring):
    search = _search(scoring)
    assert search.best_params_ == {"pick__k": 0}
    assert search.best_score_ > 0.8  # column 1 alone is at chance (about 0.1 / 0.5)


def test_the_stock_string_scorers_are_inverted():
    """What the docs warn about: "average_precision" ranks by decision_function."""
    stock = _search("average_precision")
    assert stock.best_params_ == {"pick__k": 1}  # the wrong column wins
    X, y = _data()
    det = OCSVM(random_state=0)
    ours = cross_val_score(det, X, y, cv=CV).mean()  # score(X, y) without scoring
    inverted = cross_val_score(det, X, y, cv=CV, scoring="average_precision").mean()
    assert ours > 0.8 > 0.3 > inverted


def test_scorers_accept_a_pipeline_without_anomaly_score():
    X, y = _data()
    pipe = Pipeline([("pick", PickColumn(0)), ("det", OCSVM(random_state=0))]).fit(X, y)
    assert not hasattr(pipe, "anomaly_score")
    expected = aucpr(y, pipe[-1].anomaly_score(X[:, [0]]))
    assert aucpr_scorer(pipe, X, y) == pytest.approx(expected)
    assert pipe.score(X, y) == pytest.approx(expected)


def test_transform_names_its_columns_and_follows_set_output():
    import pandas as pd  # a dev dependency: this test must run in CI

    from anoean import AnoEAN, AnoEANPlus

    X, _ = _data()
    kw = {"max_epochs": 1, "latent_dim": 3, "device": "cpu", "random_state": 0}
    det = AnoEAN(**kw).fit(X)
    assert list(det.get_feature_names_out()) == ["anoean0", "anoean1", "anoean2"]
    codes = det.transform(X[:4])
    det.set_output(transform="pandas")
    frame = det.transform(X[:4])
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == [
        "anoean0",
        "anoean1",
        "anoean2",
    ]
    np.testing.assert_array_equal(frame.to_numpy(), codes)
    plus = AnoEANPlus(**kw, n_members=2).fit(X)
    assert len(plus.get_feature_names_out()) == 6 == plus.transform(X[:2]).shape[1]
