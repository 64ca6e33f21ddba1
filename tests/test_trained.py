"""Trained agents as artifacts: a finished run keeps every seed's params; `jaxrl.load` rebuilds
the policies; `eval` gives the in-program greedy evaluation's numbers; a rendered trained
CartPole policy balances for the whole GIF; `--init-from` fine-tunes; bad input is one line."""
import json
import os

import jax
import numpy as np
import pytest

import jaxrl
from jaxrl.cli import main

pytestmark = pytest.mark.timeout(300)

UPDATES = 160  # x 512 env steps: enough for PPO's default CartPole settings to balance
TRAIN = ["--seeds", "4", "--total-steps", str(512 * UPDATES), "--eval-every", str(UPDATES),
         "--eval-episodes", "8"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "cartpole"
    assert main(["train", "--out", str(out), *TRAIN]) == 0
    return out


def test_saved_params_load_and_evaluate_as_in_the_program(trained):
    run = jaxrl.load(str(trained))
    assert run.algo == "ppo" and run.seeds == [0, 1, 2, 3]
    assert os.path.isfile(trained / "params.sha256")
    results = run.results
    np.testing.assert_allclose(results.final_return()[0], json.loads(
        (trained / "summary.json").read_text())["final_return"]["per_seed"])
    # The same episodes as the in-program evaluation after the last update: the same numbers.
    key = jax.random.fold_in(jax.random.PRNGKey(0), UPDATES)
    np.testing.assert_allclose(run.evaluate(episodes=8, key=key),
                               results.metrics["eval_return_mean"][0, :, -1], rtol=1e-5)
    obs = np.zeros((3, 4), np.float32)
    assert run.policy(seed=1)(obs).shape == (3,) and run.value(seed=1)(obs).shape == (3,)


def test_eval_command_prints_iqm_and_writes_eval_json(trained, capsys):
    assert main(["eval", str(trained), "--episodes", "16", "--key", "3"]) == 0
    assert "greedy return IQM" in capsys.readouterr().out
    result = json.loads((trained / "eval.json").read_text())
    assert result["episodes"] == 16 and len(result["return"]["per_seed"]) == 4
    np.testing.assert_allclose(result["return"]["per_seed"],
                               jaxrl.load(str(trained)).evaluate(16, 3), rtol=1e-6)
    assert main(["eval", str(trained)]) == 2  # eval.json exists: not replaced without --overwrite
    assert "already exists" in capsys.readouterr().err


def test_rendered_trained_cartpole_balances_for_the_whole_gif(trained, tmp_path, capsys):
    from PIL import Image

    run = jaxrl.load(str(trained))
    best = run.seeds[int(np.argmax(run.evaluate(episodes=8, key=1)))]
    gif = tmp_path / "cartpole.gif"
    assert main(["render", str(trained), "--seed", str(best), "--steps", "200",
                 "--out", str(gif)]) == 0
    assert "no episode ended" in capsys.readouterr().out
    assert Image.open(gif).n_frames == 201


def test_init_from_fine_tunes_from_the_trained_params(trained, tmp_path):
    """Four updates from the trained params score far above four updates from scratch."""
    short = ["--seeds", "2", "--total-steps", str(512 * 4)]
    assert main(["train", "--out", str(tmp_path / "tuned"), *short, "--init-from", str(trained)]) == 0
    assert main(["train", "--out", str(tmp_path / "fresh"), *short]) == 0
    tuned = json.loads((tmp_path / "tuned" / "summary.json").read_text())["final_return"]["iqm"]
    fresh = json.loads((tmp_path / "fresh" / "summary.json").read_text())["final_return"]["iqm"]
    assert tuned > 150 > fresh, (tuned, fresh)
    record = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert record["init_from"] == str(trained)


SINGLE_UPDATES = 2  # x 64 env steps


@pytest.fixture(scope="module")
def single_task(tmp_path_factory):
    """A tiny --single-task run of CartPoleMorph-v0 on tasks 1 and 3, evaluated after its last
    update."""
    out = tmp_path_factory.mktemp("single") / "morph"
    assert main(["train", "--env", "CartPoleMorph-v0", "--tasks", "1,3", "--single-task",
                 "--seeds", "2", "--total-steps", str(64 * SINGLE_UPDATES), "--num-envs", "4",
                 "--num-steps", "16", "--update-epochs", "1", "--num-minibatches", "1",
                 "--hidden-sizes", "16", "--eval-every", str(SINGLE_UPDATES),
                 "--eval-episodes", "4", "--out", str(out)]) == 0
    return out


def test_single_task_run_keeps_and_evaluates_every_tasks_networks(single_task, capsys):
    run = jaxrl.load(str(single_task))
    assert run.single_task and run.task_ids() == [1, 3]
    assert {x.shape[:2] for x in jax.tree.leaves(run.params)} == {(2, 2)}  # [tasks, seeds, ...]
    # Each task's networks on their own task, the episodes of the in-program evaluation: its numbers.
    key = jax.random.fold_in(jax.random.PRNGKey(0), SINGLE_UPDATES)
    returns = run.evaluate(episodes=4, key=key)
    np.testing.assert_allclose(returns, run.results.metrics["eval_return_mean"][:, :, -1], rtol=1e-5)
    np.testing.assert_allclose(run.evaluate(episodes=4, key=key, task=3), returns[1], rtol=1e-5)
    obs = np.zeros((1,) + run.env.observation_space(run.env_params).shape, np.float32)
    assert not np.allclose(run.value(0, task=1)(obs), run.value(0, task=3)(obs))  # own networks
    assert main(["eval", str(single_task), "--episodes", "4", "--key", "1"]) == 0
    out = capsys.readouterr().out
    assert "  task 1 (" in out and "  task 3 (" in out, out
    result = json.loads((single_task / "eval.json").read_text())
    per_task = [t["return"]["per_seed"] for t in result["per_task"]]
    assert [t["task"] for t in result["per_task"]] == [1, 3]
    np.testing.assert_allclose(per_task, run.evaluate(4, 1), rtol=1e-6)
    np.testing.assert_allclose(result["return"]["per_seed"], np.mean(per_task, 0), rtol=1e-6)


def test_evaluating_task_after_task_compiles_one_program(single_task):
    run = jaxrl.load(str(single_task))
    first = [run.evaluate(episodes=4, key=2, task=t) for t in (1, 3, 1)]
    np.testing.assert_array_equal(first[0], first[2])
    assert not np.array_equal(first[0], first[1])  # task 3's own networks and physics
    assert run._evaluation_programs["one_task"]._cache_size() == 1


@pytest.mark.parametrize("argv, message", [
    (["eval", "{run}", "--task", "0", "--out", "{tmp}/x.json"], "--task: got 0; this run trained on tasks [1, 3]"),
    (["render", "{run}", "--task", "2", "--out", "{tmp}/x.gif"], "--task: got 2; this run trained on tasks [1, 3]"),
    (["train", "--init-from", "{run}", "--env", "CartPoleMorph-v0", "--out", "{tmp}/o"],
     "trained each task on its own network (--single-task)"),
])
def test_single_task_bad_input_is_one_line_exit_2(single_task, tmp_path, capsys, argv, message):
    assert main([a.format(tmp=tmp_path, run=single_task) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not any(p.name.startswith(("x.", "o")) for p in tmp_path.iterdir())


@pytest.mark.parametrize("argv, message", [
    (["eval", "{tmp}"], "is not a finished run of `jaxrl train` (no config.json)"),
    (["eval", "{run}", "--task", "1", "--out", "{tmp}/x.json"], "--task: CartPole-v1 is not a task family"),
    (["eval", "{tmp}/nope"], "is not a folder"),
    (["eval", "{run}", "--episodes", "0"], "--episodes: got 0, must be >= 1"),
    (["render", "{run}", "--seed", "9", "--out", "{tmp}/x.gif"], "--seed: got 9; this run has seeds 0..3"),
    (["render", "{run}", "--task", "1", "--out", "{tmp}/x.gif"], "--task: CartPole-v1 is not a task family"),
    (["render", "{run}", "--out", "{tmp}/x.mp4"], "render writes a GIF"),
    (["render", "{run}", "--env", "CartPole-v1", "--out", "{tmp}/x.gif"], "--env: with RUN"),
    (["train", "--init-from", "{run}", "--env", "Acrobot-v1", "--out", "{tmp}/o"],
     "trained ppo on CartPole-v1; this run is ppo on Acrobot-v1"),
    (["train", "--init-from", "{run}", "--seeds", "5", "--out", "{tmp}/o"], "has 4 seeds, fewer than --seeds 5"),
    (["train", "--init-from", "{run}", "--seeds", "2", "--hidden-sizes", "8", "--out", "{tmp}/o"], "do not fit this network"),
])
def test_bad_input_is_one_line_exit_2(trained, tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path, run=trained) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not any(p.name.startswith(("x.", "o")) for p in tmp_path.iterdir())
