"""ReacherLinks-v0: planar reaching arms with 2, 3, 4 and 5 links as one MJX task family.

One MJCF model (written for this project) holds a 5-link planar arm and a target; every task runs
that model, so all tasks are one compiled MJX program and the task is a vmap axis like the seed.

* Links are 0.1 m each (fixed length), so the reach of an n-link arm is 0.1 * n: 0.2, 0.3, 0.4 and
  0.5 m. Joints are unlimited hinges about z (damping 1, armature 1, motor gear 50, ctrl in [-1, 1];
  gym Reacher's joint settings with a gentler gear), no contacts, no gravity in the plane.
* Padding: an n-link task makes links n..4 massless (body mass and inertia 0, swapped into the
  mjx.Model inside the step from the traced link count, so one compiled program serves every task
  and the task params need only the link count). A massless subtree exerts no force on the links
  above it and feels none from them (its rows of the mass matrix are its joints' armature alone,
  its bias and passive forces are 0), so a locked joint that starts at rest stays exactly at 0 and
  the active links move exactly as an n-link arm: no constraint rows, hence no constraint solver
  at all (the earlier lock by joint equality constraints ran MJX's CG solver every substep and
  made the locked links' masses part of the last active one). `mj_model(task)` makes the same
  change to the C model (and hides the locked links' geoms and sites).
  Actions of locked joints are zeroed (no effect, no control cost), and their observation entries
  are the constants cos = 1, sin = 0, velocity = 0.
* The fingertip is the site at the end of the last active link (`tip{n-1}`), computed from the
  step's final qpos (`fingertip`: planar forward kinematics, checked against MuJoCo's site).
* The target (two slide joints, like gym's Reacher, so `qpos` alone draws a frame) is sampled
  uniformly in the task's reachable disc at reset; the arm starts at angles U(-0.1, 0.1) and
  velocities U(-0.005, 0.005) on its active joints.
* A step is 2 physics steps of 0.01 s (gym Reacher's frame skip); episodes are truncated after 50
  steps and never terminate.
* Observation (19 floats): cos(q) [5], sin(q) [5], qdot [5], target xy [2], fingertip - target xy
  [2]; the family appends the one-hot task id (4) unless `one_hot=False`.
* Reward = -distance - ctrl_cost_weight * |a|^2 (a the masked, clipped action);
  `info["reward_components"]` = [distance, ctrl_cost] (float32), named by `reward_component_names`.
* Success (the physical criterion of learning): `info["success"]` is true while the fingertip is
  within SUCCESS_DISTANCE = 2 cm of the target (4-10% of the arm's reach, about dm_control's
  hard reacher's 1.5 cm target radius plus the fingertip); an episode succeeds if its last step
  does, which `envs.EpisodeStats` reports as `episode_success` and the runner as the success rate.
* Physics settings: brax's reacher (timestep 0.01, 2 substeps per env step) with Euler
  integration and a sparse mass matrix, so no step calls LAPACK (batched Cholesky under vmap can
  deadlock on this CPU jax); with no contacts and no constraints no solver runs. The C model
  (`mj_model`) has the same options, and the tests step both side by side.
* The env resets itself inside `step` (`envs.mjx_base.MjxEnv`'s light auto-reset: an episode ending
  at `step(key, ...)` restarts as `reset(key, ...)` would start it).

The inner env exposes `mj_model(task)` (the MuJoCo C model of task index `task`, or of a params
object, with that task's links n..4 massless and hidden), `qpos(state)` and `qvel(state)` for rendering
and tests, and `transition` (a step without auto-reset); all are reachable through `TaskFamily`
(its `__getattr__` forwards).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct
from gymnax.environments import spaces
from mujoco import mjx

from envs.family import TaskFamily
from envs.mjx_base import MjxEnv, MjxState

MAX_LINKS = 5
LINK_LENGTH = 0.1
FRAME_SKIP = 2
EPISODE_STEPS = 50
SUCCESS_DISTANCE = 0.02  # m: an episode succeeds if its last step ends with the fingertip this close
LINK_COUNTS = (2, 3, 4, 5)


def _link_xml(i: int) -> str:
    """Body `link{i}` (hinge `joint{i}`, capsule, end site `tip{i}`) with the later links nested."""
    inner = _link_xml(i + 1) if i + 1 < MAX_LINKS else ""
    pos = "0 0 0.01" if i == 0 else f"{LINK_LENGTH} 0 0"
    return (f'<body name="link{i}" pos="{pos}"><joint name="joint{i}"/>'
            f'<geom fromto="0 0 0 {LINK_LENGTH} 0 0"/>'
            f'<site name="tip{i}" pos="{LINK_LENGTH} 0 0" size="0.012"/>{inner}</body>')


MJCF = f"""
<mujoco model="reacher_links">
  <compiler angle="radian"/>
  <option timestep="0.01" gravity="0 0 0" integrator="Euler" jacobian="sparse" solver="CG"
          iterations="20" ls_iterations="10">
    <flag contact="disable"/>
  </option>
  <visual><global offwidth="640" offheight="640"/><headlight diffuse="0.3 0.3 0.3"/></visual>
  <default>
    <joint type="hinge" axis="0 0 1" damping="1" armature="1"/>
    <geom type="capsule" size="0.01" contype="0" conaffinity="0" rgba="0.2 0.5 0.8 1"/>
    <site rgba="0.9 0.7 0.1 1"/>
    <motor gear="50" ctrlrange="-1 1" ctrllimited="true"/>
  </default>
  <worldbody>
    <light pos="0 0 2" dir="0 0 -1" directional="true" diffuse="0.5 0.5 0.5"/>
    <camera name="top" pos="0 0 1.4"/>
    <geom name="ground" type="plane" size="0.6 0.6 0.01" rgba="0.25 0.3 0.35 1"/>
    <geom name="base" type="cylinder" size="0.02 0.01" pos="0 0 0.01" rgba="0.3 0.3 0.3 1"/>
    {_link_xml(0)}
    <body name="target" pos="0 0 0.01">
      <joint name="target_x" type="slide" axis="1 0 0" damping="0" armature="0"/>
      <joint name="target_y" type="slide" axis="0 1 0" damping="0" armature="0"/>
      <geom type="sphere" size="0.02" rgba="0.9 0.2 0.2 1"/>
    </body>
  </worldbody>
  <actuator>
    {"".join(f'<motor name="motor{i}" joint="joint{i}"/>' for i in range(MAX_LINKS))}
  </actuator>
