"""Tests for jaxrl.stats: point estimates against SciPy/NumPy, bootstrap behaviour, errors."""

import inspect
import json

import numpy as np
import pytest
import scipy.stats

from jaxrl import stats

pytestmark = pytest.mark.timeout(60)


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- point estimates


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 17, 64, 101, 320])
def test_iqm_matches_scipy_trim_mean(n):
    x = _rng(n).normal(size=n)
    np.testing.assert_allclose(stats.iqm(x), scipy.stats.trim_mean(x, 0.25), rtol=1e-12, atol=1e-12)


def test_iqm_trims_floor_quarter_from_each_end():
    # n = 7: floor(7 / 4) = 1 cut from each end, the middle 5 averaged (what trim_mean does).
    x = np.array([100.0, 1, 2, 3, 4, 5, -100])
    assert stats.iqm(x) == pytest.approx(3.0) == scipy.stats.trim_mean(x, 0.25)


@pytest.mark.parametrize("shape", [(10, 3), (7, 5), (64, 5), (3, 1)])
def test_iqm_pools_runs_and_tasks(shape):
    x = _rng(1).gamma(2.0, size=shape)
    np.testing.assert_allclose(stats.iqm(x), scipy.stats.trim_mean(x, 0.25, axis=None), rtol=1e-12)


def test_statistics_reduce_given_axes_and_keep_others():
    x = _rng(2).normal(size=(6, 9, 4))  # [reps, runs, tasks]
    for ours, ref in [
        (stats.iqm, lambda a: scipy.stats.trim_mean(a, 0.25, axis=None)),
        (stats.mean, np.mean),
        (stats.median, np.median),
    ]:
        np.testing.assert_allclose(ours(x, axis=(-2, -1)), [ref(a) for a in x], rtol=1e-12)
        np.testing.assert_allclose(ours(x, axis=(1, 2)), [ref(a) for a in x], rtol=1e-12)
    np.testing.assert_allclose(stats.iqm(x, axis=0), scipy.stats.trim_mean(x, 0.25, axis=0), rtol=1e-12)


@pytest.mark.parametrize("shape", [(5,), (8,), (10, 3), (7, 5)])
def test_mean_and_median_match_numpy_pooled(shape):
    x = _rng(3).normal(size=shape)
    assert stats.mean(x) == pytest.approx(np.mean(x))
    assert stats.median(x) == pytest.approx(np.median(x))


def test_optimality_gap_hand_example():
    x = np.array([[0.5, 1.2], [1.0, 0.0]])  # shortfalls from 1: 0.5, 0, 0, 1 -> mean 0.375
    assert stats.optimality_gap(x) == pytest.approx(0.375)
    assert stats.optimality_gap(x, gamma=2.0) == pytest.approx((1.5 + 0.8 + 1.0 + 2.0) / 4)
    assert stats.optimality_gap(np.full(4, 3.0)) == 0.0


def test_integer_input_is_accepted():
    assert stats.iqm([1, 2, 3, 4]) == pytest.approx(2.5)


# ---------------------------------------------------------------- bootstrap CIs


def test_bootstrap_reproducible_with_same_seed():
    x = _rng(4).normal(size=(20, 3))
    a = stats.bootstrap_ci(x, reps=2000, seed=7)
    assert stats.bootstrap_ci(x, reps=2000, seed=7) == a
    assert stats.bootstrap_ci(x, reps=2000, seed=8) != a


@pytest.mark.parametrize(
    "statistic", [stats.iqm, stats.mean, stats.median, stats.optimality_gap, np.mean]
)
def test_bootstrap_ci_contains_point_estimate(statistic):
    x = _rng(5).gamma(2.0, size=(30, 4)) / 4
    point, lo, hi = stats.bootstrap_ci(x, statistic, reps=3000)
    assert point == pytest.approx(statistic(x, axis=(-2, -1)))
    assert lo < point < hi


def test_bootstrap_1d_equals_single_task():
    x = _rng(6).normal(size=25)
    assert stats.bootstrap_ci(x, reps=1000) == stats.bootstrap_ci(x[:, None], reps=1000)


def test_bootstrap_ci_narrows_with_more_runs():
    rng = _rng(7)
    widths = []
    for n in (10, 40, 160):
        _, lo, hi = stats.bootstrap_ci(rng.normal(size=(n, 3)), reps=3000)
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2] > 0


