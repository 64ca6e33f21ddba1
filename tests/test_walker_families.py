"""WalkerMorph-v0 and WalkerSkills-v0: MJX physics against MuJoCo C, morphologies as params
without recompiling, and skills that share physics but not rewards.

MJX compiles take tens of seconds on a CPU, so each family is compiled once (module fixtures) into
a rollout vmapped over all its tasks, and every test reads from those runs.

Why the C comparison is step by step: contacts and joint limits switch on at a threshold, so a
float32 (MJX) and a float64 (C) run that start 1e-7 apart may cross one a substep apart and then
drift by centimetres. Each env step is therefore checked from the same state (MJX's previous
state, warm start included, loaded into C), over hundreds of env steps with contacts, limits and
falls. Both run the family's own settings (CG capped at 4 iterations and 8 line-search steps,
brax's walker2d count), so in contact phases neither solve converges and the two implementations
stop at different points: the median step agrees to float32 precision, the worst tenth does not
(observed 90th percentile of the qvel error 0.27). A free run therefore separates within a few
steps and is not compared.
"""
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

import envs
from envs import walker

pytestmark = pytest.mark.timeout(300)

STEPS = 200  # env steps (800 MuJoCo steps) per rollout
# (qpos, qvel) tolerance for the median one-step error: observed <= 1e-5 and 1.8e-4 on every task
# (float32 MJX vs float64 C, both CG at 4 iterations); a wrong body's median is >= 1.2e-3 and 0.23.
TOL = np.array([1e-4, 2e-3])
WRONG = 5.0
ACTIONS = (0.5 * np.sin(0.05 * np.arange(STEPS)[:, None] + np.arange(6)[None, :])).astype(np.float32)


@pytest.fixture(scope="module")
def morph():
    """The family, its table, a jitted rollout (vmapped over tasks) with a trace counter, and
    the rollout of the table itself."""
    family, table = envs.make("WalkerMorph-v0")
    inner = family.env  # TaskFamily -> Walker; `transition` does not auto-reset (falls keep going)
    traces = []

    def rollout(params, key):
        traces.append(1)  # runs only while tracing

        def one_task(params):
            _, state = inner.reset(key, params)

            def step(state, action):
                state = inner.transition(key, state, action, params)[1]
                return state, (state.data.qpos, state.data.qvel, state.data.qacc_warmstart)

            return state.data.qpos, state.data.qvel, jax.lax.scan(step, state, ACTIONS)[1]

        return jax.vmap(one_task)(params)

    run = jax.jit(rollout)
    result = jax.device_get(run(table.env, jax.random.PRNGKey(0)))
    return family, table, run, traces, result


def c_errors(mj_model, result, task):
    """MuJoCo C against MJX task `task`: per env step, the (qpos, qvel) max errors of one C step
    from MJX's previous state ([STEPS, 2])."""
    qpos0, qvel0, (qpos, qvel, warm) = jax.tree.map(lambda x: np.asarray(x[task], np.float64), result)
    data = mujoco.MjData(mj_model)
    step_err = np.zeros((STEPS, 2))
    for k in range(STEPS):
        data.qpos[:], data.qvel[:] = (qpos0, qvel0) if k == 0 else (qpos[k - 1], qvel[k - 1])
        data.qacc_warmstart[:] = 0.0 if k == 0 else warm[k - 1]
        data.ctrl[:] = ACTIONS[k]
        for _ in range(walker.FRAME_SKIP):
            mujoco.mj_step(mj_model, data)
        step_err[k] = np.abs(data.qpos - qpos[k]).max(), np.abs(data.qvel - qvel[k]).max()
    return step_err


def test_morph_matches_mujoco_c(morph):
    family, table, _, _, result = morph
    num = len(family.task_names)
    assert num >= 4
    for i in range(num):
        for j in range(num):
            median = np.median(c_errors(family.mj_model(j), result, i), 0)
            if i == j:  # the right C model (same settings) agrees step by step
                assert np.all(median < TOL), (family.task_names[i], median)
                assert mujoco.mjtSolver(family.mj_model(j).opt.solver) == mujoco.mjtSolver.mjSOL_CG
            else:  # any other body (heavy_torso vs base: torso mass alone) is far outside it
                assert np.all(median > WRONG * TOL), (i, j, median)


def test_morph_variants_differ(morph):
    family, table, _, _, _ = morph
    models = [family.mj_model(i) for i in range(len(family.task_names))]
    total_mass = np.array([m.body_subtreemass[0] for m in models])
    legs = np.array([[2 * m.geom(f"{part}_right").size[1] for part in ("thigh", "leg")] for m in models])
    variants = np.array(list(walker.MORPH_VARIANTS.values()))
    np.testing.assert_allclose(legs, variants[:, :2], rtol=1e-6)  # the C models have the lengths asked for
    assert len(np.unique(total_mass.round(3))) == len(models)
    assert len({tuple(x) for x in legs}) >= 3
    # The task params carry each C model's numbers: body masses, standing heights.
    np.testing.assert_allclose(np.asarray(table.env.model["body_mass"]).sum(1), total_mass, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(table.env.model["qpos0"])[:, 1], [m.qpos0[1] for m in models],
                               rtol=1e-6)
    # Only differing leaves are params; structural fields are not among them.
    assert "body_mass" in table.env.model and "body_parentid" not in table.env.model
    assert "opt.timestep" not in table.env.model


