"""DQN's training loop as one pure function of (config, key), readable top to bottom.

`make_train(config, env, env_params)` reads only the static fields of `config` and returns a
`Trainer` whose `init`/`update` (and the whole run, `trainer(config, key)`) read only its float
leaves, so `jax.jit(jax.vmap(trainer))` over a batch of configs and keys is one compiled program.

A run is a scan of updates. One update = `train_frequency` iterations (each one vectorised
epsilon-greedy step of all `num_envs` envs, its transitions added to the replay buffer), then one
gradient step on a batch sampled uniformly from the buffer (skipped before `learning_starts`), and
a target network update whenever a multiple of `target_network_frequency` iterations has passed.
One metrics row per update.

`make_optimizer(config)` (a hook, Adam with a gradient clip by default) builds the optimizer from
the config's leaves; its `update` is also given `q_fn` (params, batch -> the taken actions' Q
values [B]), `batch` and `td` (the TD errors [B]) as keyword arguments, which optax.chain passes
to transformations that take them and plain optax ones ignore. `gradient` (a hook, `dqn_gradient`
by default) computes the loss gradient and those keyword arguments; natural DQN with K-FAC
replaces it to get the gradient and K-FAC's statistics from one pass. Natural DQN
(jaxrl.agents.natural_dqn) is this loop with a Fisher-preconditioned optimizer."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

import envs
from jaxrl import buffers
from jaxrl.agents.base import Trainer, batched_env, check_task_spread
from jaxrl.agents.offpolicy import (num_updates, num_warmup_updates, steps_per_update,
                                    validate_replay)
from jaxrl.agents.dqn.config import DQNConfig
from jaxrl.agents.dqn.losses import dqn_loss
from jaxrl.config import ConfigError, check_fields
from jaxrl.metrics import episode_metrics
from jaxrl.nets import MLP, flatten_obs



class QNetwork(nn.Module):
    """An MLP on the flattened observation -> one Q value per action, [..., num_actions]."""

    num_actions: int
    hidden_sizes: Sequence[int] = (120, 84)
    activation: str = "relu"
    obs_ndim: int = 1  # trailing axes of one observation, flattened before the first layer

    @nn.compact
    def __call__(self, obs):
        x = flatten_obs(obs, self.obs_ndim)
        return MLP(self.hidden_sizes, self.num_actions, self.activation, out_scale=1.0)(x)


def validate(config: DQNConfig, env, env_params) -> None:
    """Raise ConfigError, naming the option, for any config this env cannot train with."""
    check_fields(config)
    check_task_spread(config.num_envs, env_params)
    if not envs.is_discrete(env, env_params):
        raise ConfigError(f"--algo dqn: needs a Discrete action space, got {env.action_space(env_params)}")
    validate_replay(config)


def adam(config: DQNConfig) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.lr))


def dqn_gradient(config: DQNConfig, params, target_params, batch, apply_fn, q_fn):
    """The default `gradient` hook of make_train: jax.grad of dqn_loss. Returns (grads, metrics,
    optimizer_kwargs): the scalar metrics (td_loss, q_mean) and the keyword arguments handed to
    the optimizer's update besides q_fn and batch (here the TD errors, `td`)."""
    grads, losses = jax.grad(dqn_loss, has_aux=True)(
        params, target_params, apply_fn, batch, config.gamma, config.double, config.loss)
    td = losses.pop("td")
    return grads, losses, {"td": td}


