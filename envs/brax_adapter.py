"""Adapter from brax envs (MJX backend by default) to the env contract.

brax envs take no params and have no time limit of their own (brax adds those in wrappers), so the
adapter carries the time limit in a params pytree and the step counter in its state, reports
`terminated` (brax's `done`, a physical end) apart from `truncated` (the time limit), and is wrapped
in `AutoReset` so it resets itself like a gymnax env. Like the MJX task families it exposes
`qpos(state)`, `qvel(state)` and `mj_model(task)` (brax's own MuJoCo model), so `envs.render`
and `render RUN` draw it with MuJoCo's offscreen renderer."""
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

    env = AutoReset(BraxEnv(brax_envs.get_environment(name, backend=backend, **kwargs), f"brax/{name}"))
    return env, BraxParams(max_steps_in_episode=episode_length)
