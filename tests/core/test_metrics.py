"""Tests of anoean.core.metrics against hand-computed values and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from anoean.core.metrics import aucpr, auroc, best_f1, evaluate

KEYS = {"aucpr", "best_f1", "false_alarm", "recall", "auroc"}


def _sk_best_f1(y, s):
    p, r, t = precision_recall_curve(y, s)
    # drop sklearn's appended (precision=1, recall=0) end point, then order thresholds
    # from high to low: among equal F1 values anoean keeps the highest threshold
    p, r = p[:-1][::-1], r[:-1][::-1]
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-300), 0.0)
    k = int(np.argmax(f1))
    return f1[k], p[k], r[k]


def test_hand_checked_example_without_ties():
    # thresholds 0.8, 0.4, 0.35, 0.1 give (P, R) = (1, .5), (.5, .5), (2/3, 1), (.5, 1)
    y = [0, 0, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8]
    m = evaluate(y, s)
    assert set(m) == KEYS
    assert m["aucpr"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert m["aucpr"] == pytest.approx(average_precision_score(y, s))
    assert m["auroc"] == pytest.approx(0.75)
    assert m["best_f1"] == pytest.approx(0.8)
    assert m["false_alarm"] == pytest.approx(1 / 3)
    assert m["recall"] == pytest.approx(1.0)
    b = best_f1(y, s)
    assert b.threshold == pytest.approx(0.35)
    assert all(isinstance(v, float) for v in m.values())


def test_ties_form_one_threshold():
    # the three 0.5 scores are flagged together: P = 2/3, R = 1 at once
    y = [1, 0, 1, 0]
    s = [0.5, 0.5, 0.5, 0.1]
    assert aucpr(y, s) == pytest.approx(2 / 3)
    assert aucpr(y, s) == pytest.approx(average_precision_score(y, s))
    assert auroc(y, s) == pytest.approx(0.75)  # one tied pair counts 1/2
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s))
    m = evaluate(y, s)
    assert m["best_f1"] == pytest.approx(0.8)
    assert m["false_alarm"] == pytest.approx(1 / 3)
    assert m["recall"] == pytest.approx(1.0)


def test_all_equal_scores_give_the_chance_level():
    y = [1, 0, 0, 0]
    s = [0.3, 0.3, 0.3, 0.3]
    m = evaluate(y, s)
    assert m["aucpr"] == pytest.approx(0.25) == pytest.approx(average_precision_score(y, s))
    assert m["auroc"] == pytest.approx(0.5)
    assert m["best_f1"] == pytest.approx(0.4)
    assert m["false_alarm"] == pytest.approx(0.75)
    assert m["recall"] == pytest.approx(1.0)


def test_perfect_and_inverted_rankings():
    y = np.array([0, 0, 0, 1, 1])
    s = np.arange(5.0)
    assert evaluate(y, s)["aucpr"] == pytest.approx(1.0)
    assert evaluate(y, s)["best_f1"] == pytest.approx(1.0)
    assert evaluate(y, s)["false_alarm"] == pytest.approx(0.0)
    assert evaluate(y, -s)["auroc"] == pytest.approx(0.0)


def test_accepts_bool_and_float_labels_and_int_scores():
    y = np.array([True, False, True])
    assert aucpr(y, [3, 1, 2]) == pytest.approx(1.0)
    assert aucpr(np.array([1.0, 0.0, 1.0]), [3, 1, 2]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("y", "s", "match"),
    [
        ([0, 1, 1], [0.1, 0.2], "differ in length"),
        ([0, 1], [0.1, float("nan")], "finite.*index 1"),
        ([0, 1], [0.1, float("inf")], "finite"),
        ([0, 2], [0.1, 0.2], "binary.*index 1"),
        ([-1, 1], [0.1, 0.2], "binary"),
        (["a", "b"], [0.1, 0.2], "binary"),
        ([0, 0, 0], [0.1, 0.2, 0.3], "only one class"),
        ([1, 1], [0.1, 0.2], "only one class"),
        ([], [], "empty"),
        ([[0, 1]], [[0.1, 0.2]], "1-D"),
    ],
)
def test_bad_inputs_raise_clear_errors(y, s, match):
    for fn in (aucpr, auroc, best_f1, evaluate):
        with pytest.raises(ValueError, match=match):
            fn(y, s)


@st.composite
def _labelled_scores(draw):
    n = draw(st.integers(2, 60))
    y = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    if len(set(y)) < 2:
        y[0], y[-1] = 0, 1
    # small integer scores make ties frequent, which is where mistakes hide
    s = draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n))
    return np.array(y), np.array(s, dtype=float)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(_labelled_scores())
def test_matches_scikit_learn_on_random_inputs_with_ties(data):
    y, s = data
    m = evaluate(y, s)
    assert m["aucpr"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    f1, p, r = _sk_best_f1(y, s)
    assert m["best_f1"] == pytest.approx(f1, abs=1e-12)
    assert m["recall"] == pytest.approx(r, abs=1e-12)
    assert m["false_alarm"] == pytest.approx(1 - p, abs=1e-12)
    # flagging score >= threshold really gives the reported F1
    b = best_f1(y, s)
    flagged = s >= b.threshold
    tp = int(np.sum(flagged & (y == 1)))
    assert 2 * tp / (flagged.sum() + (y == 1).sum()) == pytest.approx(b.f1)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.lists(
        st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers()),
        min_size=1,
        max_size=8,
    ),
    st.lists(st.integers(-2, 3), min_size=1, max_size=8),
)
def test_arbitrary_inputs_either_work_or_raise_value_error(scores, labels):
    try:
        m = evaluate(labels, scores)
    except ValueError:
        return
    assert all(0.0 <= v <= 1.0 and not math.isnan(v) for v in m.values())
