"""ReacherLinks-v0 (envs/reacher_links.py) and the GIF renderer (envs/render.py).

MJX compiles take tens of seconds on this CPU, so every test but (g) (its own small program: two
envs per task, one restarted inside `step`, one started by `reset`) shares ONE compiled program:
`envs.render.rollout` of the whole task table (4 tasks vmapped, STEPS steps, actions given). The
runs below differ only in traced numbers (actions, episode length, link counts, cost weights)."""
import os

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

import envs
from envs import render
from envs.reacher_links import (FRAME_SKIP, LINK_BODIES, LINK_COUNTS, LINK_LENGTH, MAX_LINKS,
                                SUCCESS_DISTANCE, sample_target)

STEPS = 200
KEY = jax.random.PRNGKey(0)
NUM_OBS = 3 * MAX_LINKS + 4


def _mask(num_links):
    return (np.arange(MAX_LINKS) < num_links).astype(np.float32)


@pytest.fixture(scope="module")
def family():
    return envs.make("ReacherLinks-v0")


@pytest.fixture(scope="module")
def actions():
    return np.asarray(jax.random.uniform(jax.random.PRNGKey(1), (4, STEPS, MAX_LINKS),
                                         minval=-1.2, maxval=1.2))  # some beyond the [-1, 1] box


def _with(table, **changes):
    return table.replace(env=table.env.replace(**{k: jnp.asarray(v, getattr(table.env, k).dtype)
                                                  for k, v in changes.items()}))


@pytest.fixture(scope="module")
def long_table(family):
    """The table without time limit within STEPS: one episode, no auto-reset."""
    return _with(family[1], max_steps_in_episode=np.full(4, 10**6))


@pytest.fixture(scope="module")
def long_run(family, long_table, actions):
    return jax.tree.map(np.asarray, render.rollout(family[0], long_table, actions, KEY))


@pytest.fixture(scope="module")
def default_run(family, actions):
    return jax.tree.map(np.asarray, render.rollout(family[0], family[1], actions, KEY))


def _c_run(model, n, qpos, qvel, actions):
    """MuJoCo C from (qpos, qvel) under `actions`: per env step the qpos and the fingertip-target
    distance (tip site placed at the step's final qpos)."""
    _assert_massless_beyond(model, n)
    data = mujoco.MjData(model)
    data.qpos[:], data.qvel[:] = qpos, qvel
    out, distance = [], []
    for action in actions:
        data.ctrl[:] = np.clip(action, -1, 1) * _mask(n)
        for _ in range(FRAME_SKIP):
            mujoco.mj_step(model, data)
        out.append(data.qpos.copy())
        mujoco.mj_kinematics(model, data)  # mj_step leaves sites at its last substep's start
        distance.append(np.linalg.norm(data.site(f"tip{n - 1}").xpos[:2] - data.qpos[5:]))
    return np.array(out), np.array(distance)


def _assert_massless_beyond(model, n):
    """Links n..4 of the C model weigh nothing; links 0..n-1 keep their capsule masses."""
    mass = model.body_mass[LINK_BODIES]
    assert (mass[:n] > 0).all() and not mass[n:].any() and not model.body_inertia[LINK_BODIES[n:]].any()


def test_mjx_matches_mujoco_c(family, long_run, actions):
    """(a) Every task steps like its C model (same initial state, masked ctrl, frame skip, locks)."""
    env, table = family
    errors = []
    for t, n in enumerate(LINK_COUNTS):
        qpos, distance = _c_run(env.mj_model(t), n, long_run["qpos"][t, 0], long_run["qvel"][t, 0],
                                actions[t])
        errors.append(np.abs(qpos - long_run["qpos"][t, 1:]).max())
        np.testing.assert_allclose(long_run["info"]["reward_components"][t, :, 0], distance, atol=1e-5)
        np.testing.assert_array_equal(long_run["info"]["success"][t],  # the physical criterion
                                      long_run["info"]["reward_components"][t, :, 0] < SUCCESS_DISTANCE)
        assert np.abs(long_run["qpos"][t, :, :n]).max() > 1.0  # the arm really moved
    print("MJX vs C max |qpos| error per task:", errors)
    assert max(errors) < 1e-4, errors


