"""Task families and multi-task training, on the cheap CartPoleMorph-v0 family (the MJX families
have their own tests): the task table contract, envs spread over tasks, per-task metrics, the
single-task baseline in one program, the CLI, and a learning test."""
import json

import jax
import numpy as np
import pytest

import envs
from jaxrl.agents.ppo import PPOConfig
from jaxrl.cli import main
from jaxrl.runner import run

from conftest import TINY_PPO


def test_task_table_contract():
    env, table = envs.make("CartPoleMorph-v0")
    assert env.num_tasks == 4 and envs.is_table(table) and envs.num_tasks(table) == 4
    np.testing.assert_array_equal(table.task_id, np.arange(4))
    assert len(set(np.asarray(table.env.length).tolist())) == 4  # the tasks really differ
    task2 = envs.task(table, 2)
    assert not envs.is_table(task2) and float(task2.env.length) == 1.0
    obs, state = env.reset(jax.random.PRNGKey(0), task2)
    assert obs.shape == (4 + 4,) and env.observation_space(table).shape == (8,)
    np.testing.assert_array_equal(obs[4:], [0, 0, 1, 0])
    _, _, _, _, _, info = env.step(jax.random.PRNGKey(1), state, 1, task2)
    np.testing.assert_array_equal(info["final_observation"][4:], [0, 0, 1, 0])
    hidden, hidden_table = envs.make("CartPoleMorph-v0", one_hot=False)
    obs, _ = hidden.reset(jax.random.PRNGKey(0), envs.task(hidden_table, 2))
    assert obs.shape == (4,)
    sub = envs.select_tasks(table, [3, 1])  # a sub-table keeps the family's task ids
    np.testing.assert_array_equal(sub.task_id, [3, 1])
    spread, axis = envs.spread_tasks(sub, 6)
    assert axis == 0
    np.testing.assert_array_equal(spread.task_id, [3, 1, 3, 1, 3, 1])
    assert envs.spread_tasks(envs.make("CartPole-v1")[1], 6)[1] is None


def test_task_physics_differ_for_the_same_action():
    env, table = envs.make("CartPoleMorph-v0")
    reset = jax.vmap(env.reset, (None, 0))
    step = jax.vmap(env.step, (None, 0, None, 0))
    _, state = reset(jax.random.PRNGKey(0), table)  # the same start in every task
    for _ in range(5):
        obs, state, *_ = step(jax.random.PRNGKey(1), state, 1, table)
    angular_velocity = np.asarray(obs[:, 3])
    assert len(np.unique(np.round(angular_velocity, 5))) == 4  # longer poles fall slower


@pytest.fixture(scope="module")
def tiny_runs():
    config = PPOConfig(**{**TINY_PPO, "total_steps": 4 * 16 * 4})
    single = run("ppo", "CartPoleMorph-v0", [config], [0, 1], progress=None, single_task=True)
    alone = run("ppo", "CartPoleMorph-v0", [config], [0, 1], progress=None, tasks=[2])
    return single, alone


@pytest.fixture(scope="module")
def multi_task_run():
    """One network, envs spread over the 4 pole lengths, 8 seeds: learns every task."""
    return run("ppo", "CartPoleMorph-v0", [PPOConfig(total_steps=200_000, num_envs=8)], range(8),
               progress=None)


def test_single_task_rows_equal_training_that_task_alone(tiny_runs):
    single, alone = tiny_runs
    assert single.compiles == 1 and single.tasks == [[0], [1], [2], [3]]
    assert single.metrics["episode_return_mean"].shape[:2] == (4, 2)
    for name, values in alone.metrics.items():  # row 2 of the vmapped baseline == task 2 alone
        np.testing.assert_allclose(single.metrics[name][2], values[0], rtol=2e-5, atol=1e-5,
                                   err_msg=name)
    first_losses = single.metrics["value_loss"][:, 0, 0]
    assert len(np.unique(first_losses)) == 4  # and the rows are different tasks


