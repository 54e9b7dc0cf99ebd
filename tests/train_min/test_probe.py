"""The batched probe solver against scikit-learn's LogisticRegression on the same problems."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from train_min import probe as probe_module
from train_min.probe import fit_logistic

# The reference is asked for a tolerance at the level of rounding, where its line search says it stops early.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _reference(x: np.ndarray, y: np.ndarray, c: float) -> tuple[StandardScaler, LogisticRegression]:
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, solver="newton-cholesky", tol=1e-10, max_iter=10_000).fit(scaler.transform(x), y)
    return scaler, model


def _problems(rng: np.random.Generator, n: int, d: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, d))
    x = rng.normal(size=(n, d)) + 0.4 * centres[y] + 3.0  # offset and scale that standardisation removes
    x[:, 1] *= 50.0
    return x.astype(np.float32), y


def _subset(rng: np.random.Generator, y: np.ndarray, per_class: int) -> np.ndarray:
    mask = np.zeros(len(y), bool)
    for c in np.unique(y):
        mask[rng.choice(np.flatnonzero(y == c), min(per_class, int((y == c).sum())), replace=False)] = True
    return mask


@pytest.mark.parametrize("design", ["stacked", "shared"])
@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("d", [8, 64])
def test_matches_sklearn_on_every_problem_of_a_batch(classes: int, d: int, design: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    if design == "shared":  # the layout of large problems, forced on small ones
        monkeypatch.setattr(probe_module, "STACKED_LIMIT", 0)
    rng = np.random.default_rng(classes * 100 + d)
    x, y = _problems(rng, 240, d, classes)
    # the C grid on one training set, folds, and few-shot supports (fewer rows than features: separable)
    masks = [np.ones(len(y), bool)] * 4 + [rng.random(len(y)) < 0.7 for _ in range(3)]
    masks += [_subset(rng, y, k) for k in (1, 2, 4, 16)]
    cs = [0.001, 0.1, 10.0, 100.0, 1.0, 0.01, 100.0, 1.0, 1.0, 100.0, 0.1]
    probes = fit_logistic(x, y, np.array(masks), cs)
    assert len(probes) == len(masks)
    for mask, c, probe in zip(masks, cs, probes, strict=True):
        scaler, ref = _reference(x[mask], y[mask], c)
        np.testing.assert_array_equal(probe.classes_, ref.classes_)
        np.testing.assert_allclose(probe.mean, scaler.mean_, rtol=1e-6)
        np.testing.assert_allclose(probe.scale, scaler.scale_, rtol=1e-6)
        expected = ref.predict_proba(scaler.transform(x))
        np.testing.assert_allclose(probe.predict_proba(x), expected, atol=2e-4)
        np.testing.assert_allclose(probe.coef, ref.coef_, atol=2e-3 * max(1.0, np.abs(ref.coef_).max()))
        agree = (probe.predict(x) == ref.predict(scaler.transform(x))).mean()
        assert agree >= 0.99, (c, int(mask.sum()), agree)


def test_constant_features_and_probabilities() -> None:
    rng = np.random.default_rng(3)
    x, y = _problems(rng, 90, 6, 3)
    x[:, 2] = 7.0  # constant: scale 1, as StandardScaler
    (probe,) = fit_logistic(x, y, np.ones((1, len(y)), bool), [1.0])
    scaler, ref = _reference(x, y, 1.0)
    assert probe.scale[2] == 1.0 == scaler.scale_[2]
    proba = probe.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba, ref.predict_proba(scaler.transform(x)), atol=2e-4)


def test_a_problem_without_every_class_is_refused() -> None:
    rng = np.random.default_rng(4)
    x, y = _problems(rng, 60, 4, 3)
    mask = y != 2
    with pytest.raises(ValueError, match=r"probe 1: needs rows of every class 0\.\.2; missing \[2\]"):
        fit_logistic(x, y, np.array([np.ones(len(y), bool), mask]), [1.0, 1.0])
    with pytest.raises(ValueError, match="shapes disagree"):
        fit_logistic(x, y, np.ones((2, len(y)), bool), [1.0])