def test_bootstrap_constant_tasks_give_zero_width_ci():
    # Each task constant (but tasks differ): a stratified bootstrap can only redraw the same
    # values; an unstratified resample of the pooled scores would not.
    x = np.tile([0.0, 1.0, 5.0], (12, 1))
    for statistic in (stats.iqm, stats.mean, stats.median):
        point, lo, hi = stats.bootstrap_ci(x, statistic, reps=2000)
        assert lo == point == hi


def test_bootstrap_constant_task_contributes_nothing():
    # Every replicate of the mean over [variable task, constant task] is (variable-task mean + c) / 2:
    # the constant task adds no spread, so the CI is half as wide (up to Monte-Carlo error).
    x = _rng(8).normal(size=40)
    both = np.stack([x, np.full(40, 3.0)], axis=1)
    _, lo1, hi1 = stats.bootstrap_ci(x, stats.mean, reps=20_000, seed=1)
    _, lo2, hi2 = stats.bootstrap_ci(both, stats.mean, reps=20_000, seed=2)
    assert (hi2 - lo2) == pytest.approx((hi1 - lo1) / 2, rel=0.05)


def test_bootstrap_resamples_within_each_task_independently():
    runs, tasks = 9, 4
    x = 100.0 * np.arange(tasks) + np.arange(runs)[:, None]  # task t holds 100t + 0..8
    seen = []

    def record(samples, axis):
        seen.append(samples)
        return samples.mean(axis=axis)

    stats.bootstrap_ci(x, record, reps=500)
    samples = np.concatenate(seen[1:])  # seen[0] is the point estimate on the original data
    assert samples.shape == (500, runs, tasks)
    assert np.all(samples // 100 == np.arange(tasks))  # values never leave their task
    # Tasks are resampled with independent indices, not whole runs (rows) at once:
    assert not np.array_equal(samples[..., 0] % 100, samples[..., 1] % 100)
    # So perfectly anti-correlated tasks still give a CI of nonzero width.
    _, lo, hi = stats.bootstrap_ci(np.stack([x[:, 0], -x[:, 0]], 1), stats.mean, reps=2000)
    assert hi - lo > 0.5


def _scipy_rng_kwarg(seed):
    params = inspect.signature(scipy.stats.bootstrap).parameters
    return {"rng" if "rng" in params else "random_state": np.random.default_rng(seed)}


@pytest.mark.parametrize("method", ["percentile", "basic"])
def test_percentile_ci_matches_scipy_bootstrap(method):
    x = _rng(9).exponential(size=50)
    reps = 50_000
    point, lo, hi = stats.bootstrap_ci(x, stats.mean, reps=reps, seed=0, method=method)
    ref = scipy.stats.bootstrap(
        (x,), np.mean, n_resamples=reps, vectorized=True, method=method, **_scipy_rng_kwarg(0)
    ).confidence_interval
    # Monte-Carlo sd of a 2.5% quantile at 50k reps is ~0.3% of the CI width; allow ~10 sd.
    tol = 0.03 * (hi - lo)
    assert point == pytest.approx(x.mean())
    assert lo == pytest.approx(ref.low, abs=tol)
    assert hi == pytest.approx(ref.high, abs=tol)


def test_percentile_ci_coverage_sanity():
    rng = _rng(10)
    trials = 300
    hits = 0
    for seed in range(trials):
        _, lo, hi = stats.bootstrap_ci(rng.normal(size=30), stats.mean, reps=1000, seed=seed)
        hits += lo <= 0.0 <= hi
    assert 0.87 <= hits / trials <= 0.99  # percentile bootstrap undercovers slightly at n = 30


def test_bootstrap_vector_statistic_returns_arrays():
    x = _rng(11).normal(size=(20, 2))
    both = lambda s, axis: np.stack([stats.mean(s, axis), stats.iqm(s, axis)], -1)  # noqa: E731
    point, lo, hi = stats.bootstrap_ci(x, both, reps=500)
    assert point.shape == lo.shape == hi.shape == (2,)
    assert np.all(lo <= point) and np.all(point <= hi)


def test_bootstrap_many_reps_is_vectorised():
    # 50k replicates of 64 runs x 5 tasks must run in seconds; the 60 s module timeout guards
    # it, with no assertion on wall-clock time (machines differ).
    x = _rng(12).normal(size=(64, 5))
    point, lo, hi = stats.bootstrap_ci(x, stats.iqm, reps=50_000)
    assert lo < point < hi
    p, plo, phi = stats.probability_of_improvement_ci(x, x + 0.2, reps=50_000)
    assert plo < p < phi < 0.5


# ---------------------------------------------------------------- probability of improvement


def test_probability_of_improvement_hand_example():
    # pairs (x, y): (1,0)=1, (1,2)=0, (2,0)=1, (2,2)=1/2 -> 2.5 / 4
    assert stats.probability_of_improvement([1.0, 2.0], [0.0, 2.0]) == pytest.approx(0.625)
    assert stats.probability_of_improvement([0.0, 2.0], [1.0, 2.0]) == pytest.approx(0.375)


@pytest.mark.parametrize("n, m, tasks", [(10, 10, 1), (7, 12, 3), (30, 25, 5)])
def test_probability_of_improvement_matches_mann_whitney(n, m, tasks):
    rng = _rng(n + m)
    x = rng.normal(size=(n, tasks)).round(1)  # rounding makes ties
    y = (rng.normal(size=(m, tasks)) + 0.3).round(1)
    u = [scipy.stats.mannwhitneyu(x[:, t], y[:, t]).statistic / (n * m) for t in range(tasks)]
    assert stats.probability_of_improvement(x, y) == pytest.approx(np.mean(u))
    poi = stats.probability_of_improvement
    assert poi(x, y) + poi(y, x) == pytest.approx(1.0)
    assert stats.probability_of_improvement(x, x) == pytest.approx(0.5)


def test_probability_of_improvement_ci():
    rng = _rng(13)
    x, y = rng.normal(size=(20, 3)), rng.normal(size=(15, 3)) + 0.5
    a = stats.probability_of_improvement_ci(x, y, reps=4000, seed=3)
    assert a == stats.probability_of_improvement_ci(x, y, reps=4000, seed=3)
    point, lo, hi = a
    assert point == pytest.approx(stats.probability_of_improvement(x, y))
    assert 0.0 <= lo < point < hi <= 1.0
    same = stats.probability_of_improvement_ci(np.ones((5, 2)), np.ones((4, 2)), reps=100)
    assert same == (0.5, 0.5, 0.5)


# ---------------------------------------------------------------- performance profiles


def test_performance_profile_hand_example():
    x = np.array([[0.0, 1.0], [2.0, 3.0]])  # [runs, tasks]
    profile = stats.performance_profile(x, [-1.0, 0.0, 1.5, 3.0])
    np.testing.assert_allclose(profile, [1.0, 0.75, 0.5, 0.0])
    assert stats.performance_profile(x, 1.0).shape == (1,)


def test_performance_profile_is_mean_of_per_task_fractions():
    x = _rng(14).normal(size=(11, 4))
    taus = np.linspace(-2, 2, 9)
    per_task = np.mean([[np.mean(x[:, t] > tau) for t in range(4)] for tau in taus], axis=1)
    np.testing.assert_allclose(stats.performance_profile(x, taus), per_task)


def test_performance_profile_ci():
    x = _rng(15).normal(size=(25, 3))
    taus = np.linspace(-3, 3, 13)
    profile, lo, hi = stats.performance_profile_ci(x, taus, reps=3000)
    assert profile.shape == lo.shape == hi.shape == (13,)
    np.testing.assert_allclose(profile, stats.performance_profile(x, taus))
    assert np.all(lo <= profile) and np.all(profile <= hi)
    assert np.all(np.diff(profile) <= 0) and lo[0] == hi[0] == 1.0 and lo[-1] == hi[-1] == 0.0


# ---------------------------------------------------------------- aggregate and errors


def test_aggregate_is_json_ready():
    x = _rng(16).normal(size=(16, 2))
    out = stats.aggregate(x, reps=1000, seed=0)
    json.dumps(out)
    assert out["iqm"] == pytest.approx(stats.iqm(x)) and type(out["iqm"]) is float
    assert [type(v) for v in out["ci95"]] == [float, float]
    assert out["ci95"][0] < out["iqm"] < out["ci95"][1]
    assert out["mean"] == pytest.approx(x.mean()) and out["median"] == pytest.approx(np.median(x))
    assert (out["runs"], out["tasks"], out["reps"]) == (16, 2, 1000)
    assert out == stats.aggregate(x, reps=1000, seed=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scores": []}, "non-empty"),
        ({"scores": np.zeros((0, 3))}, "non-empty"),
        ({"scores": [1.0, np.nan, 2.0]}, "NaN"),
        ({"scores": [1.0, np.inf]}, "finite"),
        ({"scores": np.zeros((2, 2, 2))}, r"\[runs\] or \[runs, tasks\]"),
        ({"reps": 0}, "reps"),
        ({"reps": 2.5}, "reps"),
        ({"confidence": 0.0}, "confidence"),
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 95}, "confidence"),
        ({"method": "bca"}, "method"),
    ],
)
def test_bootstrap_bad_input_raises(kwargs, match):
    kwargs = {"scores": np.ones((4, 2)), **kwargs}
    with pytest.raises(ValueError, match=match):
        stats.bootstrap_ci(**kwargs)


