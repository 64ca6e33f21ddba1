"""Planar biped task families on MJX: WalkerMorph-v0 (bodies differ) and WalkerSkills-v0 (rewards
differ).

The biped is in the spirit of gym's Walker2d: a torso capsule on rootx/rootz slides and a rooty
hinge, two legs of thigh/leg/foot with six torque-controlled hinges (gear 100, ctrl in [-1, 1]),
timestep 0.002 s and frame skip 4 (an env step is 0.008 s). Only legs and feet collide with the
floor (a fallen walker terminates anyway), which keeps MJX's static contact set small.

No LAPACK: the model uses a sparse mass matrix and the CG solver, so MJX runs no Cholesky (its dense
mass-matrix factorisation and its Newton solver call LAPACK's potrf, and batched LAPACK calls under
vmap deadlock jax 0.10.2 on the CPU: a vmapped Newton step at batch 64 hung in `lapack_spotrf_ffi`).
Solver settings for learning, as brax chooses them for its walker2d: CG stops at MuJoCo's
tolerance or after 4 iterations (8 line-search steps; MuJoCo Playground's models use single-digit
counts too), timestep 0.002 s, frame skip 4. In hard contact phases the solve stops unconverged
(C needs up to ~60 iterations there), which RL does not mind and which makes a step 11x cheaper
than at 100 iterations and 20 line-search steps (3,328 vs 287 env steps/s at 64 envs here;
brax/walker2d: 1,312). The C models (`mj_model`) carry the same options; the tests check MJX
against them step by step (tests/test_walker_families.py).

Morphology as params. Each WalkerMorph variant is compiled from its own XML by MuJoCo (so derived
fields such as inertias, subtree masses, body positions and qpos0 stay consistent) and put on the
device with `mjx.put_model`. The leaves of the mjx.Model that differ between variants become the
per-task params (`WalkerParams.model`, dotted path -> array); the env keeps the base mjx.Model and
swaps them in with `tree_replace` inside reset/step, so one compiled program serves every task and
new numbers do not recompile. Static (numpy) fields of mjx.Model must agree between variants; the
only one allowed to differ is `_impl.geom_rbound_hfield`, which MJX reads only for height fields
(this model has none).

Rewards. Every step reports `info["reward_components"]` (float32, names in
`env.reward_component_names`):
    x_velocity         forward velocity of the torso (m/s, finite difference over the env step)
    velocity_tracking  |v*| - |v - v*| for the task's target velocity v* (0 at rest, peak |v*| at v*)
    ctrl_cost          sum of squared actions
    healthy            1 while height and torso angle are in the healthy range, else 0
    height             torso height above its standing height (m)
and the reward is `dot(params.reward_weights, components)`. Termination is Walker2d's, scaled to the
body: torso height in (0.64, 1.6) x standing height and |torso angle| < 1 rad; the time limit
(`max_steps_in_episode`, a params leaf, 1000 by default) truncates.

Auto-reset is `envs.mjx_base.MjxEnv`'s light reset inside `step` (an episode ending at
`step(key, ...)` restarts as `reset(key, ...)` would start it); `transition` steps without it.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct
from gymnax.environments import spaces
from mujoco import mjx

from envs.family import TaskFamily
from envs.mjx_base import MjxEnv, MjxState

REWARD_COMPONENTS = ("x_velocity", "velocity_tracking", "ctrl_cost", "healthy", "height")
FRAME_SKIP = 4
RESET_NOISE = 5e-3
HEALTHY_HEIGHT = (0.64, 1.6)  # x standing height (Walker2d's 0.8 and 2.0 at its 1.25 m)
HEALTHY_ANGLE = 1.0
# Static mjx.Model fields that may differ between variants (read only for height-field collisions).
_STATIC_ALLOWED = ("geom_rbound_hfield",)


def walker_xml(thigh: float = 0.45, leg: float = 0.5, torso: float = 0.4, foot: float = 0.2,
               torso_density: float = 1000.0, leg_density: float = 1000.0) -> str:
    """MJCF of the planar biped. Lengths in m, densities in kg/m^3 (masses follow from the capsules).

    The torso body's origin is its centre; the rootz slide has `ref` = standing height, so qpos[1]
    is the torso's height and qpos0[1] the height at which the feet just touch the floor."""
    foot_r = 0.06
    height = torso / 2 + thigh + leg + foot_r

    def leg_xml(side: str, rgba: str) -> str:
        return f"""
      <body name="thigh_{side}" pos="0 0 {-torso / 2}">
        <joint name="hip_{side}" range="-150 0"/>
        <geom name="thigh_{side}" fromto="0 0 0 0 0 {-thigh}" size="0.05" density="{leg_density}" rgba="{rgba}"/>
        <body name="leg_{side}" pos="0 0 {-thigh}">
          <joint name="knee_{side}" range="-150 0"/>
          <geom name="leg_{side}" fromto="0 0 0 0 0 {-leg}" size="0.04" density="{leg_density}" contype="1" rgba="{rgba}"/>
          <body name="foot_{side}" pos="0 0 {-leg}">
            <joint name="ankle_{side}" range="-45 45"/>
            <geom name="foot_{side}" fromto="{-foot / 4} 0 0 {3 * foot / 4} 0 0" size="{foot_r}" density="{leg_density}" contype="1" rgba="{rgba}"/>
          </body>
        </body>
      </body>"""

    return f"""
<mujoco model="planar_walker">
  <compiler angle="degree" inertiafromgeom="true"/>
  <option timestep="0.002" jacobian="sparse" solver="CG" iterations="4" ls_iterations="8"/>
  <default>
    <joint type="hinge" axis="0 -1 0" limited="true" armature="0.01" damping="0.1"/>
    <geom type="capsule" contype="0" conaffinity="0" friction="0.9 0.1 0.1"/>
    <motor gear="100" ctrlrange="-1 1" ctrllimited="true"/>
  </default>
  <worldbody>
    <light pos="0 0 4" dir="0 0 -1" directional="true"/>
    <geom name="floor" type="plane" size="0 0 0.1" conaffinity="1" rgba="0.8 0.9 0.8 1"/>
    <body name="torso" pos="0 0 {height}">
      <camera name="track" mode="trackcom" pos="0 -3.5 0" xyaxes="1 0 0 0 0 1"/>
      <joint name="rootx" type="slide" axis="1 0 0" limited="false" armature="0" damping="0"/>
      <joint name="rootz" type="slide" axis="0 0 1" limited="false" armature="0" damping="0" ref="{height}"/>
      <joint name="rooty" axis="0 -1 0" limited="false" armature="0" damping="0"/>
      <geom name="torso" fromto="0 0 {-torso / 2} 0 0 {torso / 2}" size="0.05" density="{torso_density}"/>
      {leg_xml("right", "0.7 0.3 0.6 1")}
      {leg_xml("left", "0.3 0.5 0.7 1")}
    </body>
  </worldbody>
  <actuator>
    <motor joint="hip_right"/><motor joint="knee_right"/><motor joint="ankle_right"/>
    <motor joint="hip_left"/><motor joint="knee_left"/><motor joint="ankle_left"/>
  </actuator>
</mujoco>"""


