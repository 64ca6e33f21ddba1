"""PPO's training loop as one pure function of (config, key), readable top to bottom.

`make_train(config, env, env_params)` reads only the static fields of `config` and returns a
`Trainer` whose `init`/`update` (and the whole run, `trainer(config, key)`) read only its float
leaves, so `jax.jit(jax.vmap(trainer))` over a batch of configs and keys is one compiled program."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

import envs
from jaxrl.agents.base import (Trainer, batched_env, minibatch_epochs, rollout_learning_rate,
                              rollout_steps, validate_rollout)
from jaxrl.agents.ppo.config import PPOConfig
from jaxrl.agents.ppo.losses import compute_gae, ppo_loss
from jaxrl.config import ConfigError
from jaxrl.metrics import episode_metrics
from jaxrl.nets import ActorCritic



steps_per_update = rollout_steps


def validate(config: PPOConfig, env, env_params) -> None:
    """Raise ConfigError, naming the option, for any config this env cannot train with."""
    validate_rollout(config, env_params)
    space = env.action_space(env_params)
    if not envs.is_discrete(env, env_params) and len(space.shape) != 1:
        raise ConfigError(f"--algo ppo: action space {space} is neither Discrete nor a 1-D Box")


def make_train(config: PPOConfig, env, env_params, loss_fn=ppo_loss):
    """PPO's Trainer. `loss_fn` (same signature as `ppo_loss`) is the hook for variants."""
    discrete = envs.is_discrete(env, env_params)
    action_space = env.action_space(env_params)
    if not discrete:
        env = envs.ClipAction(env)
    eval_env = env
    env = envs.EpisodeStats(env)
    if config.normalize_obs:
        env = envs.NormalizeObservation(env)
    obs_shape = env.observation_space(env_params).shape
    network = ActorCritic(action_dim=action_space.n if discrete else action_space.shape[0],
                          discrete=discrete, hidden_sizes=config.hidden_sizes,
                          activation=config.activation, obs_ndim=len(obs_shape))
    num_envs, num_steps = config.num_envs, config.num_steps
    batch_size = num_envs * num_steps
    num_updates = config.total_steps // batch_size
    reset_envs, step_envs = batched_env(env, env_params, num_envs)
    task_index = envs.env_task_index(env_params, num_envs)  # None unless a task table

    def make_optimizer(config: PPOConfig):
        return optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                           optax.adam(rollout_learning_rate(config), eps=1e-5))

    def init(config: PPOConfig, key: jax.Array) -> PPOState:
        key, init_key, reset_key = jax.random.split(key, 3)
        params = network.init(init_key, jnp.zeros(obs_shape))
        obs, env_state = reset_envs(jax.random.split(reset_key, num_envs))
        return PPOState(params=params, opt_state=make_optimizer(config).init(params),
                        env_state=env_state, obs=obs, key=key)

    def update(config: PPOConfig, state: PPOState, index: jax.Array) -> tuple[PPOState, dict]:
        del index  # every PPO update is alike
        optimizer = make_optimizer(config)

        def env_step(carry, _):
            params, env_state, obs, key = carry
            key, act_key, step_key = jax.random.split(key, 3)
            dist, value = network.apply(params, obs)
            action = dist.sample(act_key)
            next_obs, env_state, reward, terminated, truncated, info = step_envs(
                jax.random.split(step_key, num_envs), env_state, action)
            transition = {"obs": obs, "action": action, "log_prob": dist.log_prob(action),
                          "value": value, "reward": reward.astype(jnp.float32),
                          "terminated": terminated.astype(jnp.float32),
                          "done": jnp.logical_or(terminated, truncated).astype(jnp.float32),
                          "final_obs": info["final_observation"],
                          "episode_return": info["episode_return"],
                          "episode_length": info["episode_length"],
                          "episode_done": info["episode_done"]}
            return (params, env_state, next_obs, key), transition

        def minibatch_step(carry, minibatch):
            params, opt_state = carry
            grads, metrics = jax.grad(loss_fn, has_aux=True)(
                params, network.apply, minibatch, config.clip_eps, config.vf_coef, config.ent_coef)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), {
                **metrics, "grad_norm": optax.global_norm(grads)}

        params, opt_state, env_state, obs, key = (state.params, state.opt_state, state.env_state,
                                                  state.obs, state.key)
        (params, env_state, obs, key), traj = jax.lax.scan(
            env_step, (params, env_state, obs, key), None, num_steps)
        _, next_values = network.apply(params, traj["final_obs"])
        advantages, targets = compute_gae(traj["reward"], traj["value"], next_values,
                                          traj["terminated"], traj["done"],
                                          config.gamma, config.gae_lambda)
        batch = {"obs": traj["obs"], "action": traj["action"], "log_prob": traj["log_prob"],
                 "value": traj["value"], "advantage": advantages, "target": targets}
        batch = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]), batch)
        key, epoch_key = jax.random.split(key)
        (params, opt_state), losses = minibatch_epochs(
            minibatch_step, (params, opt_state), batch, epoch_key, config.update_epochs,
            config.num_minibatches)
        metrics = {**episode_metrics(traj, task_index, envs.num_tasks(env_params)),
                   **jax.tree.map(jnp.mean, losses),
                   "value_mean": traj["value"].mean(), "advantage_std": advantages.std()}
        return PPOState(params=params, opt_state=opt_state, env_state=env_state, obs=obs,
                        key=key), metrics

    def trained_params(state: PPOState) -> PPOParams:
        """The network, and with normalize_obs the observation statistics of the first env."""
        norm = None
        if config.normalize_obs:
            norm = {k: getattr(state.env_state, k)[0] for k in ("mean", "var", "count")}
        return PPOParams(network=state.params, obs_norm=norm)

    def with_params(config: PPOConfig, state: PPOState, params: PPOParams) -> PPOState:
        env_state = state.env_state
        if config.normalize_obs:  # every env starts from the loaded statistics
            env_state = env_state.replace(**{k: jnp.broadcast_to(v, getattr(env_state, k).shape)
                                             for k, v in params.obs_norm.items()})
        return state.replace(params=params.network, opt_state=make_optimizer(config).init(
            params.network), env_state=env_state)

    def normalized(params: PPOParams, obs):
        if params.obs_norm is None:
            return obs
        norm = params.obs_norm
        return jnp.clip((obs - norm["mean"]) / jnp.sqrt(norm["var"] + 1e-8), -10.0, 10.0)

    def policy(params: PPOParams):
        return lambda obs: network.apply(params.network, normalized(params, obs))[0].mode()

    def value(params: PPOParams):
        return lambda obs: network.apply(params.network, normalized(params, obs))[1]

    return Trainer(init, update, num_updates, params=trained_params, with_params=with_params,
                   policy=policy, value=value, eval_env=eval_env, eval_env_params=env_params,
                   eval_max_steps=envs.max_steps(env_params))


@struct.dataclass
class PPOState:
    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    key: jax.Array


@struct.dataclass
class PPOParams:
    """A trained PPO agent: the actor-critic's params and, with normalize_obs, the observation
    statistics (mean, var, count) its policy normalises with."""

    network: Any
    obs_norm: dict | None = None
