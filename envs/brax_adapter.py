"""Adapter from brax envs (MJX backend by default) to the env contract.

brax envs take no params and have no time limit of their own (brax adds those in wrappers), so the
adapter carries the time limit in a params pytree and the step counter in its state, reports
`terminated` (brax's `done`, a physical end) apart from `truncated` (the time limit), and is wrapped
in `AutoReset` so it resets itself like a gymnax env. Like the MJX task families it exposes
`qpos(state)`, `qvel(state)` and `mj_model(task)` (brax's own MuJoCo model), so `envs.render`
and `render RUN` draw it with MuJoCo's offscreen renderer. On the CPU its MJX system uses the
sparse mass matrix and the CG solver, so no step calls LAPACK (`lapack_free`)."""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from envs.wrappers import AutoReset


@struct.dataclass
class BraxParams:
    max_steps_in_episode: int = 1000


@struct.dataclass
class BraxState:
    brax_state: Any
    time: jax.Array


class BraxEnv:
    """One brax env behind `reset(key, params)` / `step(key, state, action, params)`, no auto-reset."""

    def __init__(self, brax_env: Any, name: str):
        self.brax_env, self.name = brax_env, name
        self.frame_skip = getattr(brax_env, "_n_frames", 1)  # physics steps per env step (bench.py)

    def reset(self, key, params):
        state = self.brax_env.reset(key)
        return state.obs, BraxState(state, jnp.int32(0))

    def step(self, key, state, action, params):
        del key  # brax dynamics are deterministic
        brax_state = self.brax_env.step(state.brax_state, action)
        time = state.time + 1
        terminated = brax_state.done.astype(bool)
        truncated = jnp.logical_and(time >= params.max_steps_in_episode, ~terminated)
        reward = jnp.asarray(brax_state.reward, jnp.float32)  # some brax envs return a Python float
        return (brax_state.obs, BraxState(brax_state, time), reward, terminated,
                truncated, dict(brax_state.metrics))

    @functools.cached_property
    def _observation_shape(self) -> tuple[int, ...]:
        # brax's `observation_size` runs a reset eagerly: hundreds of one-op compiles (~30 s here)
        return jax.eval_shape(self.brax_env.reset, jax.random.PRNGKey(0)).obs.shape

    def observation_space(self, params):
        return spaces.Box(-jnp.inf, jnp.inf, self._observation_shape, jnp.float32)

    def action_space(self, params):
        return spaces.Box(-1.0, 1.0, (self.brax_env.action_size,), jnp.float32)

    @property
    def num_actions(self) -> int:
        return self.brax_env.action_size

    def qpos(self, state: BraxState) -> jax.Array:
        return state.brax_state.pipeline_state.q  # the MJX pipeline state is an mjx.Data

    def qvel(self, state: BraxState) -> jax.Array:
        return state.brax_state.pipeline_state.qd

    def mj_model(self, task: Any = 0):
        """The MuJoCo model brax built its system from (one env: `task` is ignored)."""
        return self.brax_env.sys.mj_model


def make_brax(name: str, backend: str = "mjx", episode_length: int = 1000, **kwargs: Any):
    """`brax.envs.get_environment(name, backend=backend)` behind the contract, auto-resetting."""
    from brax import envs as brax_envs

    brax_env = brax_envs.get_environment(name, backend=backend, **kwargs)
    if backend == "mjx" and jax.default_backend() == "cpu":
        brax_env.sys = lapack_free(brax_env.sys)
    env = AutoReset(BraxEnv(brax_env, f"brax/{name}"))
    return env, BraxParams(max_steps_in_episode=episode_length)


def lapack_free(sys):
    """brax's MJX system with MuJoCo's sparse mass matrix and CG solver, its other options (the
    timestep, iteration counts brax chose) kept: MJX's dense mass-matrix factorisation and Newton
    solver call LAPACK's potrf and trsm, and batched LAPACK calls under vmap can deadlock
    jax 0.10.2 on the CPU (docs/design.md), so on the CPU every brax/NAME env steps this way.
    The physics stay MuJoCo's: the same model, solved by CG instead of Newton (hopper's
    observations differ by 5e-3 after 10 steps, inverted_pendulum's by 1e-6)."""
    import copy
    import dataclasses

    import mujoco
    from brax.io import mjcf

    model = copy.deepcopy(sys.mj_model)
    model.opt.jacobian = mujoco.mjtJacobian.mjJAC_SPARSE
    model.opt.solver = mujoco.mjtSolver.mjSOL_CG
    kept = {f"opt.{f.name}": getattr(sys.opt, f.name) for f in dataclasses.fields(sys.opt)
            if f.name not in ("solver", "jacobian")}
    return mjcf.load_model(model).tree_replace(kept)