def test_locked_links_and_masked_actions(family, long_table, long_run, actions):
    """(b) Joints n..4 stay exactly at 0 under random actions; actions on them change nothing."""
    for t, n in enumerate(LINK_COUNTS):
        assert not long_run["qpos"][t, :, n:MAX_LINKS].any() and not long_run["qvel"][t, :, n:MAX_LINKS].any()
        obs = long_run["obs"][t]
        np.testing.assert_array_equal(obs[:, n:MAX_LINKS], 1.0)  # cos of locked joints
        np.testing.assert_array_equal(obs[:, MAX_LINKS + n:2 * MAX_LINKS], 0.0)  # sin
        np.testing.assert_array_equal(obs[:, 2 * MAX_LINKS + n:3 * MAX_LINKS], 0.0)  # velocity
    other = np.asarray(jax.random.uniform(jax.random.PRNGKey(2), actions.shape, minval=-1, maxval=1))
    mask = np.stack([_mask(n) for n in LINK_COUNTS])[:, None, :]
    changed = actions * mask + other * (1 - mask)
    run = render.rollout(family[0], long_table, changed, KEY)
    for name in ("qpos", "qvel", "obs", "reward"):
        np.testing.assert_array_equal(run[name], long_run[name])


def test_variants_differ(family, long_run):
    """(c) Reach = sum of active link lengths; the fingertip is the end of the last active link."""
    env, table = family
    tips = []
    for t, n in enumerate(LINK_COUNTS):
        model = env.mj_model(t)
        data = mujoco.MjData(model)
        mujoco.mj_kinematics(model, data)  # straight arm
        tips.append(data.site(f"tip{n - 1}").xpos[:2].copy())
        np.testing.assert_allclose(tips[-1], [LINK_LENGTH * n, 0.0], atol=1e-9)
        # the env's fingertip (obs: fingertip - target, target) matches the C model's tip site
        data.qpos[:] = long_run["qpos"][t, 0]
        mujoco.mj_kinematics(model, data)
        obs = long_run["obs"][t, 0]
        target = obs[3 * MAX_LINKS:3 * MAX_LINKS + 2]
        np.testing.assert_allclose(obs[3 * MAX_LINKS + 2:NUM_OBS] + target,
                                   data.site(f"tip{n - 1}").xpos[:2], atol=1e-5)
        assert np.linalg.norm(target) <= LINK_LENGTH * n + 1e-6
    assert len({round(float(x), 3) for x, _ in tips}) == 4  # reaches 0.2, 0.3, 0.4, 0.5
    # targets are uniform in each task's disc: within the reach, a quarter inside half of it
    keys = jax.random.split(jax.random.PRNGKey(3), 4000)
    for n in LINK_COUNTS:
        radius = np.linalg.norm(jax.jit(jax.vmap(sample_target, (0, None)))(keys, n), axis=1)
        reach = LINK_LENGTH * n
        assert radius.max() <= reach + 1e-6 and radius.max() > 0.98 * reach
        assert abs(np.mean(radius < reach / 2) - 0.25) < 0.03


def test_changing_task_numbers_does_not_recompile(family, long_run, actions):
    """(d) New link counts, cost weights and episode lengths run in the same compiled program."""
    env, table = family
    size = render._rollout._cache_size()
    weights = np.array([0.0, 0.5, 1.0, 2.0], np.float32)
    changed = _with(table, num_links=[5, 4, 3, 2], ctrl_cost_weight=weights,
                    max_steps_in_episode=[10**6] * 4)
    run = jax.tree.map(np.asarray, render.rollout(env, changed, actions, KEY))
    assert render._rollout._cache_size() == size
    for t, n in enumerate([5, 4, 3, 2]):
        cost = weights[t] * np.sum((np.clip(actions[t], -1, 1) * _mask(n)) ** 2, axis=-1)
        np.testing.assert_allclose(run["info"]["reward_components"][t, :, 1], cost, rtol=1e-5)
        np.testing.assert_allclose(run["reward"][t], -run["info"]["reward_components"][t].sum(-1),
                                   rtol=1e-5, atol=1e-6)
        assert np.abs(run["qpos"][t, :, n - 1]).max() > 0.5  # its last link now moves...
        assert not run["qpos"][t, :, n:MAX_LINKS].any()  # ...and the rest is locked


