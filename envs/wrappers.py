"""Wrappers over the env contract: auto-reset, episode statistics, observation normalisation and
continuous action clipping. Each wrapper keeps its own state as a pytree around the inner state,
so wrapped envs stay pure, jit-able and vmappable."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


class Wrapper:
    """Forwards everything it does not override to the wrapped env."""

    def __init__(self, env: Any):
        self.env = env

    def __getattr__(self, name: str) -> Any:
        if name == "env":  # not set yet (copy, unpickling): no endless recursion
            raise AttributeError(name)
        return getattr(self.env, name)

    def reset(self, key, params):
        return self.env.reset(key, params)

    def step(self, key, state, action, params):
        return self.env.step(key, state, action, params)


def _select(pred, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


class AutoReset(Wrapper):
    """Resets an env that does not reset itself when an episode ends.

    The inner env's `step` must return the post-step observation and set `terminated`/`truncated`.
    The pre-reset observation is kept in `info["final_observation"]`."""

    def step(self, key, state, action, params):
        key_step, key_reset = jax.random.split(key)
        obs, state, reward, terminated, truncated, info = self.env.step(key_step, state, action, params)
        reset_obs, reset_state = self.env.reset(key_reset, params)
        done = jnp.logical_or(terminated, truncated)
        info = {**info, "final_observation": obs}
        return (_select(done, reset_obs, obs), _select(done, reset_state, state), reward,
                terminated, truncated, info)


@struct.dataclass
class EpisodeStatsState:
    env_state: Any
    episode_return: jax.Array
    episode_length: jax.Array


class EpisodeStats(Wrapper):
    """Tracks the running return and length of each episode.

    `info["episode_return"]`/`info["episode_length"]` hold the totals of the episode that ended at
    this step, and are meaningful only where the mask `info["episode_done"]` is true: a step where no
    episode finished carries no return (it is not a return of 0). An env whose info has `success`
    (a bool: the task is achieved in the state this step reached) also gets
    `info["episode_success"]`, the success of the episode's last step."""

    def reset(self, key, params):
        obs, state = self.env.reset(key, params)
        return obs, EpisodeStatsState(state, jnp.float32(0.0), jnp.int32(0))

    def step(self, key, state, action, params):
        obs, env_state, reward, terminated, truncated, info = self.env.step(
            key, state.env_state, action, params)
        done = jnp.logical_or(terminated, truncated)
        episode_return = state.episode_return + jnp.asarray(reward, jnp.float32)
        episode_length = state.episode_length + 1
        info = {**info, "episode_return": episode_return, "episode_length": episode_length,
                "episode_done": done}
        if "success" in info:
            info["episode_success"] = jnp.asarray(info["success"], bool)
        state = EpisodeStatsState(env_state, jnp.where(done, 0.0, episode_return),
                                  jnp.where(done, 0, episode_length))
        return obs, state, reward, terminated, truncated, info


@struct.dataclass
class NormalizeObservationState:
    env_state: Any
    mean: jax.Array
    var: jax.Array
    count: jax.Array


# The vmap axis name of a batch of parallel envs (jaxrl's `batched_env`), over which
# `NormalizeObservation(env, axis_name=ENV_AXIS)` pools its statistics.
ENV_AXIS = "envs"


class NormalizeObservation(Wrapper):
    """Normalises observations by a running mean and variance (Chan et al.'s update), then clips.

    With `axis_name` (the vmap axis of a batch of envs, e.g. ENV_AXIS) the statistics are pooled:
    every step updates them with the whole batch's observations (their mean and variance over the
    axis), so every env holds the same statistics, as brax's and SB3's VecNormalize keep one for
    all envs. That matters on a task family: per-env statistics would see one task each, turning
    the one-hot task id (constant within an env) into 0 and the policy's saved statistics into
    those of one task. Without `axis_name` each env keeps its own (gymnasium's wrapper).
    `info["final_observation"]` is normalised with the same statistics. The last `pass_through`
    entries (a task family's one-hot task id: `envs.task_id_width`) keep mean 0 and variance 1,
    so they reach the network as they are: an id never seen in training (a held-out task) would
    otherwise be normalised by a variance of ~0 to the clip value."""

    def __init__(self, env: Any, clip: float = 10.0, epsilon: float = 1e-8,
                 axis_name: str | None = None, pass_through: int = 0):
        super().__init__(env)
        self.clip, self.epsilon, self.axis_name = clip, epsilon, axis_name
        self.pass_through = pass_through

    def _update(self, state, obs):
        # Chan et al.'s parallel update with a batch of n (1 per env, or the pooled batch); the
        # prior (mean 0, var 1, count 1e-4) follows gymnasium's RunningMeanStd so the first
        # observations are not divided by ~0.
        if self.axis_name is None:
            batch_mean, batch_var, n = obs, jnp.zeros_like(obs), 1.0
        else:
            batch_mean = jax.lax.pmean(obs, self.axis_name)
            batch_var = jax.lax.pmean((obs - batch_mean) ** 2, self.axis_name)
            n = jax.lax.psum(1.0, self.axis_name)
        count = state.count + n
        delta = batch_mean - state.mean
        mean = state.mean + delta * n / count
        var = (state.var * state.count + batch_var * n + delta**2 * state.count * n / count) / count
        if self.pass_through:
            kept = jnp.arange(obs.shape[-1]) >= obs.shape[-1] - self.pass_through
            mean, var = jnp.where(kept, 0.0, mean), jnp.where(kept, 1.0, var)
        return state.replace(mean=mean, var=var, count=count)

    def _normalize(self, state, obs):
        return jnp.clip((obs - state.mean) / jnp.sqrt(state.var + self.epsilon), -self.clip, self.clip)

    def reset(self, key, params):
        obs, env_state = self.env.reset(key, params)
        obs = obs.astype(jnp.float32)
        state = NormalizeObservationState(env_state, jnp.zeros_like(obs), jnp.ones_like(obs),
                                          jnp.float32(1e-4))
        state = self._update(state, obs)
        return self._normalize(state, obs), state

    def step(self, key, state, action, params):
        obs, env_state, reward, terminated, truncated, info = self.env.step(
            key, state.env_state, action, params)
        state = self._update(state.replace(env_state=env_state), obs.astype(jnp.float32))
        info = {**info, "final_observation": self._normalize(state, info["final_observation"])}
        return self._normalize(state, obs), state, reward, terminated, truncated, info


class ClipAction(Wrapper):
    """Clips continuous actions into the action space's [low, high] box."""

    def step(self, key, state, action, params):
        space = self.env.action_space(params)
        return self.env.step(key, state, jnp.clip(action, space.low, space.high), params)


class RescaleAction(Wrapper):
    """Lets the agent act in [-1, 1]^d: actions are clipped there and mapped linearly onto the
    env's [low, high] box, whose `action_space` it then reports as [-1, 1]."""

    def action_space(self, params):
        from gymnax.environments import spaces

        space = self.env.action_space(params)
        return spaces.Box(-1.0, 1.0, space.shape, jnp.float32)

    def step(self, key, state, action, params):
        space = self.env.action_space(params)
        action = jnp.clip(action, -1.0, 1.0)
        return self.env.step(key, state, space.low + (action + 1.0) * 0.5 * (space.high - space.low),
                             params)