</mujoco>
"""


@struct.dataclass
class ReacherParams:
    """One task: how many links are active, the control cost weight and the episode length (all
    traced leaves: changing them does not recompile)."""

    num_links: jax.Array
    ctrl_cost_weight: jax.Array
    max_steps_in_episode: jax.Array


ReacherState = MjxState


def _active(params: ReacherParams) -> jax.Array:
    """[5] float mask of the task's active joints."""
    return (jnp.arange(MAX_LINKS) < params.num_links).astype(jnp.float32)


def sample_target(key, num_links) -> jax.Array:
    """A target xy uniform in the disc of radius 0.1 * num_links (the arm's reach)."""
    key_r, key_a = jax.random.split(key)
    radius = LINK_LENGTH * num_links * jnp.sqrt(jax.random.uniform(key_r))
    angle = jax.random.uniform(key_a, minval=-jnp.pi, maxval=jnp.pi)
    return radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)])


def fingertip(qpos, num_links) -> jax.Array:
    """xy of site `tip{num_links - 1}` at `qpos`, by the planar chain's forward kinematics (hinges
    about z, links of LINK_LENGTH from the origin). Cheaper than reading MuJoCo's `site_xpos` after
    a step (which also lags one substep behind qpos): a vmapped step whose outputs need the
    stepped data's kinematics costs ~30% more than one that needs only qpos/qvel."""
    angles = jnp.cumsum(qpos[:MAX_LINKS])
    active = jnp.arange(MAX_LINKS) < num_links
    return LINK_LENGTH * jnp.stack([jnp.sum(jnp.cos(angles) * active),
                                    jnp.sum(jnp.sin(angles) * active)])


LINK_BODIES = np.arange(1, MAX_LINKS + 1)  # body ids of link0..link4 (0 is the world)


def link_mass_scale(num_links, xp=jnp):
    """[nbody] 1 for every body but the locked links (link{i}, i >= num_links): 0. `xp` is
    numpy for the C model, jax.numpy (traced link count) inside the step."""
    body = xp.arange(MAX_LINKS + 2)  # world, link0..link4, target
    locked = (body >= LINK_BODIES[0] + num_links) & (body <= LINK_BODIES[-1])
    return xp.where(locked, 0.0, 1.0).astype(np.float32)