def test_one_hot_and_truncation(family, default_run, long_run):
    """(e) One-hot task id appended (or not); truncated every 50 steps, never terminated, with the
    pre-reset observation in info["final_observation"]."""
    env, table = family
    assert env.observation_space(table).shape == (NUM_OBS + 4,)
    assert env.action_space(table).shape == (MAX_LINKS,)
    assert env.reward_component_names == ("distance", "ctrl_cost")
    obs = default_run["obs"]
    assert obs.dtype == np.float32 and obs.shape == (4, STEPS + 1, NUM_OBS + 4)
    np.testing.assert_array_equal(obs[:, :, NUM_OBS:], np.broadcast_to(np.eye(4)[:, None], (4, STEPS + 1, 4)))
    assert not default_run["terminated"].any()
    ends = np.flatnonzero(default_run["truncated"][0]) + 1
    np.testing.assert_array_equal(ends, np.arange(50, STEPS + 1, 50))
    assert (default_run["truncated"] == default_run["truncated"][:1]).all()
    final = default_run["info"]["final_observation"]
    done = default_run["truncated"]
    np.testing.assert_array_equal(final[~done], obs[:, 1:][~done])
    assert (np.abs(final[done] - obs[:, 1:][done]).max(-1) > 1e-3).all()  # a new episode started
    np.testing.assert_array_equal(default_run["qpos"][:, :50], long_run["qpos"][:, :50])
    hidden, hidden_table = envs.make("ReacherLinks-v0", one_hot=False)
    assert hidden.observation_space(hidden_table).shape == (NUM_OBS,)
    shape = jax.eval_shape(hidden.reset, KEY, envs.task(hidden_table, 0))[0].shape
    assert shape == (NUM_OBS,)


def test_reset_inside_step_steps_like_a_fresh_c_model(family, default_run, actions):
    """(f) The episodes that `step` restarted (at steps 50, 100, 150) start with a consistent
    observation (the fingertip of the new qpos) and step like a C model freshly started there."""
    env, table = family
    for t, n in enumerate(LINK_COUNTS):
        model = env.mj_model(t)
        for start in (50, 100, 150):
            q0, obs = default_run["qpos"][t, start], default_run["obs"][t, start]
            data = mujoco.MjData(model)
            data.qpos[:] = q0
            mujoco.mj_kinematics(model, data)
            np.testing.assert_allclose(obs[3 * MAX_LINKS + 2:NUM_OBS] + q0[MAX_LINKS:],
                                       data.site(f"tip{n - 1}").xpos[:2], atol=1e-5)
            np.testing.assert_allclose(obs[:MAX_LINKS], np.cos(q0[:MAX_LINKS] * _mask(n)), atol=1e-6)
            assert np.abs(q0[:n]).max() <= 0.1 and not default_run["qvel"][t, start, n:].any()
            qpos, distance = _c_run(model, n, q0, default_run["qvel"][t, start],
                                    actions[t, start:start + 50])
            # qpos rows start + 1 .. start + 49 (row start + 50 is the next episode's start)
            np.testing.assert_allclose(qpos[:49], default_run["qpos"][t, start + 1:start + 50],
                                       atol=1e-4)
            components = default_run["info"]["reward_components"][t, start:start + 50]
            np.testing.assert_allclose(distance, components[:, 0], atol=1e-5)


