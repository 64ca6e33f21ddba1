"""The command line: bad input is one line naming the option, exit 2, nothing written; a real
(tiny) run writes config.json, metrics.csv and summary.json; an existing --out is never replaced."""
import json
import os

import numpy as np
import pytest

from conftest import RUN_FILES

from jaxrl.cli import main

pytestmark = pytest.mark.timeout(300)

TINY = ["--num-envs", "4", "--num-steps", "16", "--update-epochs", "2", "--num-minibatches", "2",
        "--hidden-sizes", "16,16", "--total-steps", "128"]


@pytest.mark.parametrize("args, message", [
    (["--env", "Nope-v0"], "--env: unknown environment 'Nope-v0'"),
    (["--algo", "sacc"], "--algo: unknown algorithm 'sacc'; allowed: ppo"),
    (["--seeds", "0"], "--seeds: got 0, must be >= 1"),
    (["--num-envs", "-2"], "--num-envs: got -2, must be >= 1"),
    (["--lr", "0"], "--lr: got 0.0, must be > 0.0"),
    (["--lr", "abc"], "argument --lr: invalid float value: 'abc'"),
    (["--gamma", "1.5"], "--gamma: got 1.5, must be >= 0.0 and <= 1.0"),
    (["--num-minibatches", "3"], "--num-minibatches: 3 does not divide the batch"),
    (["--total-steps", "50"], "--total-steps: 50 is less than one update"),
    (["--activation", "sigmoid"], "--activation: got 'sigmoid', allowed: tanh, relu, gelu, swish"),
    (["--max-batch", "0"], "--max-batch: got 0, must be >= 1"),
    (["--env", "DeepSea-bsuite", "--env", "brax/ant", "--algo", "ppo", "--hidden-sizes", "x"],
     "argument --hidden-sizes: expected comma-separated integers"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    code = main(["train", "--out", str(out), *TINY, *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("jaxrl: error: ") and message in err, err
    assert not out.exists()
    assert os.listdir(tmp_path) == []


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name in ("--total-steps", "--num-envs", "--lr", "--max-grad-norm", "--seeds", "--out",
                 "--max-batch", "--overwrite", "--hidden-sizes"):
        assert name in text


@pytest.mark.parametrize("command", ["train", "sweep", "plot", "eval", "render"])
def test_help_prints_percent_signs_once(command, capsys):
    """argparse %-formats option help but prints descriptions as written: '95%%' must not show."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "%%" not in text and "%(" not in text


def test_train_writes_results_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--seeds", "3", *TINY]) == 0
    assert sorted(os.listdir(out)) == RUN_FILES
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_seeds"] == 3 and summary["total_steps"] == 128 and summary["algo"] == "ppo"
    assert len(summary["final_return"]["per_seed"]) == 3
    assert summary["env_steps_per_second"] > 0 and summary["devices"]
    assert "chunk 1/1" in capsys.readouterr().out
    before = (out / "summary.json").read_text()
    assert main(["train", "--out", str(out), "--seeds", "2", *TINY]) == 2
    assert "--out:" in capsys.readouterr().err and (out / "summary.json").read_text() == before
    assert main(["train", "--out", str(out), "--seeds", "2", "--overwrite", *TINY]) == 0
    assert json.loads((out / "summary.json").read_text())["num_seeds"] == 2
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_dry_run_compiles_plans_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--seeds", "6", "--max-batch", "4", "--dry-run", *TINY]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["runs"] == 6 and plan["chunk_size"] <= 4 and plan["compiles"] == 1
    assert plan["num_chunks"] == -(-6 // plan["chunk_size"]) and plan["bytes_per_chunk"] > 0
    assert not out.exists()


def test_tensorboard_and_wandb_are_written_while_the_run_trains(tmp_path, monkeypatch):
    """--tensorboard and --wandb (offline) get each finished segment's per-config scalars as it
    finishes, not only at the end."""
    import jaxrl.live

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    seen = []
    real = jaxrl.live.LiveTensorBoard.__call__

    def spy(self, rows):
        real(self, rows)
        events = list((tmp_path / "run.partial" / "tensorboard" / "config_0").glob("events.*"))
        seen.append((sorted(set(rows["update"])), sum(f.stat().st_size for f in events)))

    monkeypatch.setattr(jaxrl.live.LiveTensorBoard, "__call__", spy)
    args = [a if a != "128" else "256" for a in TINY]  # 4 updates, 2 segments
    assert main(["train", "--out", str(tmp_path / "run"), "--seeds", "2", "--checkpoint-every",
                 "2", "--tensorboard", "--wandb", *args]) == 0
    assert [updates for updates, _ in seen] == [[0, 1], [2, 3]]
    assert 0 < seen[0][1] < seen[1][1]  # on disk after the first segment, growing
    runs = list((tmp_path / "run" / "wandb" / "wandb").glob("offline-run-*/*.wandb"))
    assert len(runs) == 1 and runs[0].stat().st_size > 0


def test_live_scalars_are_per_config_means_and_iqms_over_seeds():
    from jaxrl import stats
    from jaxrl.live import per_config_scalars

    rng = np.random.default_rng(0)
    returns = rng.normal(size=(2, 5, 3))  # config, seed, update
    returns[1, 0, 2] = np.nan  # a seed with no finished episode in that update
    index = np.indices(returns.shape).reshape(3, -1)
    rows = {"config": index[0], "seed": index[1], "update": index[2], "env_steps": (index[2] + 1) * 64,
            "episode_return_mean": returns.reshape(-1), "loss": returns.reshape(-1) * 2}
    got = {(c, step): scalars for c, step, scalars in per_config_scalars(rows)}
    assert sorted(got) == [(c, 64 * (u + 1)) for c in range(2) for u in range(3)]
    for c in range(2):
        for u in range(3):
            x = returns[c, :, u][np.isfinite(returns[c, :, u])]
            s = got[(c, 64 * (u + 1))]
            np.testing.assert_allclose(s["mean/episode_return_mean"], x.mean())
            np.testing.assert_allclose(s["iqm/episode_return_mean"], stats.iqm(x))
            np.testing.assert_allclose(s["mean/loss"], 2 * x.mean())
            assert "iqm/loss" not in s


def test_train_and_sweep_build_the_env_once(tmp_path, monkeypatch):
    """The CLI plans once (make_plan: checks, env, task rows, trainer) while it checks the command
    line, and runs that plan (`execute(args.plan)`): the env (for an MJX family, five MuJoCo
    compiles) is built once per command, a sweep's static groups sharing it. Nothing compiles."""
    import envs
    from jaxrl.cli import parse_run

    made = []
    real = envs.make

    def counting(name, **kwargs):
        made.append(name)
        return real(name, **kwargs)

    monkeypatch.setattr(envs, "make", counting)
    args, _ = parse_run(["train", "--out", str(tmp_path / "t"), "--seeds", "2", "--env",
                         "CartPoleMorph-v0", *TINY])
    args.claim.release()
    assert made == ["CartPoleMorph-v0"] and args.plan.row_tasks == [[0, 1, 2, 3]]
    made.clear()
    args, _ = parse_run(["sweep", "--out", str(tmp_path / "s"), "--seeds", "2", "--env",
                         "CartPoleMorph-v0", "--grid", "lr=1e-3,3e-3", "--grid",
                         "hidden_sizes=16,8", *TINY])
    args.claim.release()
    assert made == ["CartPoleMorph-v0"] and len(args.plans) == 2
    assert args.plans[0].env is args.plans[1].env
    assert [len(p.configs) for p in args.plans] == [2, 2]


def test_env_recommended_settings_are_the_start_and_given_options_win(tmp_path, capsys):
    """An env's recommended config fields (`envs.recommended`) are where `train` and `sweep`
    start: options given win, --no-env-settings keeps the algorithm's defaults, a sweep keeps them
    at every grid point, config.json records them, and `env_config` builds the same from Python.
    A recommended field that the algorithm lacks is a one-line error naming the env."""
    import envs
    from jaxrl.agents import env_config, env_fields
    from jaxrl.agents.ppo import PPOConfig
    from jaxrl.cli import parse_run
    from jaxrl.config import ConfigError

    if "Recommends-v0" not in envs.list_envs():
        envs.register("Recommends-v0", lambda: envs.make("CartPole-v1"),
                      recommended={"ppo": {"num_envs": 8, "lr": 1e-3, "normalize_obs": True},
                                   "dqn": {"no_such_field": 1}})
    assert envs.recommended("Recommends-v0", "ppo")["num_envs"] == 8
    assert envs.recommended("Recommends-v0", "a2c") == {} == envs.recommended("CartPole-v1", "ppo")
    tiny = [a for a in TINY if a not in ("--num-envs", "4")]  # --num-envs left to the env
    args, (config,) = parse_run(["train", "--env", "Recommends-v0", "--lr", "5e-4",
                                 "--out", str(tmp_path / "t"), *tiny])
    args.claim.release()
    assert (config.num_envs, config.lr, config.normalize_obs) == (8, 5e-4, True)
    assert args.env_fields == {"num_envs": 8, "normalize_obs": True}
    assert env_config("ppo", "Recommends-v0", lr=5e-4, num_steps=16, update_epochs=2,
                      num_minibatches=2, hidden_sizes=(16, 16), total_steps=128) == config
    args, (config,) = parse_run(["train", "--env", "Recommends-v0", "--no-env-settings",
                                 "--out", str(tmp_path / "n"), *tiny])
    args.claim.release()
    assert (config.num_envs, config.lr) == (PPOConfig().num_envs, PPOConfig().lr)
    args, configs = parse_run(["sweep", "--env", "Recommends-v0", "--grid", "gamma=0.9,0.99",
                               "--out", str(tmp_path / "s"), *tiny])
    args.claim.release()
    assert [(c.num_envs, c.lr, c.gamma) for c in configs] == [(8, 1e-3, 0.9), (8, 1e-3, 0.99)]
    with pytest.raises(ConfigError, match="Recommends-v0 recommends no_such_field for dqn"):
        env_fields("dqn", "Recommends-v0")
    assert main(["train", "--env", "Recommends-v0", "--seeds", "1", "--out", str(tmp_path / "r"),
                 *tiny]) == 0
    assert "Recommends-v0's recommended settings for ppo: --num-envs 8 --lr 0.001 --normalize-obs " in \
        capsys.readouterr().out
    record = json.loads((tmp_path / "r" / "config.json").read_text())
    assert record["env_settings"] == {"num_envs": 8, "lr": 1e-3, "normalize_obs": True}


def test_shipped_recommended_settings_name_real_fields():
    """Every task family's recommended settings name fields of the algorithm they are for."""
    import envs
    from jaxrl.agents import ALGOS, env_fields

    for name in envs.FAMILIES:
        for algo in ALGOS:
            env_fields(algo, name)  # raises ConfigError on a field the algorithm lacks
    assert envs.recommended("ReacherLinks-v0", "ppo")["normalize_obs"] is True