@struct.dataclass
class WalkerParams:
    """One task: `model` the mjx.Model leaves that differ from the base (dotted path -> array; empty
    when every task shares the body), the reward weights over REWARD_COMPONENTS, the target
    velocity of `velocity_tracking`, and the time limit."""

    model: dict
    reward_weights: jax.Array
    target_velocity: jax.Array
    max_steps_in_episode: jax.Array


WalkerState = MjxState


def _leaves(model: mjx.Model) -> dict[str, np.ndarray]:
    """{dotted path: value} of an mjx.Model's array leaves."""
    flat, _ = jax.tree_util.tree_flatten_with_path(model)
    return {".".join(k.name for k in path): np.asarray(x) for path, x in flat}


def _check_structure(base: mjx.Model, model: mjx.Model) -> None:
    """Raise ValueError unless `model` can run in `base`'s compiled program (same pytree structure
    and static fields, bar those read only for height fields)."""
    model = model.replace(_impl=model._impl.replace(
        **{f: getattr(base._impl, f) for f in _STATIC_ALLOWED}))
    if jax.tree.structure(model) != jax.tree.structure(base):
        raise ValueError("walker variants differ in mjx.Model structure or static fields")


def differing_leaves(models: Sequence[mjx.Model]) -> list[dict[str, np.ndarray]]:
    """Per model, the leaves whose values differ anywhere among `models` (same paths for all)."""
    for model in models[1:]:
        _check_structure(models[0], model)
    leaves = [_leaves(m) for m in models]
    paths = [p for p in leaves[0] if any(
        leaf[p].shape != leaves[0][p].shape or not np.array_equal(leaf[p], leaves[0][p])
        for leaf in leaves[1:])]
    return [{p: leaf[p] for p in paths} for leaf in leaves]


