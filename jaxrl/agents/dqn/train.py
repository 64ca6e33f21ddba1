"""DQN's training loop as one pure function of (config, key): its network, epsilon-greedy acting
and gradient step, plugged into the replay-buffer agents' shared loop
(jaxrl.agents.offpolicy.make_offpolicy_trainer).

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
from jaxrl.agents.base import Trainer, check_task_spread
from jaxrl.agents.offpolicy import (NetworkState, OffPolicyAgent, make_offpolicy_trainer,
                                    validate_replay)
from jaxrl.agents.dqn.config import DQNConfig
from jaxrl.agents.dqn.losses import dqn_loss
from jaxrl.config import ConfigError, check_fields
from jaxrl.nets import MLP, flatten_obs



class QNetwork(nn.Module):
    """An MLP on the flattened observation -> one Q value per action, [..., num_actions]."""

    num_actions: int
    hidden_sizes: Sequence[int] = (120, 84)
    activation: str = "relu"
    obs_ndim: int = 1  # trailing axes of one observation, flattened before the first layer
    layer_norm: bool = False  # PQN's: a LayerNorm before each hidden activation
    layer_norm_params: bool = True  # its learned scale and bias

    @nn.compact
    def __call__(self, obs):
        x = flatten_obs(obs, self.obs_ndim)
        return MLP(self.hidden_sizes, self.num_actions, self.activation, out_scale=1.0,
                   layer_norm=self.layer_norm, layer_norm_params=self.layer_norm_params)(x)


def validate(config: DQNConfig, env, env_params, algo: str = "dqn") -> None:
    """Raise ConfigError, naming the option, for any config this env cannot train with."""
    check_fields(config)
    check_task_spread(config.num_envs, env_params)
    if not envs.is_discrete(env, env_params):
        raise ConfigError(f"--algo {algo}: needs a Discrete action space, got "
                          f"{env.action_space(env_params)}; naf or ppo train continuous actions")
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
    obs_shape = env.observation_space(env_params).shape
    network = QNetwork(num_actions=num_actions, hidden_sizes=config.hidden_sizes,
                       activation=config.activation, obs_ndim=len(obs_shape))
    num_envs, train_frequency, total_steps = config.num_envs, config.train_frequency, config.total_steps
    use_target = config.target_network_frequency > 0
    target_every = config.target_network_frequency

    def taken_q(params, batch):  # [B]
        q = network.apply(params, batch["obs"])
        return jnp.take_along_axis(q, batch["action"][..., None].astype(jnp.int32), axis=-1)[..., 0]

    def epsilon_at(config: DQNConfig, env_steps):
        """Linear from start_e to end_e over exploration_fraction x total_steps, then flat."""
        progress = jnp.clip(env_steps / (config.exploration_fraction * total_steps), 0.0, 1.0)
        return config.start_e + progress * (config.end_e - config.start_e)

    def act(config: DQNConfig, agent: NetworkState, obs, iteration, keys):  # epsilon-greedy
        explore_key, random_key = keys
        greedy = jnp.argmax(network.apply(agent.params, obs), axis=-1)
        random = jax.random.uniform(explore_key, (num_envs,)) < epsilon_at(config, iteration * num_envs)
        action = jnp.where(random, jax.random.randint(random_key, (num_envs,), 0, num_actions), greedy)
        return action, action, {}

    def learn(config: DQNConfig, agent: NetworkState, batch, step):
        params, target_params = agent.params, agent.target_params
        grads, losses, extra = gradient(config, params, target_params, batch, network.apply, taken_q)
        updates, opt_state = make_optimizer(config).update(
            grads, agent.opt_state, params, q_fn=taken_q, batch=batch, **extra)
        params = optax.apply_updates(params, updates)
        if use_target:  # Polyak (tau = 1: a copy) whenever a multiple of target_every has passed
            done = (step + 1) * train_frequency
            sync = done // target_every > (done - train_frequency) // target_every
            target_params = jax.tree.map(
                lambda t, p: jnp.where(sync, config.tau * p + (1.0 - config.tau) * t, t),
                target_params, params)
        return (NetworkState(params=params, target_params=target_params, opt_state=opt_state),
                {**losses, "grad_norm": optax.global_norm(grads)})

    def fresh(config: DQNConfig, params) -> NetworkState:
        return NetworkState.fresh(params, make_optimizer(config), use_target)

    def q_values(params):
        return lambda obs: network.apply(params, obs)

    return make_offpolicy_trainer(config, env, env_params, OffPolicyAgent(
        init=lambda config, key: fresh(config, network.init(key, jnp.zeros(obs_shape))),
        act=act, learn=learn,
        schedule=lambda config, env_steps: {"epsilon": epsilon_at(config, env_steps)},
        params=lambda agent: agent.params,
        with_params=lambda config, agent, params: fresh(config, params),
        policy=lambda params: lambda obs: jnp.argmax(network.apply(params, obs), axis=-1),
        value=q_values, action_example=jnp.int32(0)))
