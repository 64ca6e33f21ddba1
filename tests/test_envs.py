"""The env contract, adapters and wrappers: shapes, jit, vmap, auto-reset, statistics."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from conftest import slow

pytestmark = pytest.mark.timeout(240)


def rollout(env, params, num_envs, num_steps, key):
    """jit(vmap) a random-action rollout; returns per-step outputs stacked [T, E]."""
    space = env.action_space(params)

    def run(key):
        obs, state = jax.vmap(env.reset, (0, None))(jax.random.split(key, num_envs), params)

        def step(carry, key):
            obs, state = carry
            k_act, k_step = jax.random.split(key)
            action = jax.vmap(space.sample)(jax.random.split(k_act, num_envs))
            out = jax.vmap(env.step, (0, 0, 0, None))(jax.random.split(k_step, num_envs), state,
                                                      action, params)
            return (out[0], out[1]), (obs,) + out[:1] + out[2:]

        return jax.lax.scan(step, (obs, state), jax.random.split(key, num_steps))[1]

    return jax.jit(run)(key)


@pytest.mark.parametrize("name", ["CartPole-v1", "Pendulum-v1", "Breakout-MinAtar", "brax/inverted_pendulum"])
def test_adapter_contract(name):
    env, params = envs.make(name)
    params = params.replace(max_steps_in_episode=20)  # see truncations within a short rollout
    obs_shape = env.observation_space(params).shape
    prev_obs, obs, reward, terminated, truncated, info = rollout(env, params, 3, 60, jax.random.PRNGKey(0))
    assert obs.shape == (60, 3) + obs_shape and prev_obs.shape == obs.shape
    assert reward.shape == terminated.shape == truncated.shape == (60, 3)
    assert info["final_observation"].shape == obs.shape
    done = np.asarray(terminated | truncated)
    assert done.any(), "expected at least one episode to end in 60 steps"
    assert not np.any(np.asarray(terminated & truncated))
    # Where nothing ended, the final observation is the next observation; where an episode
    # ended, the next observation comes from a reset.
    same = np.all(np.isclose(info["final_observation"], obs).reshape(60, 3, -1), -1)
    assert np.all(same[~done])
    assert not np.all(same[done])


def test_brax_truncates_at_time_limit():
    env, params = envs.make("brax/inverted_pendulum")
    params = params.replace(max_steps_in_episode=7)
    # A zero action never lets the pendulum fall within 7 steps from its tiny initial perturbation.
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    step = jax.jit(env.step)
    for t in range(7):
        obs, state, reward, terminated, truncated, info = step(jax.random.PRNGKey(t), state,
                                                               jnp.zeros(1), params)
    assert bool(truncated) and not bool(terminated)
    assert int(state.time) == 0  # reset after the time limit


BRAX_ENVS = ("ant", "halfcheetah", "hopper", "humanoid", "humanoidstandup", "inverted_pendulum",
             "inverted_double_pendulum", "pusher", "reacher", "walker2d")
NO_LAPACK_STEP = """
import re, sys, jax, jax.numpy as jnp, numpy as np
import envs
from jaxrl.agents.base import batched_env
for name in sys.argv[1].split(","):
    env, params = envs.make("brax/" + name)
    reset, step = batched_env(env, params, 4)
    obs, state = reset(jax.random.split(jax.random.PRNGKey(0), 4))
    action = jnp.zeros((4,) + env.action_space(params).shape)
    fn = jax.jit(lambda s: step(jax.random.split(jax.random.PRNGKey(1), 4), s, action))
    lapack = sorted(set(re.findall(r"lapack_[a-z_]+", fn.lower(state).as_text())))
    finite = bool(np.all(np.isfinite(fn(state)[0])))
    if "ppo" in sys.argv[2:]:  # and a few PPO updates (2 x 4 envs x 8 steps) train without NaN
        from jaxrl.agents.ppo import PPOConfig, make_train
        config = PPOConfig(total_steps=64, num_envs=4, num_steps=8, update_epochs=1,
                           num_minibatches=2, normalize_obs=True)
        metrics = jax.jit(make_train(config, env, params))(config, jax.random.PRNGKey(2))[1]
        finite &= bool(np.all(np.isfinite(np.asarray(metrics["value_loss"]))))
    print(name, lapack, finite)
