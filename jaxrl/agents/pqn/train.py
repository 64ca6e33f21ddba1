"""PQN's training loop as one pure function of (config, key). One update: a rollout of
`num_steps` epsilon-greedy steps in all `num_envs` envs (the greedy action from the online
network, which is the only network), Q(lambda) targets over it, then `update_epochs` passes of
`num_minibatches` minibatches of the TD loss 0.5 (Q(s, a) - G)^2 with the targets held fixed.

Q(lambda) targets are GAE's value targets (`jaxrl.agents.onpolicy.compute_gae`, shared) with
V(s) = max_a Q(s, a): G_t = r_t + gamma (1 - terminated_t) [V(s'_t) + lambda (1 - done_t)
(G_{t+1} - V(s_{t+1}))], where s'_t is the observation that followed step t before any
auto-reset, so a truncated episode bootstraps from its final observation and a terminated one
does not; the last step of a rollout bootstraps one step.

`make_optimizer(config)` is a hook (RAdam with a gradient clip by default, as CleanRL's); its
update is also given `q_fn`, `batch` and `td` keyword arguments like DQN's, so a Fisher
preconditioner from `jaxrl.optim` plugs in unchanged."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

import envs
from jaxrl.agents.base import (Trainer, batched_env, minibatch_epochs, rollout_learning_rate,
                              rollout_steps, validate_rollout)
from jaxrl.agents.dqn.train import QNetwork
from jaxrl.agents.pqn.config import PQNConfig
from jaxrl.agents.onpolicy import compute_gae
from jaxrl.config import ConfigError
from jaxrl.metrics import episode_info, episode_metrics


steps_per_update = rollout_steps


def validate(config: PQNConfig, env, env_params, algo: str = "pqn") -> None:
    """Raise ConfigError, naming the option, for any config this env cannot train with."""
    validate_rollout(config, env_params)
    if not envs.is_discrete(env, env_params):
        raise ConfigError(f"--algo {algo}: needs a Discrete action space, got "
                          f"{env.action_space(env_params)}; naf or ppo train continuous actions")


def q_lambda_targets(rewards, q_values, next_q_values, terminated, done, gamma, q_lambda):
    """Q(lambda) targets [T, E] from rewards, Q(s_t, .) [T, E, A] of the rollout's observations
    and Q(s'_t, .) of the observations that followed each step before any auto-reset (see the
    module docstring)."""
    _, targets = compute_gae(rewards, q_values.max(-1), next_q_values.max(-1), terminated, done,
                             gamma, q_lambda)
    return targets


def radam(config: PQNConfig, schedule) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.radam(schedule))


@struct.dataclass
class PQNState:
    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    key: jax.Array


def make_train(config: PQNConfig, env, env_params, make_optimizer=radam) -> Trainer:
    """PQN's Trainer (see the module docstring); `make_optimizer(config, learning_rate)` is the
    optimizer hook."""
    eval_env = env
    env = envs.EpisodeStats(env)
    obs_shape = env.observation_space(env_params).shape
    num_actions = env.action_space(env_params).n
    network = QNetwork(num_actions=num_actions, hidden_sizes=config.hidden_sizes,
                       activation=config.activation, obs_ndim=len(obs_shape), layer_norm=True,
                       layer_norm_params=config.layer_norm_params)
    num_envs, num_steps = config.num_envs, config.num_steps
    batch_size = num_envs * num_steps
    num_updates = config.total_steps // batch_size
    reset_envs, step_envs = batched_env(env, env_params, num_envs)
    task_index = envs.env_task_index(env_params, num_envs)  # None unless a task table

    def optimizer(config: PQNConfig):
        return make_optimizer(config, rollout_learning_rate(config))

    def epsilon_at(config: PQNConfig, env_steps):
        progress = jnp.clip(env_steps / (config.exploration_fraction * config.total_steps), 0, 1)
        return config.start_e + progress * (config.end_e - config.start_e)

    def taken_q(params, batch):  # [B]
        q = network.apply(params, batch["obs"])
        return jnp.take_along_axis(q, batch["action"][..., None], axis=-1)[..., 0]

    def init(config: PQNConfig, key: jax.Array) -> PQNState:
        key, init_key, reset_key = jax.random.split(key, 3)
        params = network.init(init_key, jnp.zeros(obs_shape))
        obs, env_state = reset_envs(jax.random.split(reset_key, num_envs))
        return PQNState(params=params, opt_state=optimizer(config).init(params),
                        env_state=env_state, obs=obs, key=key)

    def update(config: PQNConfig, state: PQNState, index: jax.Array) -> tuple[PQNState, dict]:
        def env_step(carry, t):
            env_state, obs, key = carry
            key, explore_key, random_key, step_key = jax.random.split(key, 4)
            q = network.apply(state.params, obs)
            epsilon = epsilon_at(config, (index * num_steps + t + 1) * num_envs)
            explore = jax.random.uniform(explore_key, (num_envs,)) < epsilon
            action = jnp.where(explore, jax.random.randint(random_key, (num_envs,), 0, num_actions),
                               jnp.argmax(q, axis=-1))
            next_obs, env_state, reward, terminated, truncated, info = step_envs(
                jax.random.split(step_key, num_envs), env_state, action)
            return (env_state, next_obs, key), {
                "obs": obs, "action": action, "q": q, "reward": reward.astype(jnp.float32),
                "terminated": terminated.astype(jnp.float32),
                "done": jnp.logical_or(terminated, truncated).astype(jnp.float32),
                "final_obs": info["final_observation"], "epsilon": epsilon, **episode_info(info)}

        (env_state, obs, key), traj = jax.lax.scan(env_step, (state.env_state, state.obs, state.key),
                                                   jnp.arange(num_steps))
        targets = q_lambda_targets(traj["reward"], traj["q"], network.apply(state.params, traj["final_obs"]),
                                   traj["terminated"], traj["done"], config.gamma, config.q_lambda)
        batch = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]),
                             {"obs": traj["obs"], "action": traj["action"], "target": targets})
        opt = optimizer(config)

        def minibatch_step(carry, minibatch):
            params, opt_state = carry

            def loss(params):
                td = taken_q(params, minibatch) - minibatch["target"]
                return 0.5 * jnp.mean(td ** 2), td

            (td_loss, td), grads = jax.value_and_grad(loss, has_aux=True)(params)
            updates, opt_state = opt.update(grads, opt_state, params, q_fn=taken_q,
                                            batch=minibatch, td=td)
            return (optax.apply_updates(params, updates), opt_state), {
                "td_loss": td_loss, "grad_norm": optax.global_norm(grads)}

        key, epoch_key = jax.random.split(key)
        (params, opt_state), losses = minibatch_epochs(
            minibatch_step, (state.params, state.opt_state), batch, epoch_key,
            config.update_epochs, config.num_minibatches)
        metrics = {**episode_metrics(traj, task_index, envs.num_tasks(env_params)),
                   **jax.tree.map(jnp.mean, losses), "q_mean": traj["q"].max(-1).mean(),
                   "target_mean": targets.mean(), "epsilon": traj["epsilon"][-1]}
        return PQNState(params=params, opt_state=opt_state, env_state=env_state, obs=obs,
                        key=key), metrics

    def with_params(config: PQNConfig, state: PQNState, params) -> PQNState:
        return state.replace(params=params, opt_state=optimizer(config).init(params))

    return Trainer(init, update, num_updates, params=lambda state: state.params,
                   with_params=with_params,
                   policy=lambda params: lambda obs: jnp.argmax(network.apply(params, obs), -1),
                   value=lambda params: lambda obs: network.apply(params, obs),
                   eval_env=eval_env, eval_env_params=env_params,
                   eval_max_steps=envs.max_steps(env_params))
