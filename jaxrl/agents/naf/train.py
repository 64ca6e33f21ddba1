"""NAF's training loop as one pure function of (config, key): its network, noisy acting and
gradient step, plugged into the replay-buffer agents' shared loop (jaxrl.agents.offpolicy,
as DQN's).

`make_train(config, env, env_params)` reads only the static fields of `config` and returns a
`Trainer` whose `init`/`update` (and the whole run, `trainer(config, key)`) read only its float
leaves, so `jax.jit(jax.vmap(trainer))` over a batch of configs and keys is one compiled program.

A run is a scan of updates. One update = `train_frequency` iterations (each one vectorised step of
all `num_envs` envs acting mu(s) plus Gaussian noise, uniform random actions before
`learning_starts`; the transitions go to the replay buffer), then one gradient step on a batch
sampled uniformly from the buffer (skipped before `learning_starts`) and a Polyak update of the
target network. One metrics row per update: the episode statistics, td_loss, q_mean, v_mean,
advantage_mean (of the sampled transitions), grad_norm (before clipping), noise (the exploration
std) and mu_saturated (the fraction of acting steps with some |mu| > 0.99, the NAF failure mode
where tanh(mu) sticks at the box edge).

Actions live in the normalised box [-1, 1]^A inside the agent (mu = tanh(.), the buffer stores
normalised actions) and are mapped affinely onto the env's box when stepping; `envs.ClipAction`
clips them again, which changes nothing for finite boxes.

The optimizer is a hook: `make_optimizer(config) -> optax transformation` (default: global-norm
clip then Adam). Its `update` is always called as `update(grads, state, params, q_fn=, batch=,
td=)` (optax.chain forwards such keyword arguments to the transformations that take them), so
jaxrl.optim's Fisher preconditioner plugs in unchanged, e.g.
`jaxrl.agents.register("naf_fisher", base="naf", make_optimizer=...)`."""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

import envs
from jaxrl.agents.base import Trainer
from jaxrl.agents.continuous import env_action_map, validate_box, warmup_actions
from jaxrl.agents.offpolicy import NetworkState, OffPolicyAgent, make_offpolicy_trainer
from jaxrl.agents.naf.config import NAFConfig
from jaxrl.agents.naf.losses import naf_loss, num_l_entries, taken_q
from jaxrl.nets import MLP, flatten_obs



class NAFNetwork(nn.Module):
    """An MLP on the flattened observation -> (V [...], mu [..., A] in [-1, 1], l_entries [..., n])
    with n = A (diagonal P) or A(A+1)/2 (lower-triangular L), see jaxrl.agents.naf.losses."""

    action_dim: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "relu"
    diagonal_p: bool = False
    obs_ndim: int = 1  # trailing axes of one observation, flattened before the first layer

    @nn.compact
    def __call__(self, obs):
        x = flatten_obs(obs, self.obs_ndim)
        a, n = self.action_dim, num_l_entries(self.action_dim, self.diagonal_p)
        out = MLP(self.hidden_sizes, 1 + a + n, self.activation, out_scale=1.0)(x)
        mu = jnp.tanh(out[..., 1:1 + a])
        return out[..., 0], mu, out[..., 1 + a:]


def default_optimizer(config: NAFConfig) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.lr))


def validate(config: NAFConfig, env, env_params) -> None:
    """Raise ConfigError, naming the option, for any config this env cannot train with."""
    validate_box(config, env, env_params, "naf")


def make_train(config: NAFConfig, env, env_params,
               make_optimizer: Callable[[NAFConfig], optax.GradientTransformation] = default_optimizer
               ) -> Trainer:
    """NAF's Trainer. `make_optimizer(config)` (called inside the program with the traced config)
    is the optimizer hook; see the module docstring."""
    action_dim = env.action_space(env_params).shape[0]
    to_env_action = env_action_map(env, env_params)
    env = envs.ClipAction(env)
    obs_shape = env.observation_space(env_params).shape
    network = NAFNetwork(action_dim=action_dim, hidden_sizes=config.hidden_sizes,
                         activation=config.activation, diagonal_p=config.diagonal_p,
                         obs_ndim=len(obs_shape))
    num_envs, learning_starts, total_steps = config.num_envs, config.learning_starts, config.total_steps

    def noise_at(config: NAFConfig, env_steps):
        """Linear from start_noise to end_noise over exploration_fraction x total_steps, then flat."""
        progress = jnp.clip(env_steps / (config.exploration_fraction * total_steps), 0.0, 1.0)
        return config.start_noise + progress * (config.end_noise - config.start_noise)

    def optimizer(config: NAFConfig):
        return optax.with_extra_args_support(make_optimizer(config))

    def act(config: NAFConfig, agent: NetworkState, obs, iteration, keys):
        """mu(s) plus Gaussian noise; uniform random actions before learning_starts."""
        noise_key, random_key = keys
        mu = network.apply(agent.params, obs)[1]
        noise = noise_at(config, iteration * num_envs)
        noisy = jnp.clip(mu + noise * jax.random.normal(noise_key, mu.shape), -1.0, 1.0)
        action = warmup_actions(noisy, random_key, iteration, num_envs, learning_starts)
        saturated = jnp.mean(jnp.any(jnp.abs(mu) > 0.99, axis=-1))
        return action, to_env_action(action), {"mu_saturated": saturated}

    def learn(config: NAFConfig, agent: NetworkState, batch, step):
        params = agent.params
        batch = {**batch, "reward": batch["reward"] * config.reward_scale}
        grads, (losses, dloss_dq) = jax.grad(naf_loss, has_aux=True)(
            params, agent.target_params, network.apply, batch, config.gamma)
        updates, opt_state = optimizer(config).update(
            grads, agent.opt_state, params, q_fn=lambda p, b: taken_q(p, network.apply, b),
            batch=batch, td=dloss_dq)
        params = optax.apply_updates(params, updates)
        target_params = optax.incremental_update(params, agent.target_params, config.tau)
        return (NetworkState(params=params, target_params=target_params, opt_state=opt_state),
                {**losses, "grad_norm": optax.global_norm(grads)})

    def fresh(config: NAFConfig, params) -> NetworkState:
        return NetworkState.fresh(params, optimizer(config), use_target=True)

    return make_offpolicy_trainer(config, env, env_params, OffPolicyAgent(
        init=lambda config, key: fresh(config, network.init(key, jnp.zeros(obs_shape))),
        act=act, learn=learn,
        schedule=lambda config, env_steps: {"noise": noise_at(config, env_steps)},
        params=lambda agent: agent.params,
        with_params=lambda config, agent, params: fresh(config, params),
        policy=lambda params: lambda obs: to_env_action(network.apply(params, obs)[1]),
        value=lambda params: lambda obs: network.apply(params, obs)[0],  # V(s) = max_a Q(s, a)
        action_example=jnp.zeros(action_dim, jnp.float32)))