"""


def brax_steps_without_lapack(names, timeout, ppo=False):
    """Each brax env's vmapped step in a fresh process under a timeout (a LAPACK deadlock fails
    the test instead of hanging the suite): no LAPACK call compiled in, finite observations;
    with `ppo`, two PPO updates too, with a finite value loss."""
    out = subprocess.run([sys.executable, "-c", NO_LAPACK_STEP, ",".join(names)] + ["ppo"] * ppo, text=True,
                         capture_output=True, timeout=timeout,
                         env={**os.environ, "JAXRL_CPU_DEVICES": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    for name in names:
        assert f"{name} [] True" in out.stdout, out.stdout


def brax_solvers_are_lapack_free(names):
    """MJX's dense mass-matrix factorisation and Newton solver call LAPACK (potrf), which can
    deadlock under vmap here; on the CPU the adapter gives every brax env the sparse mass matrix
    and CG (envs.brax_adapter.lapack_free), keeping brax's timestep and iteration counts."""
    import mujoco
    from brax import envs as brax_envs

    for name in names:
        sys = envs.make(f"brax/{name}")[0].env.brax_env.sys
        original = brax_envs.get_environment(name, backend="mjx").sys
        assert sys.mj_model.opt.solver == mujoco.mjtSolver.mjSOL_CG, name
        assert sys.mj_model.opt.jacobian == mujoco.mjtJacobian.mjJAC_SPARSE, name
        assert (sys.opt.timestep, sys.opt.iterations, sys.opt.ls_iterations) == (
            original.opt.timestep, original.opt.iterations, original.opt.ls_iterations), name


def test_brax_envs_use_the_lapack_free_solver_on_the_cpu():
    """The brax env the suite trains on (building all ten takes ~40 s: the slow test below checks
    every one)."""
    brax_solvers_are_lapack_free(["inverted_pendulum"])
    brax_steps_without_lapack(["inverted_pendulum"], timeout=180)


@pytest.mark.timeout(2400)
@slow("every brax env's solver checked, its step lowered and run, then two PPO updates: 1-4 min "
      "each on the 2-core CPU (MJX compiles); every run still checks inverted_pendulum's solver "
      "and LAPACK-free step")
def test_every_brax_env_steps_and_trains_under_vmap_without_lapack():
    brax_solvers_are_lapack_free(BRAX_ENVS)
    brax_steps_without_lapack(BRAX_ENVS, timeout=2300, ppo=True)


def test_unknown_env_names_allowed():
    with pytest.raises(ValueError, match="--env: unknown environment 'Nope-v0'; allowed: .*CartPole-v1"):
        envs.make("Nope-v0")


def test_episode_stats_mask_and_totals():
    env, params = envs.make("CartPole-v1")
    env = envs.EpisodeStats(env)
    _, _, reward, terminated, truncated, info = rollout(env, params, 2, 300, jax.random.PRNGKey(1))
    done = np.asarray(info["episode_done"])
    np.testing.assert_array_equal(done, np.asarray(terminated | truncated))
    for e in range(2):
        ends = np.flatnonzero(done[:, e])
        starts = np.concatenate([[0], ends[:-1] + 1])
        for s, t in zip(starts, ends):
            np.testing.assert_allclose(info["episode_return"][t, e], reward[s:t + 1, e].sum())
            assert info["episode_length"][t, e] == t - s + 1


