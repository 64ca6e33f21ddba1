"""SAC's agent on the replay-buffer loop (jaxrl.agents.offpolicy).

One gradient step: the twin critics step towards the soft target (Adam, `q_lr`); then every
`policy_frequency` gradient steps (a real lax.cond on the unbatched step number) `policy_frequency`
actor steps (Adam, `policy_lr`), each followed with `autotune` by a temperature step (Adam,
`q_lr`) on that actor step's log-probabilities (CleanRL's delayed update: the same number of
actor steps as critic steps on average); then the target critics move by Polyak `tau`. Acting:
a sample of the tanh-Gaussian policy; uniform random actions before `learning_starts`; the greedy
policy is tanh(mean). The gradient steps draw their noise from a key in the agent's state.

Metrics per update: the episode statistics, critic_loss, q_mean, actor_loss, alpha, entropy
(-mean log pi of the actor steps' samples), alpha_loss (with autotune)."""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

import envs
from jaxrl.agents.base import Trainer
from jaxrl.agents.continuous import (Critics, adam_step, critic_step, env_action_map, every,
                                     polyak, validate_box, warmup_actions)
from jaxrl.agents.offpolicy import OffPolicyAgent, make_offpolicy_trainer
from jaxrl.agents.sac.config import SACConfig
from jaxrl.agents.sac.losses import (sac_actor_loss, sample_tanh_gaussian, soft_target,
                                     squash_log_std, temperature_loss)
from jaxrl.nets import MLP, flatten_obs


class SquashedGaussianActor(nn.Module):
    """An MLP on the flattened observation -> (mean [..., A], log_std [..., A] in [-5, 2]) of the
    Gaussian that tanh squashes into [-1, 1]^A."""

    action_dim: int
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs):
        out = MLP(self.hidden_sizes, 2 * self.action_dim, self.activation)(
            flatten_obs(obs, self.obs_ndim))
        return out[..., :self.action_dim], squash_log_std(out[..., self.action_dim:])


@struct.dataclass
class SACState:
    """SAC's agent state: actor, twin critics and their targets, the log-temperature, the three
    Adam states and the key of the gradient steps' own sampling."""

    actor: Any
    critics: Any
    target_critics: Any
    log_alpha: jax.Array
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    key: jax.Array


def validate(config: SACConfig, env, env_params) -> None:
    validate_box(config, env, env_params, "sac")