def test_other_bad_input_raises():
    for fn in (stats.iqm, stats.mean, stats.median, stats.optimality_gap):
        with pytest.raises(ValueError, match="non-empty"):
            fn([])
        with pytest.raises(ValueError, match="NaN"):
            fn([[1.0, np.nan]])
    with pytest.raises(ValueError, match="same number of tasks"):
        stats.probability_of_improvement(np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="same number of tasks"):
        stats.probability_of_improvement_ci(np.ones((3, 2)), np.ones((3, 3)), reps=10)
    with pytest.raises(ValueError, match="NaN"):
        stats.probability_of_improvement([1.0], [np.nan])
    with pytest.raises(ValueError, match="NaN"):
        stats.performance_profile_ci([np.nan], [0.0])
    with pytest.raises(ValueError, match="confidence"):
        stats.performance_profile_ci([1.0, 2.0], [0.0], confidence=-0.1)


# ---------------------------------------------------------------- rliable cross-check


def test_matches_rliable_point_estimates_and_intervals():
    pytest.importorskip("rliable")
    from rliable import library as rly
    from rliable import metrics

    x = _rng(17).gamma(2.0, size=(10, 5)) / 2
    def fn(s):
        gap = metrics.aggregate_optimality_gap(s)
        return np.array([metrics.aggregate_iqm(s), metrics.aggregate_mean(s), gap])

    points, intervals = rly.get_interval_estimates({"a": x}, fn, reps=20_000)
    (ref_iqm, ref_mean, ref_gap), (ref_lo, ref_hi) = points["a"], intervals["a"][:, 0]
    assert stats.iqm(x) == pytest.approx(ref_iqm, rel=1e-12)
    assert stats.mean(x) == pytest.approx(ref_mean, rel=1e-12)
    assert stats.optimality_gap(x) == pytest.approx(ref_gap, rel=1e-12)
    _, lo, hi = stats.bootstrap_ci(x, stats.iqm, reps=20_000)
    assert lo == pytest.approx(ref_lo, abs=0.05 * (hi - lo))  # independent Monte-Carlo draws
    assert hi == pytest.approx(ref_hi, abs=0.05 * (hi - lo))
    xr, yr = x.round(1), (_rng(18).gamma(2.2, size=(12, 5)) / 2).round(1)
    ref_poi = metrics.probability_of_improvement(xr, yr)
    assert stats.probability_of_improvement(xr, yr) == pytest.approx(ref_poi)
    taus = np.linspace(0, 3, 7)
    profiles, _ = rly.create_performance_profile({"a": x}, taus, reps=10)
    np.testing.assert_allclose(stats.performance_profile(x, taus), profiles["a"])


