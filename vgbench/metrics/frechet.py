"""Fréchet distance between Gaussians fitted to feature sets, and streaming sufficient statistics.

Parity: :func:`frechet_distance` with ``sqrtm="svd"`` follows TF-GAN's
``frechet_classifier_distance_from_activations`` (metrics.md §3.5): float64, unbiased (n-1) covariances,
tr sqrt(S1 S2) = tr sqrtm_sym(A S2 A) with A = sqrtm_sym(S1), where sqrtm_sym keeps singular values below
1e-10 unchanged. This route stays finite and real when covariances are singular (any N <= feature dim).
``sqrtm="scipy"`` is StyleGAN-V's ``scipy.linalg.sqrtm(S1 S2)`` (real part), for that protocol only.

    FD = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from vgbench.errors import InputError

SVD_EPS = 1e-10  # TF-GAN's threshold below which singular values are not square-rooted


def sqrtm_sym(mat: np.ndarray, eps: float = SVD_EPS) -> np.ndarray:
    """Square root of a symmetric PSD matrix via SVD, TF-GAN style (values < eps kept as they are)."""
    u, s, vh = np.linalg.svd(mat)
    si = np.where(s < eps, s, np.sqrt(s))
    return (u * si) @ vh


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr sqrt(S1 S2) computed as tr sqrtm_sym(A S2 A), A = sqrtm_sym(S1): symmetric, hence stable."""
    a = sqrtm_sym(sigma1)
    return float(np.trace(sqrtm_sym(a @ sigma2 @ a)))


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, sqrtm: str = "svd", dtype: str = "float64"
) -> float:
    """Fréchet distance of N(mu1, sigma1) and N(mu2, sigma2), computed in ``dtype``."""
    dt = np.dtype(dtype)
    mu1, mu2, sigma1, sigma2 = (np.asarray(a, dtype=dt) for a in (mu1, mu2, sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise InputError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    if sqrtm == "svd":
        tr_covmean = trace_sqrt_product(sigma1, sigma2)
    elif sqrtm == "scipy":
        import scipy.linalg

        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        tr_covmean = float(np.trace(np.real(covmean)))
    else:
        raise InputError(f"unknown sqrtm method {sqrtm!r}; allowed: 'svd', 'scipy'")
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


@dataclass
class FeatureStats:
    """Streaming sufficient statistics of a feature set: count, sum and sum of outer products (float64).

    Memory is O(D^2) whatever the number of samples. ``merge`` adds two partial statistics (for sharded or
    distributed extraction); the result equals the statistics of the concatenated sets.
    """

    n: int
    sum: np.ndarray  # (D,)
    sum_outer: np.ndarray  # (D, D)
    features: np.ndarray | None = None  # (n, D) per-video features when kept (intervals); never used by the value

    @classmethod
    def empty(cls, dim: int) -> FeatureStats:
        """Statistics of no samples."""
        return cls(0, np.zeros(dim, np.float64), np.zeros((dim, dim), np.float64))

    @classmethod
    def from_features(cls, feats: np.ndarray) -> FeatureStats:
        """Statistics of an (N, D) array."""
        s = cls.empty(feats.shape[1])
        s.update(feats)
        return s

    def update(self, feats: np.ndarray) -> None:
        """Add an (N, D) batch."""
        f = np.asarray(feats, dtype=np.float64)
        if f.ndim != 2 or f.shape[1] != self.sum.shape[0]:
            raise InputError(f"expected features of shape (N, {self.sum.shape[0]}), got {f.shape}")
        self.n += f.shape[0]
        self.sum += f.sum(axis=0)
        self.sum_outer += f.T @ f

    def merge(self, other: FeatureStats) -> FeatureStats:
        """The statistics of both sets together."""
        return FeatureStats(self.n + other.n, self.sum + other.sum, self.sum_outer + other.sum_outer)

    @property
    def mu(self) -> np.ndarray:
        """Mean feature."""
        return self.sum / self.n

    @property
    def sigma(self) -> np.ndarray:
        """Unbiased (n-1) covariance."""
        if self.n < 2:
            raise InputError(
                f"a Fréchet distance needs at least 2 videos per set to estimate a covariance, got {self.n}; "
                "provide more videos"
            )
        mu = self.mu
        cov = (self.sum_outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return (cov + cov.T) / 2  # exact symmetry against rounding


def frechet_distance_from_stats(
    a: FeatureStats, b: FeatureStats, sqrtm: str = "svd", dtype: str = "float64", warn: bool = True
) -> float:
    """Fréchet distance of two feature statistics; warns when a covariance is necessarily singular."""
    dim = a.sum.shape[0]
    if warn and min(a.n, b.n) <= dim:
        warnings.warn(
            f"N = {min(a.n, b.n)} samples <= feature dimension {dim}: the covariance is singular (rank <= N-1) "
            "and the distance is biased upwards; compare only numbers made with the same N.",
            stacklevel=2,
        )
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma, sqrtm=sqrtm, dtype=dtype)
