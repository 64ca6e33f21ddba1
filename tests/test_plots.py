"""Tests for jaxrl.plots on synthetic metrics.csv folders (no training): which figures are written
and that they are real PNGs, the final-return definition against a hand computation and against
`Results.final_return`, smoothing and NaN handling, and the error for a folder with no metrics."""
import itertools
import json

import numpy as np
import pandas as pd
import pytest

from jaxrl import plots

pytestmark = pytest.mark.timeout(120)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def synthetic_metrics(varying=("lr", "ent_coef"), seeds=4, updates=40, steps_per_update=512,
                      nan_every=3, seed=0) -> pd.DataFrame:
    """A tidy table shaped like Results.to_dataframe(): a config per combination of the `varying`
    hyperparameters (2 values each), returns rising with lr, some updates with no finished
    episode."""
    rng = np.random.default_rng(seed)
    values = {"lr": (1e-4, 1e-3), "ent_coef": (0.0, 0.01), "gamma": (0.99, 0.999)}
    fixed = {"lr": 2.5e-4, "ent_coef": 0.01, "gamma": 0.99, "clip_eps": 0.2}
    grid = list(itertools.product(*(values[name] for name in varying)))
    rows = []
    for c, combo in enumerate(grid):
        hp = {**fixed, **dict(zip(varying, combo))}
        skill = 200 + 2e5 * hp["lr"]
        for s in range(seeds):
            u = np.arange(updates)
            count = rng.integers(1, 6, updates)
            count[u % nan_every == 1] = 0  # updates in which no episode finished
            mean = skill * (1 - np.exp(-u / 10)) + 20 + rng.normal(0, 15, updates)
            rows.append(pd.DataFrame({
                "config": c, "seed": s, "update": u, "env_steps": (u + 1) * steps_per_update, **hp,
                "diverged": False, "approx_kl": rng.gamma(2, 1e-3, updates),
                "entropy": 0.69 * np.exp(-u / 30) + rng.normal(0, 0.01, updates),
                "episode_return_count": count,
                "episode_return_mean": np.where(count > 0, mean, np.nan),
                "value_loss": rng.gamma(3, 10, updates)}))
    return pd.DataFrame(pd.concat(rows, ignore_index=True))


def write_run(path, df, algo="ppo", env="CartPole-v1"):
    path.mkdir(parents=True, exist_ok=True)
    df.to_csv(path / "metrics.csv", index=False)
    (path / "config.json").write_text(json.dumps({"algo": algo, "env": env}))
    return str(path)


def assert_png(path, min_bytes=10_000):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == PNG_SIGNATURE, path
    assert min_bytes < len(data) < 5_000_000, (path, len(data))
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and 300 < image.shape[0] < 4000 and 400 < image.shape[1] < 4000
    assert image[..., :3].std() > 0.05  # not a blank canvas


@pytest.mark.parametrize("varying, sweep_file", [
    ((), None), (("lr",), "sweep.png"), (("lr", "ent_coef"), "sweep_heatmap.png"),
    (("lr", "ent_coef", "gamma"), None)])
def test_plot_run_writes_valid_pngs_and_a_sweep_figure_only_for_one_or_two_hyperparameters(
        tmp_path, varying, sweep_file):
    run_dir = write_run(tmp_path / "run", synthetic_metrics(varying, updates=30))
    paths = plots.plot_run(run_dir)
    names = [p.split("/")[-1] for p in paths]
    expected = ["learning_curves.png", "performance_profile.png"] + (
        [sweep_file] if sweep_file else []) + ["diagnostics.png"]
    assert names == expected
    assert all(p.startswith(str(tmp_path / "run" / "plots")) for p in paths)
    for p in paths:
        assert_png(p)
    assert plots.varying_hyperparameters(pd.read_csv(f"{run_dir}/metrics.csv")) == list(varying)