def make_train(config: DQNConfig, env, env_params, make_optimizer=adam,
               gradient=dqn_gradient) -> Trainer:
    num_actions = env.action_space(env_params).n
    eval_env = env
    env = envs.EpisodeStats(env)
    obs_shape = env.observation_space(env_params).shape
    network = QNetwork(num_actions=num_actions, hidden_sizes=config.hidden_sizes,
                       activation=config.activation, obs_ndim=len(obs_shape))
    num_envs, train_frequency = config.num_envs, config.train_frequency
    warmup = num_warmup_updates(config)
    use_target = config.target_network_frequency > 0
    target_every = config.target_network_frequency
    batch_size, buffer_size, total_steps = config.batch_size, config.buffer_size, config.total_steps
    reset_envs, step_envs = batched_env(env, env_params, num_envs)
    task_index = envs.env_task_index(env_params, num_envs)  # None unless a task table

    def taken_q(params, batch):  # [B]
        q = network.apply(params, batch["obs"])
        return jnp.take_along_axis(q, batch["action"][..., None].astype(jnp.int32), axis=-1)[..., 0]

    def epsilon_at(config: DQNConfig, env_steps):
        """Linear from start_e to end_e over exploration_fraction x total_steps, then flat."""
        progress = jnp.clip(env_steps / (config.exploration_fraction * total_steps), 0.0, 1.0)
        return config.start_e + progress * (config.end_e - config.start_e)

    def init(config: DQNConfig, key: jax.Array) -> dict:
        key, init_key, reset_key = jax.random.split(key, 3)
        obs, env_state = reset_envs(jax.random.split(reset_key, num_envs))
        params = network.init(init_key, jnp.zeros(obs_shape))
        buffer = buffers.init({"obs": obs[0], "action": jnp.int32(0), "reward": jnp.float32(0.0),
                               "next_obs": obs[0], "terminated": jnp.bool_(False),
                               "truncated": jnp.bool_(False)}, buffer_size)
        return {"params": params, "target_params": params if use_target else None,
                "opt_state": make_optimizer(config).init(params), "buffer": buffer,
                "env_state": env_state, "obs": obs, "key": key, "update_index": jnp.int32(0)}

    def update(config: DQNConfig, state: dict) -> tuple[dict, dict]:
        optimizer = make_optimizer(config)
        index = state["update_index"]

        def env_step(carry, iteration):
            params, buffer, env_state, obs, key = carry
            key, explore_key, random_key, step_key = jax.random.split(key, 4)
            greedy = jnp.argmax(network.apply(params, obs), axis=-1)
            epsilon = epsilon_at(config, iteration * num_envs)
            explore = jax.random.uniform(explore_key, (num_envs,)) < epsilon
            action = jnp.where(explore, jax.random.randint(random_key, (num_envs,), 0, num_actions),
                               greedy)
            next_obs, env_state, reward, terminated, truncated, info = step_envs(
                jax.random.split(step_key, num_envs), env_state, action)
            buffer = buffers.add(buffer, {"obs": obs, "action": action, "reward": reward,
                                          "next_obs": info["final_observation"],
                                          "terminated": terminated, "truncated": truncated})
            episodes = {"episode_return": info["episode_return"],
                        "episode_length": info["episode_length"], "episode_done": info["episode_done"]}
            return (params, buffer, env_state, next_obs, key), episodes

        def gradient_step(args):
            params, target_params, opt_state, buffer, key = args
            batch = buffers.sample(buffer, key, batch_size)
            grads, losses, extra = gradient(config, params, target_params, batch, network.apply,
                                            taken_q)
            updates, opt_state = optimizer.update(grads, opt_state, params, q_fn=taken_q,
                                                  batch=batch, **extra)
            params = optax.apply_updates(params, updates)
            if use_target:  # Polyak (tau = 1: a copy) whenever a multiple of target_every has passed
                done = (index + 1) * train_frequency
                sync = done // target_every > (done - train_frequency) // target_every
                target_params = jax.tree.map(
                    lambda t, p: jnp.where(sync, config.tau * p + (1.0 - config.tau) * t, t),
                    target_params, params)
            return params, target_params, opt_state, {**losses, "grad_norm": optax.global_norm(grads)}

        def no_gradient_step(args):  # before learning_starts: NaN metrics (no update), not 0
            params, target_params, opt_state, _, _ = args
            nan = jnp.float32(jnp.nan)
            return params, target_params, opt_state, {"td_loss": nan, "q_mean": nan, "grad_norm": nan}

        key, sample_key = jax.random.split(state["key"])
        iterations = index * train_frequency + jnp.arange(train_frequency)
        (params, buffer, env_state, obs, key), episodes = jax.lax.scan(
            env_step, (state["params"], state["buffer"], state["env_state"], state["obs"], key),
            iterations)
        # A real branch when `update_index` is shared by the vmapped runs (a whole run: it starts
        # as a constant), a select computing both when it is batched (a checkpointed segment, whose
        # state comes in batched): at worst one wasted gradient step per warm-up update.
        params, target_params, opt_state, losses = jax.lax.cond(
            index >= warmup, gradient_step, no_gradient_step,
            (params, state["target_params"], state["opt_state"], buffer, sample_key))
        metrics = {**episode_metrics(episodes, task_index, envs.num_tasks(env_params)), **losses,
                   "epsilon": epsilon_at(config, iterations[-1] * num_envs)}
        return {"params": params, "target_params": target_params, "opt_state": opt_state,
                "buffer": buffer, "env_state": env_state, "obs": obs, "key": key,
                "update_index": index + 1}, metrics

    def greedy_policy(state: dict):
        def act(obs):
            return jnp.argmax(network.apply(state["params"], obs), axis=-1)

        return act

    return Trainer(init, update, num_updates(config), greedy_policy=greedy_policy, eval_env=eval_env,
                   eval_env_params=env_params,
                   eval_max_steps=int(getattr(env_params, "max_steps_in_episode", 1000)))
