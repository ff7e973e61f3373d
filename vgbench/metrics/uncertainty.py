"""How sure is a number: bootstrap intervals, the sample-count curve (FD∞, IS∞) and paired comparisons.

Everything here is pure maths on per-video contributions that an engine has already extracted (I3D features,
C3D class probabilities, per-video squared errors, NLL sums or scores): no network runs twice, and the point value
of a record is never computed here (the engines keep their own, bit-identical code path).

- **Interval** (:func:`interval`): percentile bootstrap. Each resample draws N videos with replacement from each set
  (``counts``: how often each video is drawn), independently per set and per trial, and recomputes the protocol's
  value (mean over trials). Indices depend only on (seed, stream, trial, N), never on batch size or process count.
- **Fréchet distance of a resample** (:func:`frechet_from_counts`): weighted mean and (n-1) covariance of the
  multiset, and tr sqrt(S1 S2) from eigenvalues: with S1 = F1 F1^T, the non-zero eigenvalues of S1 S2 are those of
  F1^T S2 F1, so tr sqrt(S1 S2) = sum sqrt(eig(F1^T S2 F1)) (negative round-off clipped at 0). F1 is the set's
  own centred rows when it has at most D distinct videos (rank deficient: an r x r problem), else the generalised
  symmetric problem S2 S1 v = l v (LAPACK sygv, Cholesky of S1) is solved. 1000 resamples of 2048 vs 2048 x 400
  take about 20 s on the shared 2-core development CPU, 4 times less than a loop over the Fréchet function
  (``benchmarks/bench_bootstrap.py``).
- **Curve and FD∞** (:func:`curve`): the value on nested random subsets at 8 sizes from N/8 to N, fitted by least
  squares with v(n) = v∞ + k / n. For the Fréchet distance this is FID∞ of Chong & Forsyth, "Effectively Unbiased
  FID and Inception Score and where to find them" (CVPR 2020, §3: FID_N is linear in 1/N, extrapolate to 1/N = 0);
  the same paper extrapolates the Inception Score linearly in 1/N (IS∞, §4), which is done here for protocols that
  score each trial as one split. The bias term is known in part: E||m1 - m2||^2 = ||mu1 - mu2||^2 + tr(S1)/N1 +
  tr(S2)/N2 exactly (independent sample means), while E tr S = tr Sigma (unbiased covariance) and tr sqrt(S1 S2)
  has an O(1/N) bias without closed form, which the fit absorbs.
- **Paired comparison** (:func:`compare_frechet`): A and B against the same reference, the reference resample
  shared by A and B in every iteration; Δ = v(A) - v(B), its interval and the fraction of resamples in which A is
  better.

Memory: the point value stays flat in N (streaming statistics); an interval holds the per-video contributions, for
the FVD family N x 400 float64 per set (6.6 MB for 2048 videos), and a resample's covariances (D x D).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from vgbench.errors import InputError

METHOD = "percentile bootstrap"
# Fréchet distances and Inception Scores are biased in N, and a resample (about 63 % distinct videos) more so: their
# bootstrap distribution is shifted by mean(v*) - v before its percentiles are read (the bootstrap estimate of the
# bias, Efron & Tibshirani 1993 §10.2), so that the interval is centred on the value and covers what another draw of
# N videos would give; means over videos have no such bias and use the plain percentiles.
METHOD_CENTRED = "percentile bootstrap, bias-centred"
LEVEL = 0.95
RESAMPLES = 1000
SEED = 0
CURVE_SIZES = 8  # nested subsets from N/8 to N
CURVE_MIN_FRACTION = 1 / 8
WIDE_FRACTION = 0.10  # a half-width above this fraction of |value| is noted as a wide interval
TARGET_FRACTION = 0.05  # the N suggested is the one for a ±5 % interval
STREAM_SAMPLES, STREAM_REFERENCE, STREAM_OTHER, STREAM_NESTED = 0, 1, 2, 3


@dataclass(frozen=True)
class IntervalConfig:
    """How intervals are made: recorded beside (not inside) the protocol hash, since they never change the value.

    ``curve``: True computes FD∞ / IS∞ with a bootstrap interval, False skips the curve, None (default) computes the
    curve and gives FD∞ an interval when that is cheap (:data:`CURVE_AUTO_WORK`)."""

    level: float = LEVEL
    resamples: int = RESAMPLES
    seed: int = SEED
    curve: bool | None = None

    def __post_init__(self):
        if not 0 < self.level < 1:
            raise InputError(f"interval level {self.level}: must lie strictly between 0 and 1 (e.g. 0.95)")
        if self.resamples < 10:
            raise InputError(f"--resamples {self.resamples}: need at least 10 (default {RESAMPLES})")

    def record(self, method: str = METHOD) -> dict:
        """The settings as recorded in an interval."""
        return {"level": self.level, "method": method, "resamples": self.resamples, "seed": self.seed}


@dataclass
class Contributions:
    """What an engine extracted per video, per trial, enough to recompute its value on any resample.

    ``kind``: ``frechet`` (trials of {"samples": (N, D), "reference": (M, D)} float64 features), ``inception``
    (trials of {"probs": (N, K)}; params splits, eps, shuffle_seed) or ``ratio`` (trials of {"num": (N,),
    "den": (N,)}; the value is scale * sum(num) / sum(den), e.g. squared errors over values / variance)."""

    kind: str
    trials: list[dict[str, np.ndarray]]
    params: dict = field(default_factory=dict)
    higher_is_better: bool = False

    @property
    def n(self) -> int:
        """Videos per trial (the first set's)."""
        first = self.trials[0]
        return len(first.get("samples", first.get("probs", first.get("num"))))


# ----------------------------------------------------------------------------------------------------------
# Resampling


def resample_counts(n: int, resamples: int, seed: int, stream: int = STREAM_SAMPLES, trial: int = 0) -> np.ndarray:
    """(resamples, n) int32: how often each of n videos is drawn in each resample of n draws with replacement.

    Depends only on (seed, stream, trial, n): the same videos in the same order give the same resamples whatever
    the batch size or the number of processes that extracted them."""
    if n < 1:
        raise InputError("cannot resample an empty set")
    rng = np.random.default_rng([seed, stream, trial, n])
    idx = rng.integers(0, n, size=(resamples, n))
    flat = (idx + np.arange(resamples)[:, None] * n).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(np.int32)


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """(low, high): the (1 - level)/2 and (1 + level)/2 quantiles of bootstrap values (linear interpolation)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        raise InputError("no finite bootstrap values to make an interval from")
    lo, hi = np.quantile(v, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


@contextlib.contextmanager
def _one_blas_thread():
    """Single-threaded BLAS inside (threads of our own run resamples in parallel: for 400 x 400 problems that is
    several times faster than BLAS's own threads). Without threadpoolctl, BLAS keeps its setting."""
    import scipy.linalg  # noqa: F401 - loads scipy's own BLAS first, so that the limit reaches it too
    import scipy.linalg.blas  # noqa: F401

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a declared dependency
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def parallel_map(fn: Callable[[int], float], count: int) -> np.ndarray:
    """[fn(0), ..., fn(count - 1)] as float64, on a thread per core with single-threaded BLAS; the result does not
    depend on the number of threads (each item is computed alone)."""
    with _one_blas_thread():
        workers = _workers()
        if workers == 1 or count < 4:
            return np.array([fn(i) for i in range(count)], dtype=np.float64)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            return np.fromiter(pool.map(fn, range(count), chunksize=max(1, count // (8 * workers))), np.float64, count)


# ----------------------------------------------------------------------------------------------------------
# The Fréchet distance of weighted (resampled) feature sets


class FeatureSet:
    """A feature set (N, D) prepared for repeated weighted Fréchet distances: centred once in float64."""

    def __init__(self, feats: np.ndarray):
        x = np.asarray(feats, dtype=np.float64)
        if x.ndim != 2 or len(x) < 2:
            raise InputError(f"expected per-video features (N >= 2, D), got shape {x.shape}")
        self.center = x.mean(axis=0)
        self.x = x - self.center
        self.n, self.dim = x.shape

    def moments(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """(mean, Y, n) of the multiset that draws video i counts[i] times: S = Y^T Y / (n - 1) with Y the
        distinct drawn rows, centred on the weighted mean and scaled by sqrt(count)."""
        c = np.asarray(counts)
        nz = np.flatnonzero(c)
        w = c[nz].astype(np.float64)
        n = int(w.sum())
        if n < 2:
            raise InputError(f"a Fréchet distance needs at least 2 videos per set, a resample drew {n}")
        rows = self.x[nz]
        m = w @ rows / n
        return m + self.center, (rows - m) * np.sqrt(w)[:, None], n


def _cov(y: np.ndarray, n: int) -> np.ndarray:
    from scipy.linalg.blas import dsyrk

    lower = dsyrk(1.0 / (n - 1), y, trans=1, lower=1)  # (D, D), lower triangle of Y^T Y / (n - 1)
    return lower + np.tril(lower, -1).T


def _sum_sqrt(eigs: np.ndarray) -> float:
    return float(np.sqrt(np.clip(eigs, 0.0, None)).sum())


def trace_sqrt_from_factors(y1: np.ndarray, n1: int, y2: np.ndarray, n2: int) -> float:
    """tr sqrt(S1 S2) for S_i = Y_i^T Y_i / (n_i - 1), exact for any rank (see the module docstring)."""
    import scipy.linalg

    if len(y1) > len(y2):
        y1, n1, y2, n2 = y2, n2, y1, n1
    dim = y1.shape[1]
    if len(y2) <= dim:  # both rank deficient: eig(G G^T), G = Y1 Y2^T / sqrt((n1 - 1)(n2 - 1)), r1 x r2
        g = (y1 @ y2.T) / math.sqrt((n1 - 1) * (n2 - 1))
        return _sum_sqrt(np.linalg.eigvalsh(g @ g.T))
    s2 = _cov(y2, n2)
    if len(y1) <= dim:  # eig(F1^T S2 F1), F1 = Y1^T / sqrt(n1 - 1): r1 x r1
        m = (y1 @ s2 @ y1.T) / (n1 - 1)
        return _sum_sqrt(np.linalg.eigvalsh((m + m.T) / 2))
    s1 = _cov(y1, n1)
    try:  # eig(S2 S1) by sygv: Cholesky of S1, then a symmetric problem
        return _sum_sqrt(scipy.linalg.eigh(s2, s1, type=2, eigvals_only=True, check_finite=False))
    except np.linalg.LinAlgError:  # S1 singular despite N > D (duplicated or degenerate features)
        from vgbench.metrics.frechet import sqrtm_sym

        a = sqrtm_sym(s1)
        m = a @ s2 @ a
        return _sum_sqrt(np.linalg.eigvalsh((m + m.T) / 2))


def frechet_from_counts(a: FeatureSet, b: FeatureSet, ca: np.ndarray, cb: np.ndarray) -> float:
    """Fréchet distance of the multisets drawing a's video i ca[i] times and b's video j cb[j] times (float64).

    With all counts 1 it equals :func:`vgbench.metrics.frechet.frechet_distance` of the two sets to rounding."""
    ma, ya, na = a.moments(ca)
    mb, yb, nb = b.moments(cb)
    d = ma - mb
    tr_a = float(np.einsum("ij,ij->", ya, ya)) / (na - 1)
    tr_b = float(np.einsum("ij,ij->", yb, yb)) / (nb - 1)
    return float(d @ d + tr_a + tr_b - 2.0 * trace_sqrt_from_factors(ya, na, yb, nb))


def frechet_bootstrap(a: FeatureSet, b: FeatureSet, ca: np.ndarray, cb: np.ndarray) -> np.ndarray:
    """Fréchet distances of every resample: counts (R, Na) and (R, Nb) -> (R,) float64, in parallel."""
    return parallel_map(lambda r: frechet_from_counts(a, b, ca[r], cb[r]), len(ca))


# ----------------------------------------------------------------------------------------------------------
# The Inception Score and ratio metrics of weighted sets


def inception_from_counts(probs: np.ndarray, counts: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """Inception Score of resamples of one split: probs (m, K), counts (R, m) -> (R,), tgan2's formula with every
    row weighted by its count (all counts 1: :func:`vgbench.metrics.inception.split_scores` of one split)."""
    q = np.asarray(probs, dtype=np.float64) + eps  # (m, K)
    c = np.asarray(counts, dtype=np.float64)  # (R, m)
    total = c.sum(axis=1, keepdims=True)  # (R, 1)
    marg = (c @ q) / total  # (R, K)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(q > 0, q * np.log(q), 0.0).sum(axis=1)  # (m,): sum_y q log q, 0 log 0 = 0
    log_m = np.log(np.where(marg > 0, marg, 1.0))  # a class nobody drew has q = 0 in every drawn row
    cross = (log_m @ q.T) * c  # (R, m): count x sum_y q_iy log marg_y
    kl = (c @ h - cross.sum(axis=1)) / total[:, 0]
    return np.exp(kl)


def _split_parts(n: int, splits: int) -> list[tuple[int, int]]:
    return [(i * n // splits, (i + 1) * n // splits) for i in range(splits)]


def _shuffled(probs: np.ndarray, shuffle_seed) -> np.ndarray:
    if shuffle_seed is None:
        return np.asarray(probs, dtype=np.float64)
    p = np.array(probs, dtype=np.float64)
    np.random.RandomState(shuffle_seed).shuffle(p)
    return p


# ----------------------------------------------------------------------------------------------------------
# Bootstrap values of a record


def bootstrap_values(contrib: Contributions, cfg: IntervalConfig, stream: int = STREAM_SAMPLES) -> np.ndarray:
    """The protocol's value (mean over trials) on each of ``cfg.resamples`` resamples: (R,) float64.

    ``stream`` picks the samples' random stream (``compare`` gives B another one); a reference always uses
    :data:`STREAM_REFERENCE`, so two sample sets scored against one reference share its resamples."""
    r = cfg.resamples
    per_trial = []
    for t, tr in enumerate(contrib.trials):
        if contrib.kind == "frechet":
            a, b = FeatureSet(tr["samples"]), FeatureSet(tr["reference"])
            ca = resample_counts(a.n, r, cfg.seed, stream, t)
            cb = resample_counts(b.n, r, cfg.seed, STREAM_REFERENCE, t)
            per_trial.append(frechet_bootstrap(a, b, ca, cb))
        elif contrib.kind == "inception":
            p = contrib.params
            probs = _shuffled(tr["probs"], p.get("shuffle_seed"))
            scores = []
            for s, (lo, hi) in enumerate(_split_parts(len(probs), p.get("splits", 1))):
                counts = resample_counts(hi - lo, r, cfg.seed, stream, t * 1000 + s)
                scores.append(inception_from_counts(probs[lo:hi], counts, p.get("eps", 0.0)))
            per_trial.append(np.mean(scores, axis=0))
        elif contrib.kind == "ratio":
            num, den = np.asarray(tr["num"], np.float64), np.asarray(tr["den"], np.float64)
            counts = resample_counts(len(num), r, cfg.seed, stream, t).astype(np.float64)
            per_trial.append((counts @ num) / (counts @ den) * contrib.params.get("scale", 1.0))
        else:
            raise InputError(f"unknown contribution kind {contrib.kind!r}; allowed: frechet, inception, ratio")
    return np.mean(per_trial, axis=0)


def centred(boot: np.ndarray, value: float) -> np.ndarray:
    """Bootstrap values shifted so that their mean is ``value`` (see :data:`METHOD_CENTRED`)."""
    b = np.asarray(boot, dtype=np.float64)
    return b - (np.mean(b[np.isfinite(b)]) - value)


def interval(contrib: Contributions, cfg: IntervalConfig | None = None, value: float | None = None) -> dict:
    """``{low, high, level, method, resamples, seed}`` of a record from its contributions: plain percentiles for
    means over videos, bias-centred on ``value`` (default: recomputed in float64) for FD and IS."""
    cfg = cfg or IntervalConfig()
    boot = bootstrap_values(contrib, cfg)
    if contrib.kind == "ratio":
        lo, hi = percentile_interval(boot, cfg.level)
        return {"low": lo, "high": hi, **cfg.record()}
    value = _point(contrib) if value is None else value
    lo, hi = percentile_interval(centred(boot, value), cfg.level)
    return {"low": lo, "high": hi, **cfg.record(METHOD_CENTRED)}


# ----------------------------------------------------------------------------------------------------------
# The sample-count curve


def curve_fractions(k: int = CURVE_SIZES) -> np.ndarray:
    """Fractions of N of the nested subsets: k evenly spaced from 1/8 to 1."""
    return np.linspace(CURVE_MIN_FRACTION, 1.0, k)


def fit_inverse_n(sizes: Sequence[float], values: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares fit of v(n) = v_inf + k / n: (v_inf, k, rms residual)."""
    n = np.asarray(sizes, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    design = np.stack([np.ones_like(n), 1.0 / n], axis=1)
    coef, *_ = np.linalg.lstsq(design, v, rcond=None)
    resid = v - design @ coef
    return float(coef[0]), float(coef[1]), float(np.sqrt(np.mean(resid**2)))


def nested_counts(counts: np.ndarray, sizes: Sequence[int], rng: np.random.Generator) -> list[np.ndarray]:
    """Counts of nested random subsets of the multiset ``counts`` (each video drawn counts[i] times): the
    first ``size`` draws of one random order, for every size."""
    draws = np.repeat(np.arange(len(counts)), counts)
    order = draws[rng.permutation(len(draws))]
    return [np.bincount(order[:s], minlength=len(counts)) for s in sizes]


def _sizes(n: int) -> list[int]:
    return [min(n, max(2, int(round(f * n)))) for f in curve_fractions()]


MIN_CURVE_SIZES = 3  # distinct subset sizes a fit of two parameters needs to have a residual


def _curve_values(contrib: Contributions, counts: list[list[np.ndarray]] | None, seed: int, rep: int) -> np.ndarray:
    """Values at the curve's sizes (mean over trials), on the resample given by per-trial ``counts`` (lists of
    per-set count vectors) or on the sets themselves (None)."""
    out = []
    for t, tr in enumerate(contrib.trials):
        rng = np.random.default_rng([seed, STREAM_NESTED, t, rep])
        if contrib.kind == "frechet":
            a, b = FeatureSet(tr["samples"]), FeatureSet(tr["reference"])
            ca, cb = counts[t] if counts is not None else (np.ones(a.n, np.int64), np.ones(b.n, np.int64))
            sa, sb = nested_counts(ca, _sizes(a.n), rng), nested_counts(cb, _sizes(b.n), rng)
            out.append([frechet_from_counts(a, b, x, y) for x, y in zip(sa, sb, strict=True)])
        else:  # inception, one split
            probs = np.asarray(tr["probs"], dtype=np.float64)
            c = counts[t][0] if counts is not None else np.ones(len(probs), np.int64)
            subs = np.stack(nested_counts(c, _sizes(len(probs)), rng))
            out.append(inception_from_counts(probs, subs, contrib.params.get("eps", 0.0)))
    return np.mean(out, axis=0)


# Estimated multiply-adds of an FD∞ interval (resamples x curve sizes x trials x one distance: N^2 D below the
# feature dimension, N D^2 + D^3 above it) above which it is computed only with --curve: 64 vs 64 videos (the
# quickstart) cost 1e10 and take a second; 2048 vs 2048 cost 3e12, about 8 times the fixed-N interval.
CURVE_AUTO_WORK = 5e11


def curve_defined(contrib: Contributions) -> tuple[bool, str]:
    """Whether the curve is defined for these contributions, and why not."""
    if contrib.kind != "ratio" and len(set(_sizes(contrib.n))) < MIN_CURVE_SIZES:
        return False, f"{contrib.n} videos give fewer than {MIN_CURVE_SIZES} distinct subset sizes to fit"
    if contrib.kind == "frechet":
        return True, ""
    if contrib.kind == "inception":
        if contrib.params.get("splits", 1) == 1:
            return True, ""
        return False, "IS∞ is not computed for a protocol that cuts each set into several splits"
    return False, "a mean over videos has no sample-size bias: no curve"


def curve(contrib: Contributions, cfg: IntervalConfig | None = None, with_interval: bool | None = None) -> dict:
    """The sample-count curve: {points: [{n, n_reference, value}], value_inf, k, residual, sizes} and, when
    ``with_interval`` (None: ``cfg.curve``, else by cost), ``interval_inf`` from the same bootstrap resamples."""
    cfg = cfg or IntervalConfig()
    first = contrib.trials[0]
    n = len(first["samples"] if contrib.kind == "frechet" else first["probs"])
    sizes = _sizes(n)
    values = _curve_values(contrib, None, cfg.seed, 0)
    inf, k, resid = fit_inverse_n(sizes, values)
    ref_sizes = _sizes(len(first["reference"])) if contrib.kind == "frechet" else [0] * len(sizes)
    out = {
        "formula": "v(n) = v_inf + k / n, least squares on nested random subsets (Chong & Forsyth, CVPR 2020)",
        "points": [
            {"n": s, "n_reference": m, "value": float(v)} for s, m, v in zip(sizes, ref_sizes, values, strict=True)
        ],
        "value_inf": inf,
        "k": k,
        "residual": resid,
    }
    if with_interval is None:
        with_interval = cfg.curve
    if with_interval is None:
        dim = first["samples"].shape[1] if contrib.kind == "frechet" else 1
        one = n * n * dim if n <= dim else n * dim * dim + dim**3
        with_interval = (
            contrib.kind == "inception" or cfg.resamples * len(sizes) * len(contrib.trials) * one <= CURVE_AUTO_WORK
        )
    if with_interval:
        lo, hi = percentile_interval(centred(curve_bootstrap(contrib, cfg), inf), cfg.level)
        out["interval_inf"] = {"low": lo, "high": hi, **cfg.record(METHOD_CENTRED)}
    return out


def curve_bootstrap(contrib: Contributions, cfg: IntervalConfig, stream: int = STREAM_SAMPLES) -> np.ndarray:
    """v∞ of each bootstrap resample (the same resamples as :func:`bootstrap_values`): (R,) float64."""
    per_trial_counts = []
    for t, tr in enumerate(contrib.trials):
        if contrib.kind == "frechet":
            na, nb = len(tr["samples"]), len(tr["reference"])
            per_trial_counts.append(
                (resample_counts(na, cfg.resamples, cfg.seed, stream, t),
                 resample_counts(nb, cfg.resamples, cfg.seed, STREAM_REFERENCE, t))
            )  # fmt: skip
        else:
            per_trial_counts.append((resample_counts(len(tr["probs"]), cfg.resamples, cfg.seed, stream, t),))
    n = len(contrib.trials[0]["samples" if contrib.kind == "frechet" else "probs"])
    sizes = _sizes(n)

    def one(r: int) -> float:
        counts = [[c[r] for c in trial] for trial in per_trial_counts]
        return fit_inverse_n(sizes, _curve_values(contrib, counts, cfg.seed, r + 1))[0]

    return parallel_map(one, cfg.resamples)


# ----------------------------------------------------------------------------------------------------------
# Warnings


def needed_n(n: int, value: float, half_width: float, fraction: float = TARGET_FRACTION) -> int | None:
    """The N for a half-width of ``fraction`` x |value|, from half-width ~ 1/sqrt(N): N (hw / (f |v|))^2."""
    if not value or not math.isfinite(half_width):
        return None
    return int(math.ceil(n * (half_width / (fraction * abs(value))) ** 2))


def warnings_for(value: float, iv: dict, n: int, protocol_n: int | None) -> list[str]:
    """Notes for a record: an interval wider than :data:`WIDE_FRACTION` of the value, or N below the protocol's,
    with the N that a ±5 % interval would need."""
    hw = (iv["high"] - iv["low"]) / 2
    need = needed_n(n, value, hw)
    zero = bool(value) and iv["low"] <= 0 <= iv["high"]  # a fraction of a value that may be 0 says nothing
    hint = f"; about N = {need} videos would give ±{TARGET_FRACTION:.0%}" if need and need > n and not zero else ""
    out = []
    if zero:
        out.append(f"the interval [{iv['low']:.4g}, {iv['high']:.4g}] contains 0 at N = {n}: the value is not "
                   "distinguishable from 0")  # fmt: skip
    elif value and hw > WIDE_FRACTION * abs(value):
        out.append(
            f"wide interval: ±{hw:.4g} is {hw / abs(value):.0%} of the value (over {WIDE_FRACTION:.0%}) at "
            f"N = {n}{hint}"
        )
    if protocol_n and n < protocol_n:
        out.append(f"N = {n} is below the protocol's {protocol_n}{hint if not out else ''}")
    return out


def plain_words(label: str, value: float, iv: dict | None, cv: dict | None, notes: Sequence[str] = ()) -> str:
    """One line for people: value, interval, FD∞ and the warnings."""
    text = f"{label} = {value:.6g}"
    if iv:
        text += f", {iv['level']:.0%} interval [{iv['low']:.6g}, {iv['high']:.6g}] ({iv['resamples']} resamples)"
    if cv:
        text += f"; at N -> inf {cv['value_inf']:.6g}"
        if cv.get("interval_inf"):
            text += f" [{cv['interval_inf']['low']:.6g}, {cv['interval_inf']['high']:.6g}]"
    for w in notes:
        text += f". Warning: {w}"
    return text


# ----------------------------------------------------------------------------------------------------------
# Paired comparison


def compare(
    ca: Contributions, cb: Contributions, cfg: IntervalConfig | None = None, values: tuple[float, float] | None = None
) -> dict:
    """Paired bootstrap of Δ = v(A) - v(B). A and B are redrawn independently in every resample, and a reference
    they share is redrawn once for both (the same reference resample for A and B). Mean metrics of one set of
    clips (``ratio``: NMSE, PSNR of two checkpoints on the same clips) are paired clip by clip instead.

    ``values``: the records' point values (default: recomputed in float64). Returns {"fixed_n": ..., "at_inf": ...}
    with delta, interval, fraction_a_lower (``at_inf`` where a curve is defined)."""
    cfg = cfg or IntervalConfig()
    if ca.kind != cb.kind:
        raise InputError(f"cannot compare a {ca.kind} record with a {cb.kind} one; compare one metric at a time")
    if len(ca.trials) != len(cb.trials):
        raise InputError(f"A has {len(ca.trials)} trials and B {len(cb.trials)}; compare records of one protocol")
    stream_b = STREAM_OTHER
    if ca.kind == "frechet":
        for ta, tb in zip(ca.trials, cb.trials, strict=True):
            if ta["reference"].shape != tb["reference"].shape or not np.array_equal(ta["reference"], tb["reference"]):
                raise InputError(
                    "A and B were scored against different reference features; a paired comparison needs the same "
                    "--reference (and protocol) for both"
                )
    elif ca.kind == "ratio":
        if [len(t["num"]) for t in ca.trials] != [len(t["num"]) for t in cb.trials]:
            raise InputError("A and B scored different numbers of clips; compare records made on the same clips")
        stream_b = STREAM_SAMPLES  # the same clips: paired clip by clip
    elif ca.params != cb.params:
        raise InputError(f"A and B were scored with other IS settings ({ca.params} vs {cb.params})")
    if values is None:
        values = (_point(ca), _point(cb))
    ba, bb = bootstrap_values(ca, cfg, STREAM_SAMPLES), bootstrap_values(cb, cfg, stream_b)
    na, nb = ca.n, cb.n
    nr = len(ca.trials[0]["reference"]) if ca.kind == "frechet" else 0
    shift = ca.kind != "ratio"
    out = {"fixed_n": _delta_record(values[0], values[1], ba - bb, cfg, na, nb, nr, shift)}
    if curve_defined(ca)[0]:
        ia, ib = curve(ca, cfg, False)["value_inf"], curve(cb, cfg, False)["value_inf"]
        da = curve_bootstrap(ca, cfg, STREAM_SAMPLES)
        db = curve_bootstrap(cb, cfg, stream_b)
        out["at_inf"] = _delta_record(ia, ib, da - db, cfg, na, nb, nr, shift)
    return out


def _point(contrib: Contributions) -> float:
    """The value of the sets themselves (every count 1), float64."""
    vals = []
    for tr in contrib.trials:
        if contrib.kind == "frechet":
            a, b = FeatureSet(tr["samples"]), FeatureSet(tr["reference"])
            vals.append(frechet_from_counts(a, b, np.ones(a.n, np.int64), np.ones(b.n, np.int64)))
        elif contrib.kind == "inception":
            p = contrib.params
            probs = _shuffled(tr["probs"], p.get("shuffle_seed"))
            parts = _split_parts(len(probs), p.get("splits", 1))
            ones = [
                inception_from_counts(probs[lo:hi], np.ones((1, hi - lo)), p.get("eps", 0.0))[0] for lo, hi in parts
            ]
            vals.append(float(np.mean(ones)))
        else:
            vals.append(float(np.sum(tr["num"]) / np.sum(tr["den"]) * contrib.params.get("scale", 1.0)))
    return float(np.mean(vals))


def compare_frechet(xa: np.ndarray, xb: np.ndarray, xr: np.ndarray, cfg: IntervalConfig | None = None) -> dict:
    """:func:`compare` of two feature sets (N, D) against one reference feature set."""
    ca = Contributions("frechet", [{"samples": xa, "reference": xr}])
    cb = Contributions("frechet", [{"samples": xb, "reference": xr}])
    return compare(ca, cb, cfg)


def _delta_record(
    va: float, vb: float, deltas: np.ndarray, cfg: IntervalConfig, na: int, nb: int, nr: int, shift: bool
) -> dict:
    if shift:
        deltas = centred(deltas, va - vb)
    lo, hi = percentile_interval(deltas, cfg.level)
    return {
        "value_a": va,
        "value_b": vb,
        "delta": va - vb,
        "interval": {"low": lo, "high": hi, **cfg.record(METHOD_CENTRED if shift else METHOD)},
        "fraction_a_lower": float(np.mean(deltas < 0)),
        "n_a": na,
        "n_b": nb,
        "n_reference": nr,
    }


def compare_words(metric_label: str, rec: dict, higher_is_better: bool = False, where: str = "") -> str:
    """'A's FVD is lower than B's in 99.6 % of 1000 resamples: Δ −23.4 [−31.0, −15.2]'."""
    frac_lower = rec["fraction_a_lower"]
    iv = rec["interval"]
    lower = frac_lower >= 0.5
    frac = frac_lower if lower else 1 - frac_lower
    better = lower != higher_is_better
    verdict = "better" if better else "worse"
    text = (
        f"A's {metric_label} is {'lower' if lower else 'higher'} than B's in {100 * frac:.1f} % of "
        f"{iv['resamples']} resamples{where}: Δ {rec['delta']:+.4g} [{iv['low']:+.4g}, {iv['high']:+.4g}]"
    )
    if iv["low"] <= 0 <= iv["high"]:
        text += f"; the {iv['level']:.0%} interval contains 0: no clear difference"
    else:
        text += f"; A is {verdict} at the {iv['level']:.0%} level"
    return text


# ----------------------------------------------------------------------------------------------------------
# A record's interval, curve and warnings


def annotate(result, cfg: IntervalConfig | None = None) -> None:
    """Add ``interval``, ``curve`` (where defined) and the warnings to ``result`` from its ``contributions`` (set
    by the engine); a record without them gets a note saying so. The value is never touched."""
    cfg = cfg or IntervalConfig()
    contrib = getattr(result, "contributions", None)
    if contrib is None:
        return
    result.interval = interval(contrib, cfg, float(result.value))
    defined, why = curve_defined(contrib)
    if defined and cfg.curve is not False:
        result.curve = curve(contrib, cfg)
    elif why and contrib.kind != "ratio":
        result.notes.append(f"no sample-count curve: {why}")
    protocol_n = (result.protocol_params or {}).get("num_samples")
    result.notes.extend(warnings_for(result.value, result.interval, result.n_samples, protocol_n))


def record_words(result) -> str:
    """The plain-words line of a record (``vgbench eval`` prints it on stderr, before the JSON on stdout)."""
    label = f"{result.metric}.{result.protocol}"
    iv = result.interval or None
    warns = [w for w in result.notes if w.startswith(("wide interval", "N = "))]
    return plain_words(label, result.value, iv, result.curve or None, warns)