def test_hyperparameters_are_constant_per_config_and_named_by_config_json_when_given():
    df = synthetic_metrics(("lr", "ent_coef"), seeds=1, updates=1)  # every metric constant too
    assert plots.varying_hyperparameters(df) == ["lr", "ent_coef", "approx_kl", "entropy",
                                                 "value_loss"]
    meta = {"algo": "ppo", "lr": 2.5e-4, "ent_coef": 0.01, "gamma": 0.99, "clip_eps": 0.2}
    assert plots.varying_hyperparameters(df, meta) == ["lr", "ent_coef"]
    sweep_meta = {"configs": [{"lr": 1e-4, "ent_coef": 0.0}, {"lr": 1e-3, "ent_coef": 0.01}]}
    assert plots.varying_hyperparameters(df, sweep_meta) == ["lr", "ent_coef"]
    assert plots.config_labels(df, meta) == {
        0: "lr=0.0001, ent_coef=0", 1: "lr=0.0001, ent_coef=0.01",
        2: "lr=0.001, ent_coef=0", 3: "lr=0.001, ent_coef=0.01"}
    one = synthetic_metrics((), seeds=3, updates=5)
    meta = {"algo": "ppo", "env": "CartPole-v1"}
    assert plots.config_labels(one, meta) == {0: "PPO on CartPole-v1"}


def test_plot_run_to_another_folder_and_without_diagnostic_columns(tmp_path):
    df = synthetic_metrics(("lr",)).drop(columns=["approx_kl", "entropy", "value_loss"])
    out = tmp_path / "figs"
    paths = plots.plot_run(write_run(tmp_path / "run", df), str(out))
    assert [p.split("/")[-1] for p in paths] == ["learning_curves.png", "performance_profile.png",
                                                 "sweep.png"]
    assert all(p.startswith(str(out)) for p in paths)
    assert not (tmp_path / "run" / "plots").exists()


def test_final_returns_matches_hand_computation_with_nan_updates():
    # 20 updates: the last 10% is updates 18 and 19.
    def run(config, seed, tail_means, tail_counts):
        u = np.arange(20)
        mean = np.full(20, 1000.0)  # earlier updates must not count
        count = np.full(20, 7)
        mean[18:], count[18:] = tail_means, tail_counts
        return pd.DataFrame({"config": config, "seed": seed, "update": u, "env_steps": (u + 1) * 8,
                             "episode_return_mean": mean, "episode_return_count": count})

    df = pd.concat([run(0, 0, [np.nan, 100.0], [0, 3]),      # NaN update carries no weight
                    run(0, 1, [10.0, 20.0], [1, 3]),         # (10 * 1 + 20 * 3) / 4
                    run(1, 0, [np.nan, np.nan], [0, 0]),     # no finished episode at the end
                    run(1, 5, [30.0, np.nan], [2, 0])], ignore_index=True)
    final = plots.final_returns(df)
    assert final.loc[(0, 0)] == pytest.approx(100.0)
    assert final.loc[(0, 1)] == pytest.approx(17.5)
    assert np.isnan(final.loc[(1, 0)])
    assert final.loc[(1, 5)] == pytest.approx(30.0)
    assert plots.final_returns(df, fraction=0.5).loc[(0, 1)] == pytest.approx(
        (1000 * 7 * 8 + 10 + 60) / (7 * 8 + 4))


def test_final_returns_agrees_with_results_final_return():
    from jaxrl.runner import Results

    rng = np.random.default_rng(3)
    count = rng.integers(0, 3, (3, 5, 47))
    mean = np.where(count > 0, rng.normal(100, 30, count.shape), np.nan)
    count[1, 2, -6:] = 0  # a run with no episode in its last 10%
    mean[1, 2, -6:] = np.nan
    results = Results(algo="ppo", env="CartPole-v1", configs=[None] * 3, seeds=[0, 1, 2, 3, 9],
                      metrics={"episode_return_mean": mean, "episode_return_count": count},
                      steps_per_update=16)
    u = np.indices(mean.shape).reshape(3, -1)
    df = pd.DataFrame({"config": u[0], "seed": np.asarray(results.seeds)[u[1]], "update": u[2],
                       "env_steps": (u[2] + 1) * 16, "episode_return_mean": mean.reshape(-1),
                       "episode_return_count": count.reshape(-1)})
    got = plots.final_returns(df).unstack().to_numpy()
    np.testing.assert_allclose(got, results.final_return(), rtol=1e-12, equal_nan=True)