def test_normalize_observation_tracks_running_moments():
    env, params = envs.make("Pendulum-v1")
    raw = rollout(env, params, 1, 200, jax.random.PRNGKey(2))[0][:, 0]  # obs before each step
    norm = rollout(envs.NormalizeObservation(env), params, 1, 200, jax.random.PRNGKey(2))[0][:, 0]
    # Observation t is normalised by the moments of observations 0..t (with gymnasium's prior).
    t = 150
    seen = np.asarray(raw[: t + 1], np.float64)
    count = 1e-4 + len(seen)
    mean = seen.sum(0) / count
    var = (1e-4 + ((seen - seen.mean(0)) ** 2).sum(0) + seen.mean(0) ** 2 * 1e-4 * len(seen) / count) / count
    np.testing.assert_allclose(norm[t], np.clip((raw[t] - mean) / np.sqrt(var + 1e-8), -10, 10),
                               rtol=1e-3, atol=1e-3)


def test_pooled_normalization_shares_one_set_of_moments_over_the_envs():
    """With axis_name, every env is normalised by the moments of every env's observations so far
    (a NumPy reference over the [t + 1, E] observations, gymnasium's prior); on a task family the
    one-hot task id then survives (per-env statistics, constant within an env, made it 0)."""
    from jaxrl.agents.base import batched_env

    env, params = envs.make("Pendulum-v1")
    num_envs, t = 6, 40
    pooled = envs.NormalizeObservation(env, axis_name=envs.ENV_AXIS)

    def run(wrapped, key):
        reset, step = batched_env(wrapped, params, num_envs)
        obs, state = reset(jax.random.split(key, num_envs))

        def body(carry, key):
            obs, state = carry
            action = jnp.full((num_envs, 1), 0.5)
            out = step(jax.random.split(key, num_envs), state, action)
            return (out[0], out[1]), obs

        return jax.lax.scan(body, (obs, state), jax.random.split(key, t + 1))[1]

    raw = np.asarray(jax.jit(lambda k: run(env, k))(jax.random.PRNGKey(3)), np.float64)
    norm = np.asarray(jax.jit(lambda k: run(pooled, k))(jax.random.PRNGKey(3)))
    seen = raw[: t + 1].reshape(-1, raw.shape[-1])  # [(t + 1) E, obs]: observation t's batch too
    count = 1e-4 + len(seen)
    mean = seen.sum(0) / count
    var = (1e-4 + ((seen - seen.mean(0)) ** 2).sum(0) + seen.mean(0) ** 2 * 1e-4 * len(seen) / count) / count
    np.testing.assert_allclose(norm[t], np.clip((raw[t] - mean) / np.sqrt(var + 1e-8), -10, 10),
                               rtol=1e-3, atol=1e-3)

    family, table = envs.make("CartPoleMorph-v0")
    reset, _ = batched_env(envs.NormalizeObservation(family, axis_name=envs.ENV_AXIS), table, 8)
    obs, _ = reset(jax.random.split(jax.random.PRNGKey(0), 8))
    one_hot = np.asarray(obs[:, 4:])  # env i runs task i mod 4
    assert (one_hot.argmax(1) == np.arange(8) % 4).all() and np.abs(one_hot).min() > 0.1
    reset, _ = batched_env(envs.NormalizeObservation(family), table, 8)  # per env: the id is lost
    np.testing.assert_allclose(reset(jax.random.split(jax.random.PRNGKey(0), 8))[0][:, 4:], 0,
                               atol=0.02)