class Walker(MjxEnv):
    """The planar biped behind the env contract (auto-resetting; `transition` does not reset).

    `mj_models` holds each task's compiled C model (one shared model when only rewards differ);
    the first is the base put on the device."""

    reward_component_names = REWARD_COMPONENTS

    def __init__(self, mj_models: Sequence[mujoco.MjModel]):
        self.mj_models = list(mj_models)
        models = [mjx.put_model(m) for m in self.mj_models]
        self.model, self.data0 = models[0], mjx.make_data(models[0])
        self.model_params = differing_leaves(models)  # per model: {path: leaf} for WalkerParams.model
        self.dt = self.mj_models[0].opt.timestep * FRAME_SKIP
        self.frame_skip = FRAME_SKIP  # physics steps per env step (bench.py reads it)

    def params_for(self, mj_model: mujoco.MjModel) -> dict[str, jax.Array]:
        """WalkerParams.model for another compiled variant, so it runs in the already compiled
        program. Raises ValueError if it differs from the base outside this env's swapped leaves."""
        model = mjx.put_model(mj_model)
        _check_structure(self.model, model)
        leaves, base = _leaves(model), _leaves(self.model)
        paths = set(self.model_params[0])
        extra = [p for p in base if p not in paths and (leaves[p].shape != base[p].shape
                                                         or not np.array_equal(leaves[p], base[p]))]
        if extra:
            raise ValueError(f"params_for: the model differs in leaves this env does not swap: {extra}")
        return {p: jnp.asarray(leaves[p]) for p in paths}

    def mj_model(self, task_index: int = 0) -> mujoco.MjModel:
        """Task `task_index`'s compiled C model (for rendering and checks against MuJoCo C)."""
        return self.mj_models[task_index if len(self.mj_models) > 1 else 0]

    def task_model(self, params: WalkerParams) -> mjx.Model:
        """The base mjx.Model with this task's differing leaves swapped in."""
        return self.model.tree_replace(params.model) if params.model else self.model

    def observe(self, data: mjx.Data, params: WalkerParams) -> jax.Array:
        return jnp.concatenate([data.qpos[1:], jnp.clip(data.qvel, -10.0, 10.0)]).astype(jnp.float32)

    def initial_data(self, key, params: WalkerParams) -> mjx.Data:
        """qpos0 and zero velocity, each plus U(-RESET_NOISE, RESET_NOISE) noise."""
        model = self.task_model(params)
        k_pos, k_vel = jax.random.split(key)
        qpos = model.qpos0 + jax.random.uniform(k_pos, (model.nq,), minval=-RESET_NOISE, maxval=RESET_NOISE)
        qvel = jax.random.uniform(k_vel, (model.nv,), minval=-RESET_NOISE, maxval=RESET_NOISE)
        return self.data0.replace(qpos=qpos, qvel=qvel)

    def physics_step(self, model: mjx.Model, data: mjx.Data, action: jax.Array) -> mjx.Data:
        """FRAME_SKIP MJX steps with ctrl = the action clipped to [-1, 1]."""
        data = data.replace(ctrl=jnp.clip(action, -1.0, 1.0))
        return jax.lax.fori_loop(0, FRAME_SKIP, lambda _, d: mjx.step(model, d), data)

    def transition(self, key, state: MjxState, action, params: WalkerParams):
        del key  # the dynamics are deterministic
        model = self.task_model(params)
        data = self.physics_step(model, state.data, action)
        standing = model.qpos0[1]
        height, angle = data.qpos[1], data.qpos[2]
        healthy = ((height > HEALTHY_HEIGHT[0] * standing) & (height < HEALTHY_HEIGHT[1] * standing)
                   & (jnp.abs(angle) < HEALTHY_ANGLE))
        velocity = (data.qpos[0] - state.data.qpos[0]) / self.dt
        target = params.target_velocity
        components = jnp.stack([
            velocity,
            jnp.abs(target) - jnp.abs(velocity - target),
            jnp.sum(jnp.square(jnp.clip(action, -1.0, 1.0))),
            healthy.astype(jnp.float32),
            height - standing,
        ]).astype(jnp.float32)
        reward = jnp.dot(params.reward_weights, components)
        time = state.time + 1
        terminated = ~healthy
        truncated = (time >= params.max_steps_in_episode) & healthy
        return (self.observe(data, params), MjxState(data, time), reward, terminated, truncated,
                {"reward_components": components})

    def observation_space(self, params):
        return spaces.Box(-jnp.inf, jnp.inf, (self.model.nq - 1 + self.model.nv,), jnp.float32)

    def action_space(self, params):
        return spaces.Box(-1.0, 1.0, (self.model.nu,), jnp.float32)

    @property
    def num_actions(self) -> int:
        return self.model.nu


