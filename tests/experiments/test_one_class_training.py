"""Section 3.1 of the paper: "La détection d'anomalies avec OCSVM, ALAD, AnoGAN et EGBAD sont
des méthodes *one-class*. On utilise uniquement des données normales dans la phase
d'apprentissage. Dans AnoEAN et SVM, on introduit en plus quelques exemples d'anomalies."

The reproduction hands every method the same training part, labelled anomalies included
(the SVM and AnoEAN need them), so the one-class methods must leave those rows out
themselves. Their weights must not depend on them; only the validation set (early stopping,
model selection, threshold) may hold anomalies, as the paper selects every model on the
validation AUC."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from _baseline_helpers import tabular_problem

from anoean.core.modelfile import WEIGHTS_FILE
from anoean.experiments import runner
from anoean.experiments.methods import method_spec

ONE_CLASS = ("ocsvm", "anogan", "egbad", "alad")
#: the methods that learn from the labelled anomalies: the controls that show the
#: comparison below can tell training rows apart
USES_ANOMALIES = ("svm", "anoean")


@pytest.fixture(scope="module")
def tab():
    return tabular_problem()


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _params(name: str) -> dict[str, Any]:
    """The experiment's own settings of ``name`` on a table (quick mode), shortened."""
    params: dict[str, Any] = {**method_spec(name, images=False, quick=True).fixed}
    if "max_epochs" in params:
        params.update(max_epochs=3)
    if name in ("anogan", "egbad", "alad"):
        params.update(batch_size=32, lr=1e-3)
    if name == "anogan":
        params.update(n_search_iter=5)
    return {**params, "random_state": 0}


def _fit(name: str, X: np.ndarray, y: np.ndarray, tab: Any) -> Any:
    cls = method_spec(name, images=False, quick=True).estimator_class()
    return cls(**_params(name)).fit(X, y, X_val=tab.X_val, y_val=tab.y_val)


def _without_some_anomalies(tab: Any, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """The training part with only the first ``keep`` labelled anomalies."""
    anomalies = np.flatnonzero(tab.y_train == 1)
    rows = np.r_[np.flatnonzero(tab.y_train == 0), anomalies[:keep]]
    return tab.X_train[rows], tab.y_train[rows]


@pytest.mark.parametrize("name", ONE_CLASS + USES_ANOMALIES)
def test_only_anoean_and_the_svm_learn_from_the_training_anomalies(name, tab):
    full = _fit(name, tab.X_train, tab.y_train, tab)
    half = _fit(name, *_without_some_anomalies(tab, int(tab.y_train.sum()) // 2), tab)
    same = full.model_files()[WEIGHTS_FILE] == half.model_files()[WEIGHTS_FILE]
    if name in USES_ANOMALIES:
        assert not same, f"{name}'s weights should depend on the labelled anomalies"
        return
    assert same
    none = _fit(name, *_without_some_anomalies(tab, 0), tab)
    assert full.model_files()[WEIGHTS_FILE] == none.model_files()[WEIGHTS_FILE]
    # the threshold comes from the validation normals, the same in all three fits
    assert full.threshold_ == half.threshold_ == none.threshold_
    np.testing.assert_array_equal(full.anomaly_score(tab.X_test), none.anomaly_score(tab.X_test))


def _fake_split(tab: Any, keep_anomalies: bool) -> SimpleNamespace:
    X, y = (tab.X_train, tab.y_train) if keep_anomalies else _without_some_anomalies(tab, 0)
    return SimpleNamespace(
        name="synthetic",
        X_train=X,
        y_train=y,
        X_val=tab.X_val,
        y_val=tab.y_val,
        X_test=tab.X_test,
        y_test=tab.y_test,
        c_test=np.where(tab.y_test == 1, 1, 0),
        seen=(1,),
        to_dict=lambda: {"name": "synthetic"},
        describe=lambda: "synthetic",
    )


@pytest.mark.parametrize("name", ONE_CLASS)
def test_the_runner_trains_the_one_class_methods_on_normals_only(name, tab, monkeypatch):
    """Through :func:`anoean.experiments.runner.run_one`, the code path of the reproduction:
    a run whose training part holds labelled anomalies records the same selection and test
    metrics as one whose training part holds none."""
    from anoean.data import protocol
    from anoean.experiments import methods

    spec = methods.method_spec

    def short_spec(*args: Any, **kwargs: Any) -> Any:
        s = spec(*args, **kwargs)
        return type(s)(name=s.name, grid=s.grid, fixed={**s.fixed, **_params(s.name)})

    monkeypatch.setattr(runner, "method_spec", short_spec)
    records = []
    for keep in (True, False):
        monkeypatch.setattr(
            protocol, "make_split", lambda *a, keep=keep, **k: _fake_split(tab, keep)
        )
        run = runner.Run("synthetic", "all", name, 0, "synthetic")
        records.append(runner.run_one(run, quick=True))
    with_anomalies, normals_only = records
    assert with_anomalies["split"] == {"name": "synthetic"}
    for key in ("metrics", "metrics_by_group", "val_aucpr", "epochs"):
        assert with_anomalies[key] == normals_only[key], key
    assert with_anomalies["config"]["selected"] == normals_only["config"]["selected"]
