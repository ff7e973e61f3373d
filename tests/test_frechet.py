"""Known-answer tests of the Fréchet distance and the streaming statistics (pure maths)."""

import numpy as np
import pytest
import scipy.linalg

from vgbench.metrics.frechet import FeatureStats, frechet_distance, frechet_distance_from_stats, sqrtm_sym


def _spd(d, seed):
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T / d + np.eye(d) * 0.1


def test_equal_covariances_give_squared_mean_difference():
    s = _spd(20, 0)
    mu1, mu2 = np.arange(20.0), np.arange(20.0)[::-1]
    assert frechet_distance(mu1, s, mu2, s) == pytest.approx(float(((mu1 - mu2) ** 2).sum()), rel=1e-9)


def test_diagonal_covariances_closed_form():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 2.0])
    expected = 9.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()  # |dmu|^2 + sum (sqrt a - sqrt b)^2
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_identical_sets_give_zero_even_when_singular():
    x = np.random.default_rng(1).normal(size=(50, 400))  # N=50 << D=400: rank-49 covariance
    s = FeatureStats.from_features(x)
    with pytest.warns(UserWarning, match="singular"):
        d = frechet_distance_from_stats(s, s)
    assert abs(d) < 1e-6


def test_small_n_is_finite_real_and_permutation_invariant():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(50, 400)), rng.normal(1.0, 2.0, size=(50, 400))
    d1 = frechet_distance_from_stats(FeatureStats.from_features(x), FeatureStats.from_features(y), warn=False)
    d2 = frechet_distance_from_stats(
        FeatureStats.from_features(x[rng.permutation(50)]),
        FeatureStats.from_features(y[rng.permutation(50)]),
        warn=False,
    )
    assert np.isfinite(d1) and isinstance(d1, float)
    assert d1 == pytest.approx(d2, rel=1e-10)
    assert d1 > 400  # mean shift alone contributes 400


def test_stats_match_numpy_and_merge_equals_concatenation():
    x = np.random.default_rng(3).normal(5.0, 3.0, size=(300, 40))
    s = FeatureStats.from_features(x)
    np.testing.assert_allclose(s.mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.sigma, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-12)
    parts = FeatureStats.from_features(x[:77]).merge(FeatureStats.from_features(x[77:]))
    assert parts.n == 300
    np.testing.assert_allclose(parts.sigma, s.sigma, rtol=1e-9, atol=1e-12)  # summation order only


def test_svd_route_equals_scipy_on_full_rank():
    s1, s2 = _spd(30, 4), _spd(30, 5)
    mu = np.zeros(30)
    ref = np.trace(s1) + np.trace(s2) - 2 * np.trace(np.real(scipy.linalg.sqrtm(s1 @ s2)))
    assert frechet_distance(mu, s1, mu, s2) == pytest.approx(ref, rel=1e-9)
    assert frechet_distance(mu, s1, mu, s2, sqrtm="scipy") == pytest.approx(ref, rel=1e-9)
    assert frechet_distance(mu, s1, mu, s2, dtype="float32") == pytest.approx(ref, rel=1e-4)


def test_sqrtm_sym_squares_back():
    s = _spd(10, 6)
    r = sqrtm_sym(s)
    np.testing.assert_allclose(r @ r, s, rtol=1e-10, atol=1e-12)


def test_bad_shapes_and_methods_are_refused():
    with pytest.raises(ValueError, match="shape mismatch"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="unknown sqrtm method 'eig'"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(3), sqrtm="eig")
    with pytest.raises(ValueError, match="at least 2 videos per set"):
        _ = FeatureStats.from_features(np.zeros((1, 3))).sigma