class ReacherLinks(MjxEnv):
    """The 5-link planar reacher whose params pick the active link count."""

    reward_component_names = ("distance", "ctrl_cost")
    frame_skip = FRAME_SKIP  # physics steps per env step (bench.py's raw-MJX comparison reads it)

    def __init__(self, tasks: tuple[ReacherParams, ...] = ()):
        self.tasks = tuple(tasks)
        self._mj_model = mujoco.MjModel.from_xml_string(MJCF)
        self.model = mjx.put_model(self._mj_model)
        self._data0 = mjx.make_data(self.model)

    def mj_model(self, task: Any = 0) -> mujoco.MjModel:
        """A fresh MuJoCo C model of `task` (an index into `self.tasks`, or a params object with
        a scalar `num_links`, possibly wrapped in `TaskParams`): its locks are set in `eq_active0`,
        so `mujoco.MjData(model)` steps with them exactly like this env."""
        params = self.tasks[task] if isinstance(task, (int, np.integer)) else task
        params = getattr(params, "env", params)
        n = int(np.asarray(params.num_links))
        model = mujoco.MjModel.from_xml_string(MJCF)
        scale = link_mass_scale(n, np)
        model.body_mass[:] *= scale
        model.body_inertia[:] *= scale[:, None]
        model.geom_rgba[scale[model.geom_bodyid] == 0, 3] = 0.0
        model.site_rgba[scale[model.site_bodyid] == 0, 3] = 0.0
        return model

    # --- MjxEnv -------------------------------------------------------------------------------
    def observe(self, data: mjx.Data, params: ReacherParams) -> jax.Array:
        active = _active(params)
        q, qd = data.qpos[:MAX_LINKS] * active, data.qvel[:MAX_LINKS] * active
        target = data.qpos[MAX_LINKS:]
        return jnp.concatenate([jnp.cos(q), jnp.sin(q), qd, target,
                                fingertip(data.qpos, params.num_links) - target]).astype(jnp.float32)

    def initial_data(self, key, params: ReacherParams) -> mjx.Data:
        key_q, key_qd, key_target = jax.random.split(key, 3)
        active = _active(params)
        q = jax.random.uniform(key_q, (MAX_LINKS,), minval=-0.1, maxval=0.1) * active
        qd = jax.random.uniform(key_qd, (MAX_LINKS,), minval=-0.005, maxval=0.005) * active
        target = sample_target(key_target, params.num_links)
        return self._data0.replace(qpos=jnp.concatenate([q, target]),
                                   qvel=jnp.concatenate([qd, jnp.zeros(2)]))

    def task_model(self, params: ReacherParams) -> mjx.Model:
        """The mjx.Model of the task: links num_links..4 massless (see the module docstring)."""
        scale = link_mass_scale(params.num_links)
        return self.model.replace(body_mass=self.model.body_mass * scale,
                                  body_inertia=self.model.body_inertia * scale[:, None])

    def transition(self, key, state: MjxState, action, params: ReacherParams):
        del key  # deterministic dynamics
        action = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0) * _active(params)
        model = self.task_model(params)
        data = jax.lax.fori_loop(0, FRAME_SKIP, lambda _, d: mjx.step(model, d),
                                 state.data.replace(ctrl=action))
        tip, target = fingertip(data.qpos, params.num_links), data.qpos[MAX_LINKS:]
        distance = jnp.sqrt(jnp.sum((tip - target) ** 2))
        ctrl_cost = params.ctrl_cost_weight * jnp.sum(action**2)
        time = state.time + 1
        truncated = time >= params.max_steps_in_episode
        info = {"reward_components": jnp.stack([distance, ctrl_cost]).astype(jnp.float32),
                "success": distance < SUCCESS_DISTANCE}
        return (self.observe(data, params), MjxState(data, time),
                (-distance - ctrl_cost).astype(jnp.float32), jnp.bool_(False), truncated, info)

    def observation_space(self, params):
        return spaces.Box(-jnp.inf, jnp.inf, (3 * MAX_LINKS + 4,), jnp.float32)

    def action_space(self, params):
        return spaces.Box(-1.0, 1.0, (MAX_LINKS,), jnp.float32)

    @property
    def num_actions(self) -> int:
        return MAX_LINKS


# The settings these arms learn with (`envs.recommended`; the CLI and jaxrl.agents.env_config
# start from them): measured in docs/studies.md, "Learning on ReacherLinks-v0" (PPO, 2 seeds,
# 12M steps per arm: each arm alone (--single-task) success 0.92-0.95; one network on all four
# arms 0.91-0.96 at 48M in total, 0.78 at 12M in total).
RECOMMENDED = {"ReacherLinks-v0": {
    "ppo": dict(total_steps=12_000_000, num_envs=64, num_steps=50, update_epochs=8,
                num_minibatches=8, normalize_obs=True, lr=3e-4, gamma=0.95, ent_coef=0.0),
}}


def reacher_links(one_hot: bool = True, ctrl_cost_weight: float = 0.1):
    """The family of 2-, 3-, 4- and 5-link reachers (task t has t + 2 links), 50-step episodes."""
    tasks = tuple(ReacherParams(jnp.int32(n), jnp.float32(ctrl_cost_weight), jnp.int32(EPISODE_STEPS))
                  for n in LINK_COUNTS)
    family = TaskFamily(ReacherLinks(tasks), tasks, [f"links={n}" for n in LINK_COUNTS],
                        one_hot=one_hot, max_steps_in_episode=EPISODE_STEPS)
    return family, family.default_params()