def test_reset_inside_step_steps_like_reset(family, actions):
    """(g) Per task, env A (a 5-step time limit) restarts inside its 5th step; env B is started by
    `reset` with that step's key, then given A's later keys and actions. B's state, observations
    and rewards are A's from then on (restarts included), the solver warm start too."""
    env, table = family
    limit, n = 5, 20
    tasks = _with(table, max_steps_in_episode=np.full(4, limit))
    keys = jax.random.split(jax.random.PRNGKey(4), limit + n)
    later = np.arange(limit, 2 * limit + n) % (limit + n)  # B's step j is A's step limit + j
    rows = jax.tree.map(lambda x: jnp.concatenate([x, x]), tasks)  # A: rows 0-3, B: rows 4-7
    reset_keys = jnp.stack([jax.random.PRNGKey(5)] * 4 + [keys[limit - 1]] * 4)
    step_keys = jnp.stack([keys] * 4 + [keys[later]] * 4)
    acts = jnp.concatenate([actions[:, :limit + n], actions[:, later]])

    def run(params, reset_key, keys, acts):
        obs, state = env.reset(reset_key, params)

        def step(state, inputs):
            key, action = inputs
            obs, state, reward, *_ = env.step(key, state, action, params)
            return state, (obs, reward, state.data.qpos, state.data.qvel, state.data.qacc_warmstart)

        return obs, jax.lax.scan(step, state, (keys, acts))[1]

    obs0, traj = jax.device_get(jax.jit(jax.vmap(run))(rows, reset_keys, step_keys, acts))
    np.testing.assert_array_equal(traj[0][:4, limit - 1], obs0[4:])  # the restart's observation
    assert (np.abs(traj[4][:4, limit - 2]).max(-1) > 0).all()  # warm start before the restart...
    np.testing.assert_array_equal(traj[4][:4, limit - 1], 0.0)  # ...and after (as reset's)
    for a in traj:
        np.testing.assert_allclose(a[:4, limit:], a[4:, :n], rtol=0, atol=1e-5)


def test_attributes_forward_through_wrappers(family):
    env, table = family
    assert isinstance(env.mj_model(3), mujoco.MjModel)
    assert isinstance(env.mj_model(envs.task(table, 1)), mujoco.MjModel)
    _assert_massless_beyond(env.mj_model(envs.task(table, 1)), 3)
    assert callable(env.qpos) and callable(env.qvel)


def test_render_gif(family, actions, tmp_path):
    """A tiny GIF of task 0 (5 frames, 64x64) from the shared rollout program."""
    if render.gl_backend() is None:
        pytest.skip("no headless GL backend works here (tried MUJOCO_GL=egl and osmesa)")
    from PIL import Image

    env, table = family
    qpos = np.asarray(render.rollout_qpos(env, table, actions, KEY))
    assert qpos.shape == (4, STEPS + 1, MAX_LINKS + 2)
    path = render.render_qpos_gif(env.mj_model(0), qpos[0, :50:10], str(tmp_path / "reacher.gif"),
                                  fps=10, width=64, height=64)
    with Image.open(path) as gif:
        assert gif.size == (64, 64) and gif.n_frames == 5
        first = np.asarray(gif.convert("RGB"), dtype=int)
        gif.seek(4)
        assert np.abs(first - np.asarray(gif.convert("RGB"), dtype=int)).max() > 0  # the arm moved
    assert os.path.getsize(path) > 0


def test_env_state_checkpoints_and_restores(family, tmp_path):
    """An MJX state holds empty arrays (no contacts, no constraint rows); a checkpoint leaves
    them out (orbax refuses them) and a restore rebuilds the same state (a run on the family with
    --checkpoint-every crashed at its first save before)."""
    from jaxrl.runner.storage import Checkpoints

    env, table = family
    _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(KEY, 2), envs.task(table, 1))
    leaves = jax.tree.leaves(state)
    assert any(np.size(x) == 0 for x in leaves)
    store = Checkpoints(str(tmp_path / "chunk-0000"))
    store.save(3, {"state": Checkpoints.flatten(state)})
    step, item = store.restore()
    assert step == 3 and Checkpoints.fits(state, item["state"])
    back = Checkpoints.unflatten(state, item["state"])
    assert jax.tree.structure(back) == jax.tree.structure(state)
    for x, y in zip(leaves, jax.tree.leaves(back)):
        assert np.shape(x) == np.shape(y) and np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
