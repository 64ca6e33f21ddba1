"""Sweeps: float grids in one program, static grids grouped, tuning and test seeds disjoint, the
best config chosen on tuning seeds only, random search within its ranges, clear errors."""
import json
import os

import numpy as np
import pandas as pd
import pytest

from conftest import TINY_PPO
from jaxrl.agents.ppo import PPOConfig
from jaxrl.cli import main
from jaxrl.sweep import TEST_SEED_OFFSET, random_configs

pytestmark = pytest.mark.timeout(300)

TINY = ["--num-envs", "4", "--num-steps", "16", "--update-epochs", "2", "--num-minibatches", "2",
        "--hidden-sizes", "16,16", "--total-steps", "256"]


def test_float_grid_is_one_program_and_picks_best_on_tuning_seeds(tmp_path):
    out = tmp_path / "sweep"
    assert main(["sweep", "--seeds", "3", "--test-seeds", "2", "--grid", "lr=1e-4,1e-3",
                 "--grid", "ent_coef=0.0,0.01", "--out", str(out), *TINY]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["compiles"] == 2  # all four configs in one program, plus the test re-run
    results = pd.read_csv(out / "results.csv")
    tune, test = results[results.phase == "tune"], results[results.phase == "test"]
    assert len(tune) == 4 * 3 and set(tune.seed) == {0, 1, 2}
    assert set(test.seed) == {TEST_SEED_OFFSET, TEST_SEED_OFFSET + 1}
    assert not set(tune.seed) & set(test.seed)
    best = max(summary["tuning"], key=lambda row: row["tuning_iqm"])
    assert set(test.config_id) == {best["config_id"]}
    assert summary["test"]["iqm"] is not None and len(summary["test"]["per_seed"]) == 2
    metrics = pd.read_csv(out / "metrics.csv")
    assert sorted(metrics["config"].unique()) == [0, 1, 2, 3]


def test_static_grid_runs_one_program_per_group(tmp_path):
    out = tmp_path / "sweep"
    assert main(["sweep", "--seeds", "2", "--test-seeds", "0", "--grid", "num_envs=2,4",
                 "--grid", "lr=1e-3,3e-4", "--out", str(out), *TINY]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["compiles"] == 2 and summary["num_configs"] == 4 and "test" not in summary
    assert sorted(pd.read_csv(out / "metrics.csv")["config"].unique()) == [0, 1, 2, 3]


def test_random_search_stays_in_range():
    configs = random_configs(PPOConfig(**TINY_PPO), {"lr": (1e-5, 1e-2, True),
                                                    "gamma": (0.9, 0.999, False)}, 200, seed=1)
    lr = np.array([c.lr for c in configs])
    gamma = np.array([c.gamma for c in configs])
    assert lr.min() >= 1e-5 and lr.max() <= 1e-2 and gamma.min() >= 0.9 and gamma.max() <= 0.999
    assert 0.35 < np.mean(lr < 10 ** -3.5) < 0.65  # log-uniform: about half below the log-midpoint


@pytest.mark.parametrize("args, message", [
    (["--grid", "nope=1,2"], "--grid: expected FIELD=VALUES with FIELD one of"),
    (["--grid", "lr=1e-3,abc"], "--grid lr: cannot read 'abc' as float"),
    (["--grid", "lr=-1"], "--lr: got -1.0, must be > 0.0"),
    ([], "--grid: give at least one --grid"),
    (["--random", "4"], "--random: give the fields to draw as --range"),
    (["--random", "4", "--range", "lr=1e-3:1e-4"], "--range lr: needs a float field and finite LO < HI"),
    (["--grid", "num_minibatches=3"], "--num-minibatches: 3 does not divide"),
])
def test_bad_sweeps_fail_before_compiling(tmp_path, capsys, args, message):
    out = tmp_path / "sweep"
    assert main(["sweep", "--out", str(out), *TINY, *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert os.listdir(tmp_path) == []