def test_final_window_is_at_least_one_longest_episode():
    """A run whose episodes all outlast 10% of the updates (a good CartPole policy with few updates)
    still gets a final return: the window widens to episode_updates, in Results and plots alike."""
    from jaxrl.runner.results import Results, episode_updates

    assert episode_updates(envs_params(500), steps_per_update=16, num_envs=16) == 500
    assert episode_updates(envs_params(500), steps_per_update=512, num_envs=4) == 4  # PPO: 128 steps
    assert episode_updates(object(), 16, 16) == 1000  # no time limit: envs.DEFAULT_MAX_STEPS
    count = np.zeros((1, 1, 100), int)
    count[0, 0, 80] = 2  # the last episodes ended 20 updates before the end
    mean = np.where(count > 0, 450.0, np.nan)
    kwargs = dict(algo="dqn", env="CartPole-v1", configs=[None], seeds=[0], steps_per_update=16,
                  metrics={"episode_return_mean": mean, "episode_return_count": count})
    assert np.isnan(Results(**kwargs).final_return()[0, 0])  # 10 updates: no episode there
    widened = Results(**kwargs, episode_updates=30)
    assert widened.final_window() == 30 and widened.final_return()[0, 0] == 450.0
    df = pd.DataFrame({"config": 0, "seed": 0, "update": np.arange(100), "env_steps": 16 * np.arange(1, 101),
                       "episode_return_mean": mean[0, 0], "episode_return_count": count[0, 0]})
    assert np.isnan(plots.final_returns(df).iloc[0])
    df.attrs["episode_updates"] = 30
    assert plots.final_returns(df).iloc[0] == 450.0


def envs_params(longest):
    return type("Params", (), {"max_steps_in_episode": longest})()


def test_smooth_matches_a_loop_and_ignores_nan_and_zero_weights():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(2, 23))
    weights = rng.integers(0, 3, size=values.shape).astype(float)
    values[weights == 0] = np.nan
    for window, trailing in ((1, False), (4, False), (5, False), (1, True), (4, True)):
        got = plots.smooth(values, weights, window, trailing=trailing)
        for r in range(2):
            for i in range(23):
                start = i - (window - 1 if trailing else window // 2)
                lo, hi = max(0, start), min(23, start + window)
                w, v = weights[r, lo:hi], values[r, lo:hi]
                ok = w > 0
                expected = (v[ok] * w[ok]).sum() / w[ok].sum() if ok.any() else np.nan
                if trailing and start < 0:  # the window is not full yet
                    expected = np.nan
                np.testing.assert_allclose(got[r, i], expected, equal_nan=True)


def test_iqm_band_uses_finite_runs_and_blanks_points_with_too_few():
    curves = np.array([[1.0, 1.0, np.nan], [2.0, 2.0, np.nan], [3.0, np.nan, np.nan],
                       [4.0, np.nan, 5.0]])
    mid, lo, hi = plots.iqm_band(curves, reps=200)
    assert mid[0] == pytest.approx(2.5) and lo[0] <= mid[0] <= hi[0]
    assert mid[1] == pytest.approx(1.5)  # two of four runs finite: enough
    assert np.isnan(mid[2]) and np.isnan(lo[2]) and np.isnan(hi[2])  # one of four: too few


def test_all_nan_returns_still_plot(tmp_path):
    df = synthetic_metrics(("lr",), updates=20)
    df["episode_return_mean"] = np.nan
    df["episode_return_count"] = 0
    paths = plots.plot_run(write_run(tmp_path / "run", df))
    assert len(paths) == 4
    for p in paths:
        assert_png(p, min_bytes=5_000)


def test_folder_without_metrics_raises_one_line_error_naming_it(tmp_path):
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    with pytest.raises(ValueError) as info:
        plots.plot_run(str(empty))
    message = str(info.value)
    assert str(empty) in message and "metrics.csv" in message and "\n" not in message
    with pytest.raises(ValueError, match="does not exist"):
        plots.plot_run(str(tmp_path / "missing"))
    (empty / "metrics.csv").write_text("config,seed,update,env_steps\n0,0,0,8\n")
    with pytest.raises(ValueError, match="episode_return_mean"):
        plots.plot_run(str(empty))
    assert not (empty / "plots").exists()