def test_the_task_id_passes_through_normalisation_even_when_unseen():
    """A held-out task's id entry was 0 in every training step; normalised by its ~0 variance it
    would reach the network as the clip value 10. The one-hot id passes through as it is, the
    physical observation is normalised, and the saved statistics say so (mean 0, variance 1)."""
    from jaxrl.agents.base import batched_env

    family, table = envs.make("CartPoleMorph-v0")
    assert envs.task_id_width(envs.EpisodeStats(family)) == 4
    assert envs.task_id_width(envs.make("CartPoleMorph-v0", one_hot=False)[0]) == 0
    assert envs.task_id_width(envs.make("CartPole-v1")[0]) == 0
    seen = envs.select_tasks(table, [0, 1, 2])
    wrapped = envs.NormalizeObservation(family, axis_name=envs.ENV_AXIS, pass_through=4)
    reset, step = batched_env(wrapped, seen, 6)
    obs, state = reset(jax.random.split(jax.random.PRNGKey(0), 6))
    for t in range(20):
        obs, state, *_ = step(jax.random.split(jax.random.PRNGKey(t), 6), state, jnp.zeros(6, int))
    np.testing.assert_array_equal(obs[:, 4:], np.eye(4)[np.arange(6) % 3])
    np.testing.assert_array_equal(state.mean[:, 4:], 0.0)
    np.testing.assert_array_equal(state.var[:, 4:], 1.0)
    assert np.abs(np.asarray(state.mean[0, :4])).max() > 0  # the physics is normalised
    unseen = wrapped._normalize(jax.tree.map(lambda x: x[0], state), jnp.eye(8)[7])  # task 3
    np.testing.assert_allclose(unseen[4:], [0, 0, 0, 1], atol=1e-6)


def test_clip_action_clips_to_box():
    env, params = envs.make("Pendulum-v1")
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    big = envs.ClipAction(env).step(jax.random.PRNGKey(1), state, jnp.asarray([100.0]), params)
    edge = env.step(jax.random.PRNGKey(1), state, jnp.asarray([env.action_space(params).high]), params)
    np.testing.assert_allclose(big[0], edge[0])


def test_rescale_action_maps_unit_box_onto_the_env_box():
    env, params = envs.make("Pendulum-v1")  # torque in [-2, 2]
    wrapped = envs.RescaleAction(env)
    space = wrapped.action_space(params)
    assert float(space.low) == -1.0 and float(space.high) == 1.0
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    for unit, torque in [(0.5, 1.0), (-1.0, -2.0), (3.0, 2.0)]:
        got = wrapped.step(jax.random.PRNGKey(1), state, jnp.asarray([unit]), params)
        want = env.step(jax.random.PRNGKey(1), state, jnp.asarray([torque]), params)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-6)


def test_wrapped_envs_copy_and_forward_attributes():
    import copy

    env, params = envs.make("CartPole-v1")
    wrapped = envs.EpisodeStats(envs.AutoReset(env))
    clone = copy.copy(wrapped)
    assert clone.env is wrapped.env and clone.num_actions == env.num_actions


USER_ENV = '''
"""A user's own env in a few lines: walk right along 5 cells, reward 1 at the end."""
import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

import envs


@struct.dataclass
class Params:
    max_steps_in_episode: int = 20


class GoRight:
    def reset(self, key, params):
        return jax.nn.one_hot(0, 5), {"pos": jnp.int32(0), "t": jnp.int32(0)}

    def step(self, key, state, action, params):
        pos = jnp.clip(state["pos"] + 2 * action - 1, 0, 4)
        t = state["t"] + 1
        terminated = pos == 4
        truncated = (t >= params.max_steps_in_episode) & ~terminated
        reward = terminated.astype(jnp.float32)
        return jax.nn.one_hot(pos, 5), {"pos": pos, "t": t}, reward, terminated, truncated, {}

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (5,))

    def action_space(self, params):
        return spaces.Discrete(2)


envs.register("GoRight-v0", lambda: (envs.AutoReset(GoRight()), Params()))
'''


