"""DDPG's agent on the replay-buffer loop (jaxrl.agents.offpolicy), written so that TD3 is the
same agent with two critics and a smoothed target action (`make_train`'s `num_critics` and
`target_action` hooks; jaxrl.agents.td3 binds them).

One gradient step: the critics step towards `deterministic_target` (Adam), then every
`policy_frequency` gradient steps (a real lax.cond on the unbatched step number) the actor steps
on -Q_1(s, mu(s)) and both target networks move by Polyak `tau`. Acting: mu(s) plus Gaussian noise
of std `exploration_noise`, clipped to the box; uniform random actions before `learning_starts`.
Actions are normalised to [-1, 1] inside the agent (jaxrl.agents.continuous).

Metrics per update: the episode statistics, critic_loss, q_mean, actor_loss (averaged over the
gradient steps that updated the actor)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

import envs
from jaxrl.agents.base import Trainer
from jaxrl.agents.continuous import (Critics, adam_step, critic_step, env_action_map, every,
                                     polyak, validate_box, warmup_actions)
from jaxrl.agents.ddpg.losses import actor_loss, deterministic_target
from jaxrl.agents.offpolicy import OffPolicyAgent, make_offpolicy_trainer
from jaxrl.nets import MLP, flatten_obs


class DeterministicActor(nn.Module):
    """An MLP on the flattened observation -> mu(s) = tanh(.) in [-1, 1]^A."""

    action_dim: int
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs):
        x = flatten_obs(obs, self.obs_ndim)
        return jnp.tanh(MLP(self.hidden_sizes, self.action_dim, self.activation)(x))


@struct.dataclass
class DDPGState:
    """DDPG's and TD3's agent state: the networks, their targets, the two Adam states and the key
    of the gradient steps' own randomness (TD3's target noise)."""

    actor: Any
    critics: Any
    target_actor: Any
    target_critics: Any
    actor_opt: Any
    critic_opt: Any
    key: jax.Array


def no_target_noise(config, mu, key):
    return mu


def validate(config, env, env_params) -> None:
    validate_box(config, env, env_params, "ddpg")


def make_train(config, env, env_params, num_critics: int = 1,
               target_action: Callable = no_target_noise) -> Trainer:
    """The Trainer of DDPG (defaults) or, with num_critics=2 and TD3's `target_action(config,
    mu'(s') [B, A], key) -> a' [B, A]`, of TD3."""
    action_dim = env.action_space(env_params).shape[0]
    to_env_action = env_action_map(env, env_params)
    env = envs.ClipAction(env)
    obs_shape = env.observation_space(env_params).shape
    actor = DeterministicActor(action_dim, config.hidden_sizes, config.activation, len(obs_shape))
    critics = Critics(num_critics, config.hidden_sizes, config.activation, len(obs_shape))
    num_envs, learning_starts = config.num_envs, config.learning_starts
    policy_frequency = config.policy_frequency

    def adam(config):
        return optax.adam(config.lr)

    def fresh(config, params, key) -> DDPGState:  # init and fine-tuning: targets = online nets
        return DDPGState(actor=params["actor"], critics=params["critics"],
                         target_actor=params["actor"], target_critics=params["critics"],
                         actor_opt=adam(config).init(params["actor"]),
                         critic_opt=adam(config).init(params["critics"]), key=key)

    def init(config, key) -> DDPGState:
        actor_key, critic_key, key = jax.random.split(key, 3)
        obs = jnp.zeros(obs_shape)
        return fresh(config, {"actor": actor.init(actor_key, obs),
                              "critics": critics.init(critic_key, obs, jnp.zeros(action_dim))}, key)

    def act(config, agent: DDPGState, obs, iteration, keys):
        noise_key, random_key = keys
        mu = actor.apply(agent.actor, obs)
        noisy = jnp.clip(mu + config.exploration_noise * jax.random.normal(noise_key, mu.shape),
                         -1.0, 1.0)
        action = warmup_actions(noisy, random_key, iteration, num_envs, learning_starts)
        return action, to_env_action(action), {}

    def learn(config, agent: DDPGState, batch, step):
        key, target_key = jax.random.split(agent.key)
        next_action = target_action(config, actor.apply(agent.target_actor, batch["next_obs"]),
                                    target_key)
        next_q = critics.apply(agent.target_critics, batch["next_obs"], next_action)
        target = deterministic_target(batch["reward"], next_q, batch["terminated"], config.gamma)
        critic_params, critic_opt, metrics = critic_step(critics.apply, agent.critics,
                                                         agent.critic_opt, adam(config), batch, target)
        agent = agent.replace(critics=critic_params, critic_opt=critic_opt, key=key)

        def delayed_update(agent: DDPGState):  # the actor step, then both targets move
            actor_params, actor_opt, m = adam_step(
                lambda p: actor_loss(p, actor.apply, agent.critics, critics.apply, batch["obs"]),
                agent.actor, agent.actor_opt, adam(config))
            return agent.replace(actor=actor_params, actor_opt=actor_opt,
                                 target_actor=polyak(actor_params, agent.target_actor, config.tau),
                                 target_critics=polyak(agent.critics, agent.target_critics,
                                                       config.tau)), m["actor_loss"]

        agent, loss = jax.lax.cond(every(step, policy_frequency), delayed_update,
                                   lambda agent: (agent, jnp.float32(jnp.nan)), agent)
        return agent, {**metrics, "actor_loss": loss}

    def value(params):  # min_i Q_i(s, mu(s)) [E]
        return lambda obs: critics.apply(params["critics"], obs,
                                         actor.apply(params["actor"], obs)).min(axis=0)

    return make_offpolicy_trainer(config, env, env_params, OffPolicyAgent(
        init=init, act=act, learn=learn, schedule=lambda config, env_steps: {},
        params=lambda agent: {"actor": agent.actor, "critics": agent.critics},
        with_params=lambda config, agent, params: fresh(config, params, agent.key),
        policy=lambda params: lambda obs: to_env_action(actor.apply(params["actor"], obs)),
        value=value, action_example=jnp.zeros(action_dim, jnp.float32)))
