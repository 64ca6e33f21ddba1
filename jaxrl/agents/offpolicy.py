"""The training loop, update schedule and replay checks shared by the replay-buffer agents (DQN,
natural DQN, NAF): one update = `train_frequency` iterations of all `num_envs` envs, then one
gradient step (none before `learning_starts` env steps); one metrics row per update."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

import envs
from jaxrl import buffers
from jaxrl.agents.base import Trainer, batched_env
from jaxrl.config import ConfigError
from jaxrl.metrics import episode_metrics


def steps_per_update(config) -> int:
    """Environment steps per gradient step, which is also per metrics row."""
    return config.num_envs * config.train_frequency


def num_updates(config) -> int:
    return config.total_steps // steps_per_update(config)


def num_warmup_updates(config) -> int:
    """Updates (metrics rows) before `learning_starts`: they collect data but take no gradient step.
    Update u (from 0) takes its gradient step once (u + 1) x steps_per_update >= learning_starts."""
    return min(num_updates(config), max(0, -(-config.learning_starts // steps_per_update(config)) - 1))


def validate_replay(config) -> None:
    """Raise ConfigError, naming the option, for buffer and schedule settings that cannot run."""
    if config.batch_size > config.buffer_size:
        raise ConfigError(f"--batch-size: {config.batch_size} is more than --buffer-size "
                          f"{config.buffer_size}")
    if config.num_envs > config.buffer_size:
        raise ConfigError(f"--buffer-size: {config.buffer_size} cannot hold one iteration's "
                          f"--num-envs {config.num_envs} transitions")
    per_update = steps_per_update(config)
    if config.total_steps < per_update:
        raise ConfigError(f"--total-steps: {config.total_steps} is less than one update "
                          f"(num_envs x train_frequency = {per_update})")
    if config.learning_starts >= config.total_steps or num_warmup_updates(config) >= num_updates(config):
        raise ConfigError(f"--learning-starts: {config.learning_starts} leaves no gradient step; it "
                          f"must be less than --total-steps {config.total_steps} (in whole updates "
                          f"of num_envs x train_frequency = {per_update} steps: "
                          f"{num_updates(config) * per_update})")


def make_offpolicy_trainer(config, env, env_params, *, network, action_example: jax.Array,
                           explore: Callable, learn: Callable, optimizer_for: Callable,
                           schedule: Callable, loss_names: tuple[str, ...], greedy_action: Callable,
                           use_target: bool = True) -> Trainer:
    """The replay-buffer agents' `Trainer`: the loop is here, what differs is in the hooks.

    `env` is the env the agent acts in (evaluation uses it as given; training adds EpisodeStats).
    A run's state: params, target_params (None unless `use_target`), opt_state, buffer, env_state,
    obs, key, update_index. One update: a scan of `train_frequency` iterations, each
      explore(config, params, obs [E, ...], iteration, key_a, key_b) -> (action to store in the
          buffer [E, ...] (shaped like `action_example` per env), action to step the envs with,
          {name: per-iteration scalar} averaged into the metrics row),
    the transitions (next_obs the final observation where an episode ended, terminated and
    truncated apart) added to the buffer; then, from the first update that reaches
    learning_starts, one gradient step on a uniformly sampled batch,
      learn(config, optimizer, params, target_params, opt_state, batch, update_index)
          -> (params, target_params, opt_state, {name: scalar} for each of `loss_names`),
    NaN for `loss_names` before it. `optimizer_for(config)` is the optax transformation (built
    inside the program from the traced config); `schedule(config, env_steps)` -> {name: scalar}
    (epsilon, noise) is reported at each update's last iteration. The metrics row: the episode
    statistics (per task on a task table), losses, explore's averages, schedule.
    `greedy_action(params, obs)` is the evaluation policy."""
    eval_env = env
    env = envs.EpisodeStats(env)
    obs_shape = env.observation_space(env_params).shape
    num_envs, train_frequency = config.num_envs, config.train_frequency
    warmup = num_warmup_updates(config)
    batch_size, buffer_size = config.batch_size, config.buffer_size
    reset_envs, step_envs = batched_env(env, env_params, num_envs)
    task_index = envs.env_task_index(env_params, num_envs)  # None unless a task table

    def init(config, key: jax.Array) -> dict:
        key, init_key, reset_key = jax.random.split(key, 3)
        obs, env_state = reset_envs(jax.random.split(reset_key, num_envs))
        params = network.init(init_key, jnp.zeros(obs_shape))
        buffer = buffers.init({"obs": obs[0], "action": action_example, "reward": jnp.float32(0.0),
                               "next_obs": obs[0], "terminated": jnp.bool_(False),
                               "truncated": jnp.bool_(False)}, buffer_size)
        return {"params": params, "target_params": params if use_target else None,
                "opt_state": optimizer_for(config).init(params), "buffer": buffer,
                "env_state": env_state, "obs": obs, "key": key, "update_index": jnp.int32(0)}

    def update(config, state: dict) -> tuple[dict, dict]:
        optimizer = optimizer_for(config)
        index = state["update_index"]

        def env_step(carry, iteration):
            params, buffer, env_state, obs, key = carry
            key, key_a, key_b, step_key = jax.random.split(key, 4)
            action, env_action, extras = explore(config, params, obs, iteration, key_a, key_b)
            next_obs, env_state, reward, terminated, truncated, info = step_envs(
                jax.random.split(step_key, num_envs), env_state, env_action)
            buffer = buffers.add(buffer, {"obs": obs, "action": action, "reward": reward,
                                          "next_obs": info["final_observation"],
                                          "terminated": terminated, "truncated": truncated})
            episodes = {"episode_return": info["episode_return"],
                        "episode_length": info["episode_length"], "episode_done": info["episode_done"]}
            return (params, buffer, env_state, next_obs, key), (episodes, extras)

        def gradient_step(args):
            params, target_params, opt_state, buffer, key = args
            batch = buffers.sample(buffer, key, batch_size)
            return learn(config, optimizer, params, target_params, opt_state, batch, index)

        def no_gradient_step(args):  # before learning_starts: NaN metrics (no update), not 0
            params, target_params, opt_state, _, _ = args
            return params, target_params, opt_state, {name: jnp.float32(jnp.nan) for name in loss_names}

        key, sample_key = jax.random.split(state["key"])
        iterations = index * train_frequency + jnp.arange(train_frequency)
        (params, buffer, env_state, obs, key), (episodes, extras) = jax.lax.scan(
            env_step, (state["params"], state["buffer"], state["env_state"], state["obs"], key),
            iterations)
        # A real branch when `update_index` is shared by the vmapped runs (a whole run: it starts
        # as a constant), a select computing both when it is batched (a checkpointed segment, whose
        # state comes in batched): at worst one wasted gradient step per warm-up update.
        params, target_params, opt_state, losses = jax.lax.cond(
            index >= warmup, gradient_step, no_gradient_step,
            (params, state["target_params"], state["opt_state"], buffer, sample_key))
        metrics = {**episode_metrics(episodes, task_index, envs.num_tasks(env_params)), **losses,
                   **{name: value.mean() for name, value in extras.items()},
                   **schedule(config, iterations[-1] * num_envs)}
        return {"params": params, "target_params": target_params, "opt_state": opt_state,
                "buffer": buffer, "env_state": env_state, "obs": obs, "key": key,
                "update_index": index + 1}, metrics

    def greedy_policy(state: dict):
        return lambda obs: greedy_action(state["params"], obs)

    return Trainer(init, update, num_updates(config), greedy_policy=greedy_policy, eval_env=eval_env,
                   eval_env_params=env_params,
                   eval_max_steps=int(getattr(env_params, "max_steps_in_episode", 1000)))
