"""What the on-policy actor-critics (PPO, A2C, VPG, TRPO) share: one rollout of `num_steps` steps
in `num_envs` envs with the stochastic policy, GAE advantages and value targets (with
terminated/truncated handling), the trained-agent plumbing (params, observation statistics,
greedy policy, value). An algorithm is only its `improve` step on the rollout's batch.

`actor_critic_trainer(config, env, env_params, init_optimizer, improve)` reads the static fields
num_envs, num_steps, total_steps, hidden_sizes, activation, normalize_obs and the traced gamma,
gae_lambda and reward_scaling of `config`; the algorithm supplies

- `init_optimizer(config, params) -> opt_state` (any pytree: one optax state, or a tuple of one
  per network);
- `improve(config, apply_fn, params, opt_state, batch, key) -> (params, opt_state, metrics)`,
  `batch` the rollout flattened to [num_envs x num_steps, ...]: obs, action, log_prob (of the
  acting policy), value, advantage, target (advantage + value).

The network is `jaxrl.nets.ActorCritic`: separate actor and critic MLPs, so a loss of the policy
alone has exactly zero gradient on the critic's parameters (and the other way round), and an Adam
step on such a gradient leaves those parameters exactly as they were."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

import envs
from jaxrl.agents.base import Trainer, batched_env, rollout_steps, validate_rollout
from jaxrl.config import ConfigError, hparam, static
from jaxrl.metrics import episode_info, episode_metrics
from jaxrl.nets import ACTIVATIONS, ActorCritic

steps_per_update = rollout_steps


# The fields every on-policy config has, with their help in one place; defaults per algorithm.
def total_steps_field(default: int):
    return static(default, "environment steps per run (all envs together)")


def num_envs_field(default: int):
    return static(default, "parallel environments per run")


def num_steps_field(default: int):
    return static(default, "steps per env per rollout; one update uses num_envs x num_steps")


def hidden_sizes_field():
    return static((64, 64), "hidden layer widths of actor and critic (separate MLPs), e.g. 64,64")


def activation_field():
    return static("tanh", "hidden activation", choices=ACTIVATIONS)


def normalize_obs_field():
    return static(False, "normalise observations by running mean and variance statistics, pooled "
                  "over all envs (on a task family: over every task)", minimum=None)


def gamma_field(default: float = 0.99):
    return hparam(default, "discount factor", high=1.0)


def gae_lambda_field(default: float):
    return hparam(default, "GAE lambda (1 = n-step returns to the end of the rollout)", high=1.0)


def reward_scaling_field():
    return hparam(1.0, "rewards are multiplied by this before learning (returns are reported "
                       "unscaled); brax's PPO option of the same name", low_open=True)


def normalized(x: jax.Array) -> jax.Array:
    """x standardised over its batch (advantages, per batch or minibatch)."""
    return (x - x.mean()) / (x.std() + 1e-8)


def compute_gae(rewards, values, next_values, terminated, done, gamma, gae_lambda):
    """Generalised advantage estimation over a rollout. All arrays are [T, E].

    `next_values[t]` is V of the observation that followed step t *before* any auto-reset (the
    final observation of an episode), so a truncated step bootstraps from it while a terminated one
    (`terminated[t]`) does not. `done[t]` (terminated or truncated) cuts the advantage trace.
    Returns (advantages, value targets)."""
    deltas = rewards + gamma * next_values * (1.0 - terminated) - values

    def backward(advantage, inputs):
        delta, done_t = inputs
        advantage = delta + gamma * gae_lambda * (1.0 - done_t) * advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(deltas[0]), (deltas, done), reverse=True)
    return advantages, advantages + values



@struct.dataclass
class ActorCriticState:
    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    key: jax.Array


@struct.dataclass
class ActorCriticParams:
    """A trained actor-critic: the network's params and, with normalize_obs, the observation
    statistics (mean, var, count) its policy normalises with."""

    network: Any
    obs_norm: dict | None = None


def validate_actor_critic(name: str, config, env, env_params) -> None:
    """Raise ConfigError, naming the option, for any config this env cannot train with."""
    validate_rollout(config, env_params)
    space = env.action_space(env_params)
    if not envs.is_discrete(env, env_params) and len(space.shape) != 1:
        raise ConfigError(f"--algo {name}: action space {space} is neither Discrete nor a 1-D Box")


def actor_critic_trainer(config, env, env_params, init_optimizer: Callable,
                         improve: Callable) -> Trainer:
    """The Trainer of an on-policy actor-critic; see the module docstring."""
    discrete = envs.is_discrete(env, env_params)
    action_space = env.action_space(env_params)
    if not discrete:
        env = envs.ClipAction(env)
    eval_env = env
    env = envs.EpisodeStats(env)
    if config.normalize_obs:
        env = envs.NormalizeObservation(env, axis_name=envs.ENV_AXIS,  # one set for all envs
                                        pass_through=envs.task_id_width(env))
    obs_shape = env.observation_space(env_params).shape
    network = ActorCritic(action_dim=action_space.n if discrete else action_space.shape[0],
                          discrete=discrete, hidden_sizes=config.hidden_sizes,
                          activation=config.activation, obs_ndim=len(obs_shape))
    num_envs, num_steps = config.num_envs, config.num_steps
    batch_size = num_envs * num_steps
    reset_envs, step_envs = batched_env(env, env_params, num_envs)
    task_index = envs.env_task_index(env_params, num_envs)  # None unless a task table

    def init(config, key: jax.Array) -> ActorCriticState:
        key, init_key, reset_key = jax.random.split(key, 3)
        params = network.init(init_key, jnp.zeros(obs_shape))
        obs, env_state = reset_envs(jax.random.split(reset_key, num_envs))
        return ActorCriticState(params=params, opt_state=init_optimizer(config, params),
                                env_state=env_state, obs=obs, key=key)

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
                      "final_obs": info["final_observation"], **episode_info(info)}
        return (params, env_state, next_obs, key), transition

    def update(config, state: ActorCriticState, index: jax.Array):
        del index  # every update is alike
        (params, env_state, obs, key), traj = jax.lax.scan(
            env_step, (state.params, state.env_state, state.obs, state.key), None, num_steps)
        _, next_values = network.apply(params, traj["final_obs"])
        advantages, targets = compute_gae(traj["reward"] * config.reward_scaling, traj["value"], next_values,
                                          traj["terminated"], traj["done"],
                                          config.gamma, config.gae_lambda)
        batch = {"obs": traj["obs"], "action": traj["action"], "log_prob": traj["log_prob"],
                 "value": traj["value"], "advantage": advantages, "target": targets}
        batch = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]), batch)
        key, improve_key = jax.random.split(key)
        params, opt_state, losses = improve(config, network.apply, params, state.opt_state,
                                            batch, improve_key)
        metrics = {**episode_metrics(traj, task_index, envs.num_tasks(env_params)), **losses,
                   "value_mean": traj["value"].mean(), "advantage_std": advantages.std()}
        return ActorCriticState(params=params, opt_state=opt_state, env_state=env_state,
                                obs=obs, key=key), metrics

    def trained_params(state: ActorCriticState) -> ActorCriticParams:
        """The network, and with normalize_obs the observation statistics (pooled over the
        envs: every env holds the same)."""
        norm = None
        if config.normalize_obs:
            norm = {k: getattr(state.env_state, k)[0] for k in ("mean", "var", "count")}
        return ActorCriticParams(network=state.params, obs_norm=norm)

    def with_params(config, state: ActorCriticState, params: ActorCriticParams):
        env_state = state.env_state
        if config.normalize_obs:  # every env starts from the loaded statistics
            env_state = env_state.replace(**{k: jnp.broadcast_to(v, getattr(env_state, k).shape)
                                             for k, v in params.obs_norm.items()})
        return state.replace(params=params.network,
                             opt_state=init_optimizer(config, params.network), env_state=env_state)

    def normalized_obs(params: ActorCriticParams, obs):
        if params.obs_norm is None:
            return obs
        norm = params.obs_norm
        return jnp.clip((obs - norm["mean"]) / jnp.sqrt(norm["var"] + 1e-8), -10.0, 10.0)

    def policy(params: ActorCriticParams):
        return lambda obs: network.apply(params.network, normalized_obs(params, obs))[0].mode()

    def value(params: ActorCriticParams):
        return lambda obs: network.apply(params.network, normalized_obs(params, obs))[1]

    return Trainer(init, update, config.total_steps // batch_size, params=trained_params,
                   with_params=with_params, policy=policy, value=value, eval_env=eval_env,
                   eval_env_params=env_params, eval_max_steps=envs.max_steps(env_params))