def test_sequential_compare_with_adastop():
    pytest.importorskip("adastop")
    from jaxrl.stats import sequential_compare

    def scores(mean):
        return lambda seeds: np.array([np.random.default_rng(s).normal(mean, 1.0) for s in seeds])

    out = sequential_compare({"A": scores(3.0), "B": scores(0.0)}, n=5, K=4, alpha=0.05, B=2000)
    assert out["decisions"] == {"A vs B": "larger"}
    assert out["seeds_used"]["A"] == out["seeds_used"]["B"] < 20  # stopped early: clear-cut
    same = sequential_compare({"A": scores(0.0), "B": scores(0.0)}, n=5, K=4, alpha=0.05, B=2000)
    assert same["decisions"]["A vs B"] in ("equal", "continue")


def test_count_weighted_mean_is_the_mean_over_episodes():
    """Against a plain loop over the episodes each update reports (NaN mean: none finished)."""
    from jaxrl.stats import count_weighted_mean

    rng = np.random.default_rng(0)
    counts = rng.integers(0, 3, size=(4, 9)).astype(float)
    means = np.where(counts > 0, rng.normal(size=(4, 9)), np.nan)
    counts[0] = 0  # a run with no finished episode
    means[0] = np.nan
    got = count_weighted_mean(means, counts)
    for r in range(4):
        episodes = [m for m, c in zip(means[r], counts[r]) for _ in range(int(c))]
        want = np.mean(episodes) if episodes else np.nan
        np.testing.assert_allclose(got[r], want, equal_nan=True)