def test_morph_new_numbers_do_not_recompile(morph):
    family, table, run, traces, _ = morph
    assert len(traces) == 1
    mj_model = mujoco.MjModel.from_xml_string(
        walker.walker_xml(thigh=0.5, leg=0.42, torso_density=1700.0, leg_density=800.0))
    new = family.params_for(mj_model)  # forwarded through TaskFamily
    model = {path: x.at[0].set(new[path]) for path, x in table.env.model.items()}
    result = jax.device_get(run(table.env.replace(model=model), jax.random.PRNGKey(0)))
    assert len(traces) == 1 and run._cache_size() == 1
    median = np.median(c_errors(mj_model, result, 0), 0)  # and task 0 now runs the new body
    assert np.all(median < TOL), median
    with pytest.raises(ValueError):  # a body needing more than the swapped leaves is refused
        family.params_for(mujoco.MjModel.from_xml_string(walker.walker_xml().replace(
            'damping="0.1"', 'damping="0.2"')))


SKILL_STEPS = 40
TRUNCATE_AT = 8  # task 1's time limit in the skills rollout


@pytest.fixture(scope="module")
def skills():
    """WalkerSkills-v0 run through the whole family (one-hot, auto-reset), every task from the
    same reset key with the same actions; task 1 has an 8-step time limit. A sixth row, returned
    apart (`restart`), is task 1 started by `reset` with the key of its first step-8 reset and
    then given task 1's later keys and actions: it must replay task 1 from step 8 on."""
    family, table = envs.make("WalkerSkills-v0")
    limits = np.full(family.num_tasks, 1000, np.int32)
    limits[1] = TRUNCATE_AT
    table = table.replace(env=table.env.replace(max_steps_in_episode=jnp.asarray(limits)))
    key = jax.random.PRNGKey(1)
    keys = jax.random.split(key, SKILL_STEPS)
    rows = jax.tree.map(lambda x: jnp.concatenate([x, x[1:2]]), table)  # + a copy of task 1
    later = np.arange(TRUNCATE_AT, TRUNCATE_AT + SKILL_STEPS)  # its steps' indices in task 1's run
    reset_keys = jnp.stack([key] * family.num_tasks + [keys[TRUNCATE_AT - 1]])
    step_keys = jnp.stack([keys] * family.num_tasks + [keys[later % SKILL_STEPS]])
    actions = jnp.stack([ACTIONS[:SKILL_STEPS]] * family.num_tasks + [ACTIONS[later]])

    def rollout(params, reset_keys, step_keys, actions):
        def one_task(params, reset_key, keys, actions):
            obs, state = family.reset(reset_key, params)

            def step(state, inputs):
                k, action = inputs
                obs, state, reward, terminated, truncated, info = family.step(k, state, action, params)
                return state, (obs, reward, terminated, truncated, info, family.qpos(state),
                               family.qvel(state))

            return obs, jax.lax.scan(step, state, (keys, actions))[1]

        return jax.vmap(one_task)(params, reset_keys, step_keys, actions)

    out = jax.device_get(jax.jit(rollout)(rows, reset_keys, step_keys, actions))
    main = jax.tree.map(lambda x: x[:-1], out)
    obs0, (obs, reward, terminated, truncated, info, qpos, qvel) = main
    restart = jax.tree.map(lambda x: x[-1], out)
    return family, table, (obs0, (obs, reward, terminated, truncated, info, qpos)), qvel, restart


def test_skills_share_physics_not_rewards(skills):
    family, table, (obs0, (obs, reward, terminated, truncated, info, qpos)), _, _ = skills
    num, names = family.num_tasks, family.reward_component_names
    assert num == 5 and len(names) == 5 and "ctrl_cost" in names and "x_velocity" in names
    comps = info["reward_components"]
    assert comps.shape == (num, SKILL_STEPS, len(names)) and comps.dtype == np.float32
    before = slice(0, TRUNCATE_AT - 1)  # no task has ended yet: same transitions everywhere
    tracking, velocity = names.index("velocity_tracking"), comps[..., names.index("x_velocity")]
    target = np.asarray(table.env.target_velocity)[:, None]
    np.testing.assert_allclose(comps[..., tracking], np.abs(target) - np.abs(velocity - target), atol=1e-5)
    for t in range(1, num):
        np.testing.assert_array_equal(obs[t, before, :17], obs[0, before, :17])
        np.testing.assert_array_equal(np.delete(comps[t, before], tracking, -1),
                                      np.delete(comps[0, before], tracking, -1))
        np.testing.assert_array_equal(qpos[t, before], qpos[0, before])
    weights = np.asarray(table.env.reward_weights)
    np.testing.assert_allclose(reward, np.einsum("tkc,tc->tk", comps, weights), rtol=1e-5, atol=1e-6)
    # Same steps, different rewards (walk, run and stand agree while the walker drifts backward,
    # as here: each is then the velocity itself).
    assert len(np.unique(reward[:, before].sum(1).round(4))) >= 3
    # Each skill prefers its own motion: the best forward velocity (at standing height) and
    # whether it pays to be higher.
    velocity = np.linspace(-3.0, 6.0, 91)[:, None]
    synthetic = np.stack(np.broadcast_arrays(velocity, np.abs(target.T) - np.abs(velocity - target.T),
                                             0.0, 1.0, 0.0), -1)  # [velocity, task, component]
    best = velocity[np.argmax((synthetic * weights).sum(-1), 0), 0]
    np.testing.assert_allclose(best, [1.0, 6.0, 0.0, 0.0, -1.0], atol=1e-6)  # walk run jump stand back
    assert weights[:, names.index("height")].tolist() == [0.0, 0.0, 5.0, 0.0, 0.0]
    # One-hot task id appended; the bare observation is qpos without rootx and qvel.
    assert obs.shape[-1] == 17 + num and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[:, 0, 17:], np.eye(num))
    assert family.observation_space(table).shape == (17 + num,)
    assert family.action_space(table).shape == (6,)
    hidden, hidden_table = envs.make("WalkerSkills-v0", one_hot=False)
    assert hidden.observation_space(hidden_table).shape == (17,)
    assert isinstance(family.mj_model(3), mujoco.MjModel) and family.mj_model(3).nu == 6