def test_multi_task_summary_has_each_task(multi_task_run):
    multi = multi_task_run
    assert multi.tasks == [[0, 1, 2, 3]]
    assert {f"task{k}_return_mean" for k in range(4)} <= set(multi.metrics)
    summary = multi.summary()
    assert [t["task"] for t in summary["per_task"]] == [0, 1, 2, 3]
    assert summary["per_task"][2]["name"] == "length=1.0,mass=0.2"
    per_task = np.array([t["final_return"]["per_seed"] for t in summary["per_task"]])
    np.testing.assert_allclose(summary["final_return"]["per_seed"], per_task.mean(0), rtol=1e-6)


def test_cli_single_task_summary_and_bad_input(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--env", "CartPoleMorph-v0", "--seeds", "2", "--total-steps", str(4 * 16 * 4),
            "--num-envs", "4", "--num-steps", "16", "--update-epochs", "2", "--num-minibatches", "2",
            "--hidden-sizes", "16,16"]
    assert main(args + ["--single-task", "--tasks", "1,3", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["single_task"] and summary["tasks"] == [1, 3]
    assert [t["task"] for t in summary["per_task"]] == [1, 3]
    assert json.loads((out / "config.json").read_text())["tasks"] == "1,3"
    for bad, message in [(["--num-envs", "6"], "--num-envs: 6 envs cannot be spread"),
                         (["--tasks", "0,9"], "--tasks: got [0, 9]"),
                         (["--tasks", "a"], "--tasks: expected all")]:
        capsys.readouterr()
        assert main(args + bad + ["--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    capsys.readouterr()
    assert main(["train", "--env", "CartPole-v1", "--single-task", "--out", str(tmp_path / "x")]) == 2
    assert "not a task family" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists() and not (tmp_path / "x").exists()


def test_ppo_learns_every_cartpole_morph_task_at_once(multi_task_run):
    """Every task well above a random policy's ~20, from one network."""
    summary = multi_task_run.summary()
    assert summary["final_return"]["iqm"] >= 150, summary["final_return"]
    for task in summary["per_task"]:
        assert task["final_return"]["iqm"] >= 100, task


@pytest.mark.parametrize("args, message", [
    (["--env", "CartPole-v1"], "--env: CartPole-v1 is not a MuJoCo env"),
    (["--env", "brax/inverted_pendulum", "--task", "1"], "--task: brax/inverted_pendulum is not a task family"),
    (["--env", "ReacherLinks-v0", "--task", "4"], "--task: got 4; ReacherLinks-v0 has tasks 0..3"),
    (["--env", "ReacherLinks-v0", "--steps", "0"], "--steps: got 0, must be >= 1"),
    (["--env", "Nope-v0"], "--env: unknown environment 'Nope-v0'"),
])
def test_render_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    """(The GIF itself is tested in test_reacher_links.py; here the command's checks.)"""
    out = tmp_path / "x.gif"
    assert main(["render", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not out.exists()


def _multitask_script():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parent.parent / "scripts" / "multitask.py"
    spec = importlib.util.spec_from_file_location("multitask_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_steps_to_threshold_counts_never_as_the_whole_budget():
    script = _multitask_script()
    curve = np.array([[1.0, np.nan, 5.0, 9.0], [1.0, 2.0, 3.0, 2.0], [7.0, 1.0, 1.0, 1.0]])
    steps, reached = script.steps_to_threshold(curve, np.ones_like(curve), 5.0,
                                               steps_per_update=10)  # window: 1
    np.testing.assert_array_equal(steps, [30, 40, 10])
    np.testing.assert_array_equal(reached, [True, False, True])


def test_steps_to_threshold_reads_a_trailing_mean_not_one_lucky_update():
    """Over 40 updates the window is 2 (5%), weighted by finished episodes: a single update at
    the threshold does not count, two in a row (or a NaN update, no finished episode, beside one)
    do, and an update of many episodes outweighs one of few."""
    script = _multitask_script()
    curve = np.zeros((4, 40))
    counts = np.ones_like(curve)
    curve[0, [5, 20, 21]] = 1.0      # one lucky update at 5; reached at 21 (updates 20-21)
    curve[1, 10] = 1.0               # never two in a row
    curve[2, [7, 8]] = [np.nan, 1.0]  # the NaN left out of the window: reached at 8
    counts[2, 7] = 0
    curve[3, [12, 13, 30]] = [0.7, 1.0, 1.0]  # 13: (0.7*9 + 1)/10 < 0.8 (unweighted 0.85);
    counts[3, [12, 30]] = 9                     # 30: (0 + 1.0*9)/10 = 0.9
    steps, reached = script.steps_to_threshold(curve, counts, 0.8, steps_per_update=10)
    np.testing.assert_array_equal(steps, [220, 400, 90, 310])
    np.testing.assert_array_equal(reached, [True, False, True, True])


@pytest.mark.parametrize("args, message", [
    (["CartPole-v1"], "family: got 'CartPole-v1'"),
    (["CartPoleMorph-v0", "--seeds", "0"], "--seeds: got 0, must be >= 1"),
])
def test_multitask_script_bad_input(tmp_path, capsys, args, message):
    script = _multitask_script()
    assert script.main(args + ["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not (tmp_path / "out").exists()


def test_multitask_script_end_to_end_tiny(tmp_path):
    script = _multitask_script()
    out = tmp_path / "study"
    assert script.main(["CartPoleMorph-v0", "--size", "tiny", "--seeds", "2", "--only", "a",
                        "--reps", "100", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    a = summary["multi_vs_single"]
    assert set(a) == {"single_task", "multi_equal_per_task", "multi_equal_total",
                      "multi_hidden_task_id"}
    assert "final_minus_multi_equal_per_task" in a["multi_hidden_task_id"]
    assert a["multi_equal_per_task"]["total_steps_per_network"] > a["single_task"]["total_steps_per_network"]
    assert a["multi_equal_total"]["final"]["runs"] == 2 and a["multi_equal_total"]["final"]["tasks"] == 4
    assert "final_minus_single_task" in a["multi_equal_total"]
    import pandas as pd

    curves = pd.read_csv(out / "curves_iqm.csv")
    assert set(curves.experiment) == {f"a/{k}" for k in a} and set(curves.task) == {0, 1, 2, 3}
    assert script.main(["CartPoleMorph-v0", "--out", str(out)]) == 2  # never overwritten
    assert not (tmp_path / "study.partial").exists()


def test_multitask_script_leave_one_out_tiny(tmp_path):
    """(b) scores every held-out task, fine-tuned against scratch, on the family's criterion."""
    script = _multitask_script()
    out = tmp_path / "loo"
    assert script.main(["CartPoleMorph-v0", "--size", "tiny", "--seeds", "2", "--only", "b",
                        "--reps", "100", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    b = summary["leave_one_out"]
    assert b["metric"] == "return" and "multi_vs_single" not in summary
    assert [entry["held_out"] for entry in b["per_held_out_task"]] == [0, 1, 2, 3]
    assert all("pretrain_final_success" not in entry for entry in b["per_held_out_task"])
    budget = summary["finetune_steps"]
    for name in ("finetuned", "scratch"):
        assert 0 <= b["reached"][name] <= 1
        assert 0 < b["steps"][name]["iqm"] <= budget
        assert b["jumpstart"][name]["runs"] == 2 and b["jumpstart"][name]["tasks"] == 4
    import pandas as pd

    curves = pd.read_csv(out / "curves_iqm.csv")
    assert set(curves.experiment) == {"b/finetuned", "b/scratch"} and set(curves.task) == {0, 1, 2, 3}
    assert curves.task_steps.max() <= budget


def test_multitask_script_resumes_run_by_run(tmp_path, monkeypatch):
    """A study cut off inside its third run resumes from OUT.partial: finished runs are read
    back, not trained again, the cut run goes on from its last checkpoint, and the summary equals
    an uncut study's; other settings are refused."""
    script = _multitask_script()
    argv = ["CartPoleMorph-v0", "--size", "tiny", "--seeds", "2", "--only", "a", "--reps", "100"]
    assert script.main(argv + ["--out", str(tmp_path / "whole")]) == 0
    real_run, calls, cut_at = script.run, [], []

    def cut_off(*args, progress=None, **kwargs):  # the third run is killed at its first checkpoint
        calls.append(1)
        if len(calls) == 3:
            def progress(line):
                if line.startswith("checkpoint:"):
                    cut_at.append(line)
                    raise KeyboardInterrupt
        return real_run(*args, progress=progress, **kwargs)

    monkeypatch.setattr(script, "run", cut_off)
    with pytest.raises(KeyboardInterrupt):
        script.main(argv + ["--out", str(tmp_path / "cut")])
    partial = tmp_path / "cut.partial"
    assert len(list((partial / "cells").iterdir())) == 2
    assert [p.name for p in (partial / "checkpoints").iterdir()] == ["a-multi_equal_total"]
    other = ["CartPoleMorph-v0", "--size", "tiny", "--seeds", "3", "--only", "a"]
    assert script.main(other + ["--out", str(tmp_path / "cut")]) == 2  # other settings: refused
    calls.clear()

    def counted(*args, progress=None, **kwargs):
        calls.append([])
        return real_run(*args, progress=lambda line: calls[-1].append(line), **kwargs)

    monkeypatch.setattr(script, "run", counted)
    assert script.main(argv + ["--out", str(tmp_path / "cut")]) == 0
    assert len(calls) == 2  # 4 runs, 2 read back
    assert calls[0] and cut_at[0] not in calls[0]  # the cut run went on from its checkpoint
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())["multi_vs_single"]
    resumed = json.loads((tmp_path / "cut" / "summary.json").read_text())["multi_vs_single"]
    for label in whole:
        assert resumed[label]["final"] == whole[label]["final"], label
        assert resumed[label]["auc"] == whole[label]["auc"], label


def test_multitask_script_runs_the_held_out_tasks_asked_for(tmp_path, capsys, monkeypatch):
    """--held-out runs leave-one-out for some tasks, keeping the summary so far in OUT.partial;
    a later run for the others reads those back and lands the whole study in OUT, its scores in
    task order whatever order the tasks ran in."""
    script = _multitask_script()
    argv = ["CartPoleMorph-v0", "--size", "tiny", "--seeds", "2", "--only", "b", "--reps", "100"]
    for bad in (["--held-out", "4"], ["--held-out", "1,1"], ["--held-out", "x"], ["--held-out", ""],
                ["--held-out", "1", "--only", "a"]):
        assert script.main(argv + bad + ["--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip()
        assert "--held-out: " in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "bad.partial").exists()
    real_run, calls = script.run, []
    monkeypatch.setattr(script, "run", lambda *a, **k: calls.append(1) or real_run(*a, **k))
    assert script.main(argv + ["--held-out", "3,1", "--out", str(tmp_path / "loo")]) == 0
    partial = tmp_path / "loo.partial"
    assert not (tmp_path / "loo").exists()  # OUT holds only a whole study
    b = json.loads((partial / "summary.json").read_text())["leave_one_out"]
    assert b["held_out_tasks"] == [1, 3] and b["missing_held_out_tasks"] == [0, 2]
    assert [entry["held_out"] for entry in b["per_held_out_task"]] == [1, 3]
    assert b["jumpstart"]["finetuned"]["tasks"] == 2 and len(calls) == 6
    assert script.main(argv + ["--held-out", "2,0", "--out", str(tmp_path / "loo")]) == 0
    assert len(calls) == 12 and not partial.exists()  # tasks 1 and 3 read back, not trained
    b = json.loads((tmp_path / "loo" / "summary.json").read_text())["leave_one_out"]
    assert b["held_out_tasks"] == [0, 1, 2, 3] and b["missing_held_out_tasks"] == []
    assert [entry["held_out"] for entry in b["per_held_out_task"]] == [0, 1, 2, 3]


def test_dqn_spreads_its_envs_over_tasks_too():
    from jaxrl.agents.dqn import DQNConfig

    config = DQNConfig(total_steps=4 * 8 * 30, num_envs=4, learning_starts=64, buffer_size=512,
                       batch_size=16, hidden_sizes=(16,))
    results = run("dqn", "CartPoleMorph-v0", [config], [0], progress=None)
    counts = [results.metrics[f"task{k}_return_count"].sum() for k in range(4)]
    assert all(c > 0 for c in counts)  # every task's envs finished episodes
    assert sum(counts) == results.metrics["episode_return_count"].sum()