def make_train(config: SACConfig, env, env_params) -> Trainer:
    action_dim = env.action_space(env_params).shape[0]
    to_env_action = env_action_map(env, env_params)
    env = envs.ClipAction(env)
    obs_shape = env.observation_space(env_params).shape
    actor = SquashedGaussianActor(action_dim, config.hidden_sizes, config.activation, len(obs_shape))
    critics = Critics(2, config.hidden_sizes, config.activation, len(obs_shape))
    num_envs, learning_starts = config.num_envs, config.learning_starts
    policy_frequency, autotune = config.policy_frequency, config.autotune
    target_entropy = -float(action_dim)

    def alpha_of(config, log_alpha):
        return jnp.exp(log_alpha) if autotune else jnp.float32(config.alpha)

    def fresh(config, params, key) -> SACState:  # init and fine-tuning: targets = critics
        return SACState(actor=params["actor"], critics=params["critics"],
                        target_critics=params["critics"], log_alpha=params["log_alpha"],
                        actor_opt=optax.adam(config.policy_lr).init(params["actor"]),
                        critic_opt=optax.adam(config.q_lr).init(params["critics"]),
                        alpha_opt=optax.adam(config.q_lr).init(params["log_alpha"]), key=key)

    def init(config, key) -> SACState:
        actor_key, critic_key, key = jax.random.split(key, 3)
        obs = jnp.zeros(obs_shape)
        return fresh(config, {"actor": actor.init(actor_key, obs),
                              "critics": critics.init(critic_key, obs, jnp.zeros(action_dim)),
                              "log_alpha": jnp.float32(0.0)}, key)

    def act(config, agent: SACState, obs, iteration, keys):
        sample_key, random_key = keys
        action, _ = sample_tanh_gaussian(*actor.apply(agent.actor, obs), sample_key)
        action = warmup_actions(action, random_key, iteration, num_envs, learning_starts)
        return action, to_env_action(action), {}

    def learn(config, agent: SACState, batch, step):
        key, next_key, actor_key = jax.random.split(agent.key, 3)
        obs, next_obs = batch["obs"], batch["next_obs"]
        next_action, next_log_prob = sample_tanh_gaussian(*actor.apply(agent.actor, next_obs),
                                                          next_key)
        target = soft_target(batch["reward"], critics.apply(agent.target_critics, next_obs, next_action),
                             next_log_prob, batch["terminated"], config.gamma,
                             alpha_of(config, agent.log_alpha))
        critic_params, critic_opt, metrics = critic_step(
            critics.apply, agent.critics, agent.critic_opt, optax.adam(config.q_lr), batch, target)
        agent = agent.replace(critics=critic_params, critic_opt=critic_opt, key=key)

        def actor_step(agent: SACState, i):  # one actor step, then one temperature step
            alpha = alpha_of(config, agent.log_alpha)

            def loss(params):
                action, log_prob = sample_tanh_gaussian(*actor.apply(params, obs),
                                                        jax.random.fold_in(actor_key, i))
                q = critics.apply(agent.critics, obs, action)
                loss = sac_actor_loss(alpha, log_prob, q)
                return loss, (loss, log_prob)

            actor_params, actor_opt, (loss, log_prob) = adam_step(loss, agent.actor,
                                                                  agent.actor_opt,
                                                                  optax.adam(config.policy_lr))
            agent = agent.replace(actor=actor_params, actor_opt=actor_opt)
            m = {"actor_loss": loss, "alpha": alpha, "entropy": -log_prob.mean()}
            if autotune:
                def alpha_loss_fn(log_alpha):
                    loss = temperature_loss(log_alpha, log_prob, target_entropy)
                    return loss, loss

                log_alpha, alpha_opt, alpha_loss = adam_step(alpha_loss_fn, agent.log_alpha,
                                                             agent.alpha_opt, optax.adam(config.q_lr))
                agent, m = agent.replace(log_alpha=log_alpha, alpha_opt=alpha_opt), {
                    **m, "alpha_loss": alpha_loss}
            return agent, m

        def delayed_update(agent: SACState):
            agent, ms = jax.lax.scan(actor_step, agent, jnp.arange(policy_frequency))
            return agent, jax.tree.map(jnp.mean, ms)

        def no_update(agent: SACState):
            names = jax.eval_shape(delayed_update, agent)[1]
            return agent, {name: jnp.float32(jnp.nan) for name in names}

        agent, actor_metrics = jax.lax.cond(every(step, policy_frequency), delayed_update,
                                            no_update, agent)
        agent = agent.replace(target_critics=polyak(agent.critics, agent.target_critics, config.tau))
        return agent, {**metrics, **actor_metrics}

    def greedy(params, obs):  # tanh(mean) in [-1, 1]^A
        return jnp.tanh(actor.apply(params["actor"], obs)[0])

    return make_offpolicy_trainer(config, env, env_params, OffPolicyAgent(
        init=init, act=act, learn=learn, schedule=lambda config, env_steps: {},
        params=lambda agent: {"actor": agent.actor, "critics": agent.critics,
                              "log_alpha": agent.log_alpha},
        with_params=lambda config, agent, params: fresh(config, params, agent.key),
        policy=lambda params: lambda obs: to_env_action(greedy(params, obs)),
        value=lambda params: lambda obs: critics.apply(params["critics"], obs,
                                                       greedy(params, obs)).min(axis=0),
        action_example=jnp.zeros(action_dim, jnp.float32)))