def test_skills_terminated_vs_truncated(skills):
    family, table, (obs0, (obs, reward, terminated, truncated, info, qpos)), _, _ = skills
    assert not np.any(terminated & truncated)
    # Task 1 hits its 8-step limit every 8 steps (it does not fall that fast).
    expected = (np.arange(SKILL_STEPS) + 1) % TRUNCATE_AT == 0
    np.testing.assert_array_equal(truncated[1], expected)
    assert not terminated[1].any()
    # Task 0 (1000-step limit) falls: terminated, not truncated, with the healthy term off.
    assert terminated[0].any() and not truncated[0].any()
    first = int(np.argmax(terminated[0]))
    healthy = family.reward_component_names.index("healthy")
    assert info["reward_components"][0, first, healthy] == 0.0
    assert np.all(info["reward_components"][0, :first, healthy] == 1.0)
    # On an ending step the observation is the reset's; the final observation is the fallen one.
    final = info["final_observation"]
    assert not np.allclose(final[0, first], obs[0, first])
    assert final[0, first, 0] < walker.HEALTHY_HEIGHT[0] * family.mj_model(0).qpos0[1] or \
        abs(final[0, first, 1]) >= walker.HEALTHY_ANGLE
    np.testing.assert_allclose(obs[0, first, :8], family.mj_model(0).qpos0[1:], atol=2 * walker.RESET_NOISE)


def test_reset_inside_step_restarts_like_reset(skills):
    """Task 1 truncates at step 8 and restarts inside `step` (the light reset of envs.mjx_base):
    its next steps are those of an env started by `reset` with that step's key (same qpos/qvel,
    zero warm start), and its state then is exactly that reset state."""
    family, table, (_, (obs, reward, terminated, truncated, info, qpos)), qvel, restart = skills
    obs0_b, (obs_b, reward_b, terminated_b, truncated_b, info_b, qpos_b, qvel_b) = restart
    first = TRUNCATE_AT - 1  # the step that truncated task 1 and reset it
    assert truncated[1, first]
    np.testing.assert_array_equal(obs[1, first], obs0_b)  # the reset env's observation...
    assert not np.allclose(info["final_observation"][1, first], obs0_b)  # (the pre-reset one differs)
    _, state = jax.jit(family.reset)(jax.random.split(jax.random.PRNGKey(1), SKILL_STEPS)[first],
                                     envs.task(table, 1))
    np.testing.assert_array_equal(qpos[1, first], state.data.qpos)  # ...and state are reset's
    np.testing.assert_array_equal(qvel[1, first], state.data.qvel)
    n = SKILL_STEPS - TRUNCATE_AT
    for a, b in [(obs[1, TRUNCATE_AT:], obs_b[:n]), (qpos[1, TRUNCATE_AT:], qpos_b[:n]),
                 (qvel[1, TRUNCATE_AT:], qvel_b[:n]), (reward[1, TRUNCATE_AT:], reward_b[:n])]:
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(truncated[1, TRUNCATE_AT:], truncated_b[:n])
    np.testing.assert_array_equal(terminated[1, TRUNCATE_AT:], terminated_b[:n])


def test_step_calls_no_lapack():
    """Batched LAPACK (MJX's Newton solver, dense mass matrix) deadlocks jax 0.10.2 under vmap on
    the CPU; the walker uses CG and a sparse mass matrix so its vmapped step has no LAPACK call."""
    family, table = envs.make("WalkerMorph-v0")
    params, _ = envs.spread_tasks(table, 2)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    _, state = jax.eval_shape(jax.vmap(family.reset), keys, params)
    text = jax.jit(jax.vmap(family.step)).lower(keys, state, jnp.zeros((2, 6)), params).as_text()
    assert "lapack" not in text.lower() and "cholesky" not in text.lower()
