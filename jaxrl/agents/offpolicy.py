"""The training loop, update schedule and replay checks shared by the replay-buffer agents (DQN,
natural DQN, NAF, DDPG, TD3, SAC): one update = `train_frequency` iterations of all `num_envs` envs, then one
gradient step (none before `learning_starts` env steps); one metrics row per update."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

import envs
from jaxrl import buffers
from jaxrl.agents.base import Trainer, batched_env
from jaxrl.config import ConfigError
from jaxrl.metrics import episode_info, episode_metrics, reduce_rows


AUTO_ROWS = 1000  # log_every 0 (auto): about this many metrics rows per run


def env_steps_per_gradient_step(config) -> int:
    return config.num_envs * config.train_frequency


def log_every(config) -> int:
    """Gradient steps per metrics row: `config.log_every`, or with 0 (auto) as many as give
    about AUTO_ROWS rows per run (1 for runs of fewer gradient steps)."""
    steps = config.total_steps // env_steps_per_gradient_step(config)
    return config.log_every or max(1, steps // AUTO_ROWS)


def steps_per_update(config) -> int:
    """Environment steps per metrics row (`log_every` gradient steps)."""
    return env_steps_per_gradient_step(config) * log_every(config)


def num_updates(config) -> int:
    """Metrics rows per run (the runner's updates); the run takes num_updates x log_every
    gradient steps, so up to log_every - 1 of total_steps' gradient steps are left out."""
    return config.total_steps // steps_per_update(config)


def num_gradient_steps(config) -> int:
    return num_updates(config) * log_every(config)


def num_warmup_steps(config) -> int:
    """Gradient steps (from 0) that only collect data: step g learns once
    (g + 1) x num_envs x train_frequency >= learning_starts."""
    return min(num_gradient_steps(config),
               max(0, -(-config.learning_starts // env_steps_per_gradient_step(config)) - 1))


def validate_replay(config) -> None:
    """Raise ConfigError, naming the option, for buffer and schedule settings that cannot run."""
    if config.batch_size > config.buffer_size:
        raise ConfigError(f"--batch-size: {config.batch_size} is more than --buffer-size "
                          f"{config.buffer_size}")
    if config.num_envs > config.buffer_size:
        raise ConfigError(f"--buffer-size: {config.buffer_size} cannot hold one iteration's "
                          f"--num-envs {config.num_envs} transitions")
    per_row = steps_per_update(config)
    if config.total_steps < per_row:
        raise ConfigError(f"--total-steps: {config.total_steps} is less than one metrics row "
                          f"(num_envs x train_frequency x log_every = {per_row}); lower --log-every")
    if config.learning_starts >= config.total_steps or num_warmup_steps(config) >= num_gradient_steps(config):
        raise ConfigError(f"--learning-starts: {config.learning_starts} leaves no gradient step; it "
                          f"must be less than --total-steps {config.total_steps} (in whole rows "
                          f"of num_envs x train_frequency x log_every = {per_row} steps: "
                          f"{num_updates(config) * per_row})")


@struct.dataclass
class OffPolicyState:
    """A replay-buffer agent's run: the agent's own state (`agent`, e.g. its networks, targets
    and optimizer states) plus what the shared loop owns."""

    agent: Any
    buffer: Any
    env_state: Any
    obs: jax.Array
    key: jax.Array


@dataclasses.dataclass(frozen=True)
class OffPolicyAgent:
    """The hooks through which a replay-buffer agent plugs into the shared loop, each over the
    agent's own state pytree (any number of networks, targets and optimizers):

    - `init(config, key) -> agent_state`
    - `act(config, agent_state, obs [E, ...], iteration, keys) -> (action to store [E, ...],
      action to step the envs with, {name: scalar} averaged into the metrics row)`; `keys` is a
      pair of PRNG keys
    - `learn(config, agent_state, batch, step) -> (agent_state, {name: scalar})`: one
      gradient step on a batch sampled uniformly from the buffer
    - `schedule(config, env_steps) -> {name: scalar}` (epsilon, noise) reported per update
    - `params(agent_state)`, `with_params(config, agent_state, params)`, `policy(params)`,
      `value(params)`: as in `Trainer`
    - `action_example`: one env's action as the buffer stores it."""

    init: Callable
    act: Callable
    learn: Callable
    schedule: Callable
    params: Callable
    with_params: Callable
    policy: Callable
    value: Callable | None
    action_example: jax.Array


@struct.dataclass
class NetworkState:
    """The agent state of DQN, natural DQN and NAF: one network, its target (None without one)
    and its optimizer's state. `fresh` builds it from params, so init and fine-tuning
    (`with_params`) derive the target and optimizer state the same way."""

    params: Any
    target_params: Any
    opt_state: Any

    @staticmethod
    def fresh(params, optimizer, use_target: bool) -> "NetworkState":
        return NetworkState(params=params, target_params=params if use_target else None,
                            opt_state=optimizer.init(params))


def make_offpolicy_trainer(config, env, env_params, agent: OffPolicyAgent) -> Trainer:
    """The replay-buffer agents' `Trainer`: the loop is here, what differs is in `agent`'s hooks.

    `env` is the env the agent acts in (evaluation uses it as given; training adds EpisodeStats).
    One gradient step: a scan of `train_frequency` iterations, each acting with `agent.act` in
    all envs and adding the transitions (next_obs the final observation where an episode ended,
    terminated and truncated apart) to the buffer; then, from the first step that reaches
    learning_starts, one `agent.learn` step (its metrics NaN before). Its metrics: the episode
    statistics (per task on a task table), learn's metrics, act's averages, schedule. One
    update (metrics row) is `log_every(config)` gradient steps, their metrics reduced to one
    row inside the program (`jaxrl.metrics.reduce_rows`)."""
    eval_env = env
    env = envs.EpisodeStats(env)
    num_envs, train_frequency = config.num_envs, config.train_frequency
    warmup, rows_per_update = num_warmup_steps(config), log_every(config)
    batch_size, buffer_size = config.batch_size, config.buffer_size
    reset_envs, step_envs = batched_env(env, env_params, num_envs)
    task_index = envs.env_task_index(env_params, num_envs)  # None unless a task table

    def init(config, key: jax.Array) -> OffPolicyState:
        key, init_key, reset_key = jax.random.split(key, 3)
        obs, env_state = reset_envs(jax.random.split(reset_key, num_envs))
        buffer = buffers.init({"obs": obs[0], "action": agent.action_example,
                               "reward": jnp.float32(0.0), "next_obs": obs[0],
                               "terminated": jnp.bool_(False), "truncated": jnp.bool_(False)},
                              buffer_size)
        return OffPolicyState(agent=agent.init(config, init_key), buffer=buffer,
                              env_state=env_state, obs=obs, key=key)

    def gradient_step_update(config, state: OffPolicyState, index) -> tuple[OffPolicyState, dict]:

        def env_step(carry, iteration):
            buffer, env_state, obs, key = carry
            key, key_a, key_b, step_key = jax.random.split(key, 4)
            action, env_action, extras = agent.act(config, state.agent, obs, iteration,
                                                   (key_a, key_b))
            next_obs, env_state, reward, terminated, truncated, info = step_envs(
                jax.random.split(step_key, num_envs), env_state, env_action)
            buffer = buffers.add(buffer, {"obs": obs, "action": action, "reward": reward,
                                          "next_obs": info["final_observation"],
                                          "terminated": terminated, "truncated": truncated})
            episodes = episode_info(info)
            return (buffer, env_state, next_obs, key), (episodes, extras)

        def gradient_step(args):
            agent_state, buffer, key = args
            return agent.learn(config, agent_state, buffers.sample(buffer, key, batch_size), index)

        def no_gradient_step(args):  # before learning_starts: NaN metrics (no update), not 0
            agent_state, buffer, key = args
            names = jax.eval_shape(gradient_step, args)[1]
            return agent_state, {name: jnp.float32(jnp.nan) for name in names}

        key, sample_key = jax.random.split(state.key)
        iterations = index * train_frequency + jnp.arange(train_frequency)
        (buffer, env_state, obs, key), (episodes, extras) = jax.lax.scan(
            env_step, (state.buffer, state.env_state, state.obs, key), iterations)
        # A real branch: `index` is shared by every vmapped run (Trainer.update).
        agent_state, losses = jax.lax.cond(index >= warmup, gradient_step, no_gradient_step,
                                           (state.agent, buffer, sample_key))
        metrics = {**episode_metrics(episodes, task_index, envs.num_tasks(env_params)), **losses,
                   **{name: value.mean() for name, value in extras.items()},
                   **agent.schedule(config, iterations[-1] * num_envs)}
        return OffPolicyState(agent=agent_state, buffer=buffer, env_state=env_state, obs=obs,
                              key=key), metrics

    def update(config, state: OffPolicyState, index: jax.Array) -> tuple[OffPolicyState, dict]:
        if rows_per_update == 1:
            return gradient_step_update(config, state, index)
        state, rows = jax.lax.scan(lambda s, g: gradient_step_update(config, s, g), state,
                                   index * rows_per_update + jnp.arange(rows_per_update))
        return state, reduce_rows(rows)

    def with_params(config, state: OffPolicyState, params) -> OffPolicyState:
        return state.replace(agent=agent.with_params(config, state.agent, params))

    return Trainer(init, update, num_updates(config), params=lambda state: agent.params(state.agent),
                   with_params=with_params, policy=agent.policy, value=agent.value,
                   eval_env=eval_env, eval_env_params=env_params,
                   eval_max_steps=envs.max_steps(env_params))