def _params(model: dict, weights: Sequence[float], target: float = 0.0) -> WalkerParams:
    return WalkerParams(model, np.asarray(weights, np.float32), np.float32(target), np.int32(1000))


# Walker2d's reward: forward velocity + 1 per healthy step - 1e-3 * ctrl cost.
RUN_WEIGHTS = (1.0, 0.0, -1e-3, 1.0, 0.0)

# name: (thigh, leg, torso density, leg density)
MORPH_VARIANTS = {
    "base": (0.45, 0.50, 1000.0, 1000.0),
    "long_legs": (0.55, 0.60, 1000.0, 1000.0),
    "short_legs": (0.35, 0.40, 1000.0, 1000.0),
    "heavy_torso": (0.45, 0.50, 2500.0, 1000.0),
    "long_light_legs": (0.55, 0.60, 1000.0, 600.0),
}


# Brax-like PPO settings for the walkers (`envs.recommended`): normalised observations, 64-step
# rollouts. WalkerSkills-v0 `stand` learns with them in 2M steps on the CPU (docs/studies.md).
_WALKER_PPO = dict(num_steps=64, update_epochs=4, num_minibatches=8, lr=3e-4, ent_coef=0.0,
                   normalize_obs=True, hidden_sizes=(128, 128))
RECOMMENDED = {"WalkerMorph-v0": {"ppo": _WALKER_PPO}, "WalkerSkills-v0": {"ppo": _WALKER_PPO}}


def walker_morph(one_hot: bool = True):
    """Five bodies (limb lengths, masses) running forward with Walker2d's reward."""
    mj_models = [mujoco.MjModel.from_xml_string(walker_xml(thigh, leg, torso_density=td, leg_density=ld))
                 for thigh, leg, td, ld in MORPH_VARIANTS.values()]
    env = Walker(mj_models)
    tasks = [_params({p: jnp.asarray(x) for p, x in m.items()}, RUN_WEIGHTS) for m in env.model_params]
    family = TaskFamily(env, tasks, list(MORPH_VARIANTS), one_hot=one_hot,
                        max_steps_in_episode=1000)
    return family, family.default_params()


# name: (weights over REWARD_COMPONENTS, target velocity)
SKILLS = {
    "walk": ((0.0, 1.0, -1e-3, 1.0, 0.0), 1.0),      # track 1 m/s forward
    "run": (RUN_WEIGHTS, 0.0),                        # as fast as possible (Walker2d's reward)
    "jump": ((0.0, 0.5, -1e-3, 1.0, 5.0), 0.0),      # stay in place, torso as high as possible
    "stand": ((0.0, 1.0, -1e-3, 1.0, 0.0), 0.0),     # stay upright and still
    "walk_backward": ((0.0, 1.0, -1e-3, 1.0, 0.0), -1.0),  # track 1 m/s backward
}


def walker_skills(one_hot: bool = True):
    """One body, five skills that differ only in reward weights and target velocity."""
    env = Walker([mujoco.MjModel.from_xml_string(walker_xml())])
    tasks = [_params({}, weights, target) for weights, target in SKILLS.values()]
    family = TaskFamily(env, tasks, list(SKILLS), one_hot=one_hot, max_steps_in_episode=1000)
    return family, family.default_params()