def test_a_users_env_registers_and_trains_from_the_cli(tmp_path, monkeypatch, capsys):
    """`envs.register` in the user's module, `--env-module` on the command line: the env trains,
    lists in the error message of an unknown env, and its run loads and evaluates."""
    import json

    import jaxrl
    from jaxrl.cli import main

    (tmp_path / "my_envs.py").write_text(USER_ENV)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run"
    tiny = ["--num-envs", "4", "--num-steps", "16", "--update-epochs", "2", "--num-minibatches",
            "2", "--hidden-sizes", "16", "--total-steps", "640", "--seeds", "2"]
    assert main(["train", "--env-module", "my_envs", "--env", "GoRight-v0", "--out", str(out),
                 *tiny]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env"] == "GoRight-v0" and summary["episode_updates"] == 20 * 4 // 64 + 1
    assert np.isfinite(jaxrl.load(str(out)).evaluate(episodes=4)).all()
    assert main(["train", "--env-module", "no_such_module", "--out", str(tmp_path / "x"), *tiny]) == 2
    assert "--env-module: cannot import 'no_such_module'" in capsys.readouterr().err
    spec = envs.spec(*envs.make("GoRight-v0"))
    assert spec.discrete and spec.observation_shape == (5,) and spec.max_steps_in_episode == 20
    with pytest.raises(ValueError, match="already an env name"):
        envs.register("GoRight-v0", lambda: None)


def test_import_turns_off_xlas_cpu_fusion_emitters_unless_told():
    """`import envs` adds --xla_cpu_use_fusion_emitters=false to XLA_FLAGS (MJX chains five bodies
    deep run ~13x slower with the fusion emitters, envs/__init__.py) and keeps a user's own choice."""
    code = "import os, envs, jax; jax.numpy.zeros(1); print(os.environ['XLA_FLAGS'])"
    for given, expected in ((None, envs.CPU_FUSION_FLAG), ("--xla_cpu_use_fusion_emitters=true",
                                                          "--xla_cpu_use_fusion_emitters=true")):
        env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
        if given:
            env["XLA_FLAGS"] = given
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120, env=env)
        assert out.returncode == 0, out.stderr[-2000:]
        flags = out.stdout.strip().splitlines()[-1]
        assert expected in flags and flags.count("fusion_emitters") == 1, flags


def test_episode_success_rate_per_task_matches_a_plain_count():
    """`success` in an env's info becomes `episode_success` (the last step's success), and
    `episode_metrics` reports the fraction of finished episodes that succeeded, overall and per
    task, as a plain count over the same [T, E] arrays does."""
    from jaxrl.metrics import episode_info, episode_metrics

    rng = np.random.default_rng(0)
    done = rng.random((40, 6)) < 0.2
    success = rng.random((40, 6)) < 0.4
    info = {"episode_return": rng.normal(size=(40, 6)).astype(np.float32),
            "episode_length": np.ones((40, 6), np.int32), "episode_done": done,
            "episode_success": success, "other": np.zeros((40, 6))}
    assert set(episode_info(info)) == {"episode_return", "episode_length", "episode_done",
                                       "episode_success"}
    task_index = np.array([0, 1, 2, 0, 1, 2])
    m = jax.tree.map(np.asarray, episode_metrics(episode_info(info), task_index, 3))
    np.testing.assert_allclose(m["episode_success_mean"], success[done].mean(), rtol=1e-6)
    assert m["episode_success_count"] == done.sum()
    for k in range(3):
        mask = done & (task_index == k)
        np.testing.assert_allclose(m[f"task{k}_success_mean"], success[mask].mean(), rtol=1e-6)
    assert "episode_success_mean" not in episode_metrics(
        {k: v for k, v in info.items() if k != "episode_success"})

    class Succeeds(envs.Wrapper):  # "success": the cart ends right of the centre
        def step(self, key, state, action, params):
            out = self.env.step(key, state, action, params)
            return (*out[:5], {**out[5], "success": out[5]["final_observation"][0] > 0})

    env, params = envs.make("CartPole-v1")
    _, _, _, terminated, truncated, info = rollout(envs.EpisodeStats(Succeeds(env)), params, 2, 300,
                                                   jax.random.PRNGKey(1))
    np.testing.assert_array_equal(info["episode_success"], info["success"])
    assert 0 < info["episode_success"][info["episode_done"]].mean() < 1
