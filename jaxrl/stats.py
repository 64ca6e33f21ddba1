"""Honest aggregate statistics for RL results after Agarwal et al. (2021), "Deep RL at the Edge
of the Statistical Precipice" (rliable), written from scratch in vectorised NumPy (not JAX; SciPy
only for ``rankdata``): this module owns the point estimates (IQM, mean, median, optimality gap,
performance profile, probability of improvement), their stratified bootstrap confidence intervals
and ``aggregate``, the JSON-ready summary. Scores are ``[runs]`` (one task) or ``[runs, tasks]``
(equal runs per task), finite and non-empty, else ``ValueError``. Statistics pool: the IQM of a
``[runs, tasks]`` array is that of all ``runs * tasks`` scores (rliable's convention), not a mean
of per-task IQMs. Every statistic takes ``axis`` (``None``: pool all; an int or tuple: pool and
reduce those axes, keep the rest), so the bootstrap evaluates all replicates at once as
``statistic(samples, axis=(-2, -1))`` on ``samples`` shaped ``[reps, runs, tasks]``; any
NumPy-style reduction (``np.mean``) or function of ``(array, axis)`` returning ``[reps, *extra]``
can be bootstrapped."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy.stats import rankdata

Axis = int | tuple[int, ...] | None
Statistic = Callable[..., Any]  # statistic(array, axis=...) -> np.ndarray | float
# A run's final return: the mean return of the episodes that finished in its last FINAL_FRACTION
# of updates, or in the last `episode_updates` (one episode of the env's longest length) if that is
# more, so that every env finishes an episode in the window. Results.final_return and
# plots.final_returns both read the window from `final_window`.
FINAL_FRACTION = 0.1


def final_window(num_updates, episode_updates=0, fraction: float = FINAL_FRACTION):
    """Updates in the final-return window (numpy-vectorised over num_updates)."""
    last = np.maximum(1, np.round(np.asarray(num_updates) * fraction).astype(int))
    return np.minimum(num_updates, np.maximum(last, episode_updates))


def episode_weights(means: Any, counts: Any) -> np.ndarray:
    """The weight of each update's mean episode return in a mean over episodes: its episode
    count, 0 where no episode finished (count 0, mean NaN)."""
    means, counts = np.asarray(means, dtype=float), np.asarray(counts, dtype=float)
    return np.where((counts > 0) & np.isfinite(means), counts, 0.0)


def count_weighted_mean(means: Any, counts: Any, axis: int = -1) -> np.ndarray:
    """The mean return over the episodes of a stretch of updates, from each update's episode
    mean and count ([..., updates]): sum(mean x count) / sum(count) along `axis`; NaN where no
    episode finished. The one rule for final returns, window returns and binned curves."""
    w = episode_weights(means, counts)
    total = np.where(w > 0, np.asarray(means, dtype=float) * w, 0.0).sum(axis)
    n = w.sum(axis)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


_CHUNK_ELEMENTS = 2**22  # bootstrap replicates are processed in chunks of ~this many numbers


def _finite(scores: Any, what: str = "scores") -> np.ndarray:
    x = np.asarray(scores, dtype=float)
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError(f"{what} must be a non-empty array of finite numbers (no NaN or inf)")
    return x


def pool(scores: Any, axis: Axis) -> np.ndarray:
    """Move the ``axis`` axes to the end and flatten them into one: ``[..., pooled]``."""
    x = _finite(scores)
    if axis is None:
        return x.reshape(-1)
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    x = np.moveaxis(x, axes, range(-len(axes), 0))
    return x.reshape(x.shape[: x.ndim - len(axes)] + (-1,))


def iqm(scores: Any, axis: Axis = None) -> np.ndarray | float:
    """Interquartile mean: the mean of the middle half of the pooled scores (for ``[runs, tasks]``
    with ``axis=None``, all runs of all tasks together, as rliable's ``aggregate_iqm``).

    Exactly ``scipy.stats.trim_mean(x, 0.25)``: with ``n`` pooled scores, ``k = floor(n / 4)``
    are cut from each end and the middle ``n - 2k`` averaged (for ``n`` not divisible by 4
    slightly more than half is kept; ``n < 4`` gives the plain mean).
    """
    x = pool(scores, axis)
    n = x.shape[-1]
    k = n // 4
    return np.partition(x, (k, n - k - 1), axis=-1)[..., k : n - k].mean(axis=-1)


def mean(scores: Any, axis: Axis = None) -> np.ndarray | float:
    """Mean of the pooled scores."""
    return pool(scores, axis).mean(axis=-1)


def median(scores: Any, axis: Axis = None) -> np.ndarray | float:
    """Median of the pooled scores. (rliable's ``aggregate_median`` is instead the median of
    per-task mean scores; the two agree for one task. That one is
    ``lambda s, axis: np.median(s.mean(axis=-2), axis=-1)`` for ``bootstrap_ci``.)"""
    return np.median(pool(scores, axis), axis=-1)


def optimality_gap(scores: Any, gamma: float = 1.0, axis: Axis = None) -> np.ndarray | float:
    """Mean shortfall from ``gamma``: ``mean(max(gamma - score, 0))`` over the pooled scores."""
    return np.maximum(gamma - pool(scores, axis), 0.0).mean(axis=-1)


def performance_profile(scores: Any, taus: Any, axis: Axis = None) -> np.ndarray:
    """Run-score distribution: fraction of pooled scores ``> tau`` for each tau.

    Returns shape ``[*kept_axes, len(taus)]``. With equal runs per task this equals the mean
    over tasks of each task's fraction of runs above ``tau`` (rliable's definition).
    """
    taus = np.asarray(taus, dtype=float).reshape(-1)
    return (pool(scores, axis)[..., None] > taus).mean(axis=-2)


def probability_of_improvement(x: Any, y: Any) -> np.ndarray | float:
    """P(X > Y) per task (ties count 1/2), averaged over tasks.

    ``x``: ``[..., runs_x, tasks]``, ``y``: ``[..., runs_y, tasks]`` (1-D means one task);
    reduces the last two axes. Per task this is the Mann-Whitney ``U / (runs_x * runs_y)``.
    """
    x, y = (_finite(a, name) for a, name in ((x, "x"), (y, "y")))
    x, y = (a[:, None] if a.ndim == 1 else a for a in (x, y))
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"x and y must have the same number of tasks, got {x.shape} and {y.shape}")
    n, m = x.shape[-2], y.shape[-2]
    rank_sum = rankdata(np.concatenate([x, y], axis=-2), axis=-2)
    u = rank_sum[..., :n, :].sum(axis=-2) - n * (n + 1) / 2
    return (u / (n * m)).mean(axis=-1)


def _check_bootstrap(scores: Any, reps: int, confidence: float, method: str) -> np.ndarray:
    x = _finite(scores)
    if x.ndim not in (1, 2):
        raise ValueError(f"scores must be shaped [runs] or [runs, tasks], got shape {x.shape}")
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 1:
        raise ValueError(f"reps must be an integer >= 1, got {reps!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in the open interval (0, 1), got {confidence!r}")
    if method not in ("percentile", "basic"):
        raise ValueError(f"method must be 'percentile' or 'basic', got {method!r}")
    return x[:, None] if x.ndim == 1 else x


def _bootstrap(
    fn: Callable[..., Any],
    arrays: list[np.ndarray],
    reps: int,
    confidence: float,
    seed: int | np.random.Generator,
    method: str,
    per_rep: int,
) -> tuple[Any, Any, Any]:
    """Stratified bootstrap of ``fn(*batched)`` where each ``[runs, tasks]`` array is resampled
    (runs with replacement, independently within each task and each array) into
    ``[k, runs, tasks]``; ``fn`` returns ``[k, *extra]``. ``per_rep`` sizes the chunks."""
    rng = np.random.default_rng(seed)
    point = np.asarray(fn(*(a[None] for a in arrays)))[0]
    chunk = max(1, _CHUNK_ELEMENTS // per_rep)
    draws = []
    for start in range(0, reps, chunk):
        k = min(chunk, reps - start)
        # a[idx, task] with idx [k, runs, tasks]: each task's runs are redrawn from that task only.
        batched = [a[rng.integers(0, len(a), size=(k, *a.shape)), np.arange(a.shape[1])] for a in arrays]
        draws.append(np.asarray(fn(*batched)))
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(np.concatenate(draws), [alpha, 1.0 - alpha], axis=0)
    if method == "basic":
        lo, hi = 2 * point - hi, 2 * point - lo
    return point[()], lo[()], hi[()]


def bootstrap_ci(
    scores: Any,
    statistic: Statistic = iqm,
    reps: int = 10_000,
    confidence: float = 0.95,
    seed: int | np.random.Generator = 0,
    method: str = "percentile",
) -> tuple[Any, Any, Any]:
    """Point estimate and stratified bootstrap CI: ``(point, lo, hi)``.

    ``scores``: ``[runs]`` or ``[runs, tasks]``. Each replicate resamples runs with replacement
    independently within every task, then applies ``statistic(samples, axis=(-2, -1))`` to all
    replicates at once (``samples``: ``[reps, runs, tasks]``). ``method``: ``"percentile"``
    (rliable's default) or ``"basic"``. Floats for scalar statistics, arrays otherwise.
    """
    x = _check_bootstrap(scores, reps, confidence, method)
    return _bootstrap(lambda s: statistic(s, axis=(-2, -1)), [x], reps, confidence, seed, method, x.size)


def performance_profile_ci(
    scores: Any,
    taus: Any,
    reps: int = 10_000,
    confidence: float = 0.95,
    seed: int | np.random.Generator = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(profile, lo, hi)``, each ``[len(taus)]``: performance profile with stratified bootstrap CIs."""
    x = _check_bootstrap(scores, reps, confidence, "percentile")
    taus = np.asarray(taus, dtype=float).reshape(-1)
    fn = lambda s: performance_profile(s, taus, axis=(-2, -1))  # noqa: E731
    return _bootstrap(fn, [x], reps, confidence, seed, "percentile", x.size * max(len(taus), 1))


def probability_of_improvement_ci(
    x: Any,
    y: Any,
    reps: int = 10_000,
    seed: int | np.random.Generator = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """``(point, lo, hi)`` for P(X > Y); x and y runs are resampled independently within each task."""
    x = _check_bootstrap(x, reps, confidence, "percentile")
    y = _check_bootstrap(y, reps, confidence, "percentile")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same number of tasks, got {x.shape} and {y.shape}")
    per_rep = 4 * (x.size + y.size)  # rankdata's working memory per replicate
    return _bootstrap(probability_of_improvement, [x, y], reps, confidence, seed, "percentile", per_rep)


def aggregate(scores: Any, reps: int = 10_000, seed: int | np.random.Generator = 0) -> dict[str, Any]:
    """JSON-ready summary (plain Python floats) of ``[runs]`` or ``[runs, tasks]`` scores:
    IQM with its 95% stratified percentile-bootstrap CI, mean, median, counts."""
    x = _check_bootstrap(scores, reps, 0.95, "percentile")
    point, lo, hi = bootstrap_ci(x, iqm, reps=reps, confidence=0.95, seed=seed)
    return {
        "iqm": float(point),
        "ci95": [float(lo), float(hi)],
        "mean": float(mean(x)),
        "median": float(median(x)),
        "runs": int(x.shape[0]),
        "tasks": int(x.shape[1]),
        "reps": int(reps),
    }


def sequential_compare(train: dict, n: int = 5, K: int = 5, alpha: float = 0.05, B: int = 10_000,
                       seed: int = 0) -> dict:
    """Add batches of seeds until "A vs B" is decided, with AdaStop (Mathieu et al. 2023; the
    optional `adastop` extra): a group-sequential permutation test with early stopping.

    `train` maps a name to a function `seeds -> scores [len(seeds)]` (e.g. final returns of
    `jaxrl.runner.run(...)`). At interim k every algorithm still in a comparison trains on the
    same fresh seeds k*n .. k*n+n-1. Returns {"decisions": {"A vs B": "larger"|"smaller"|"equal"
    |"continue"}, "seeds_used": {name: count}, "scores": {name: [...]}}."""
    try:
        from adastop import MultipleAgentsComparator
    except ImportError as error:
        raise ImportError("sequential_compare needs the optional extra: pip install adastop") from error
    names = list(train)
    comparator = MultipleAgentsComparator(n=n, K=K, B=B, alpha=alpha, seed=seed)
    scores = {name: [] for name in names}
    for k in range(K):
        active = set(range(len(names))) if k == 0 else set(np.ravel(comparator.current_comparisons))
        seeds = list(range(k * n, (k + 1) * n))
        for i, name in enumerate(names):
            if i in active:
                scores[name].extend(float(x) for x in np.asarray(train[name](seeds)))
        comparator.partial_compare({name: np.asarray(scores[name]) for name in names}, verbose=False)
        if comparator.is_finished:
            break
    decisions = {f"{names[a]} vs {names[b]}": comparator.decisions[str(np.array([a, b]))]
                 for a, b in comparator.comparisons}
    return {"decisions": decisions, "seeds_used": {name: len(s) for name, s in scores.items()},
            "scores": scores}
