"""What the episode agents share (random search, hill climbing, linear_pg: the CartPole newcomer
trio): a policy that scores an observation (the linear w.s, or an MLP for the neural-network
follow-up) and acts by its sign, whole episodes played in parallel (`jaxrl.agents.base.play`),
i.i.d. draws of parameters, the checks, and the per-update metrics.

An update of these agents plays `num_envs` whole episodes, each env run for `max_steps` steps and
masked after its episode ends, so `steps_per_update` counts `num_envs x max_steps` env steps
computed; the steps actually played are the episode lengths (`episode_length_*`). Episodes are
numbered in order: updates in order, and within an update in batch order (candidate or env
index), which is what `first_best` counts in."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

import envs
from jaxrl.agents.base import Trainer
from jaxrl.config import ConfigError, check_fields, static
from jaxrl.metrics import masked_stats
from jaxrl.nets import ACTIVATIONS, MLP, flatten_obs, orthogonal

DISTRIBUTIONS = ("uniform", "gaussian")


def hidden_sizes_field():
    return static((), "policy network: hidden layer widths, e.g. 128,128 for a tanh MLP with "
                  "biases; empty (the default) for the linear policy w.s, one weight per "
                  "observation and no bias")


def activation_field():
    return static("tanh", "hidden activation of the policy network",
                  choices=ACTIVATIONS)


def max_steps_field():
    return static(500, "steps each episode is played for (masked after it ends): at most the "
                  "env's time limit (500 for CartPole-v1, whose best return is then 500)")


def distribution_field(default: str, what: str):
    return static(default, f"distribution of {what}, i.i.d. per parameter: uniform (in "
                  "[-scale, scale]) or gaussian (std scale); for the linear policy gaussian is "
                  "uniform over directions, which is all a sign policy depends on",
                  choices=DISTRIBUTIONS)


class Score(nn.Module):
    """obs [..., *obs_shape] -> score [...]: `w . obs` (no bias) without hidden layers, else an
    MLP; the last layer starts small (orthogonal, scale 0.01) for the policy gradient's logistic
    policy. The deterministic action is `score > 0` (`sign_action`)."""

    hidden_sizes: Sequence[int] = ()
    activation: str = "tanh"
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs):
        x = flatten_obs(obs, self.obs_ndim)
        if not self.hidden_sizes:
            return nn.Dense(1, use_bias=False, kernel_init=orthogonal(0.01))(x)[..., 0]
        return MLP(self.hidden_sizes, 1, self.activation, out_scale=0.01)(x)[..., 0]


def score_network(config, env, env_params) -> Score:
    obs_ndim = len(env.observation_space(env_params).shape)
    return Score(tuple(config.hidden_sizes), config.activation, obs_ndim)


def sign_action(score: jax.Array) -> jax.Array:
    """Action 1 where the score is positive, else 0 (CartPole: push right / left)."""
    return (score > 0).astype(jnp.int32)


def params_like(network: Score, env, env_params):
    """Shapes and dtypes of the network's params (nothing computed)."""
    obs = jnp.zeros(env.observation_space(env_params).shape)
    return jax.eval_shape(network.init, jax.random.PRNGKey(0), obs)


def draw(key: jax.Array, like, distribution: str, scale) -> dict:
    """Params shaped like `like`, every entry i.i.d. uniform in [-scale, scale] or normal with
    std `scale`."""
    leaves, tree = jax.tree.flatten(like)
    keys = jax.random.split(key, len(leaves))
    if distribution == "uniform":
        sample = lambda k, x: jax.random.uniform(k, x.shape, x.dtype, -1.0, 1.0)  # noqa: E731
    else:
        sample = lambda k, x: jax.random.normal(k, x.shape, x.dtype)  # noqa: E731
    return jax.tree.unflatten(tree, [scale * sample(k, x) for k, x in zip(keys, leaves)])


def validate_episodic(config, env, env_params) -> None:
    """ConfigError naming the option: field ranges, a two-action Discrete env (the sign policy),
    one set of env params (not a task table), max_steps within the env's time limit."""
    check_fields(config)
    space = env.action_space(env_params)
    if not envs.is_discrete(env, env_params) or space.n != 2:
        raise ConfigError(f"--env: the sign policy needs two discrete actions, got {space}")
    if envs.is_table(env_params):
        raise ConfigError("--env: the episode agents (random search, hill climbing, linear_pg) "
                          "train on one env, not a task family")
    limit = envs.max_steps(env_params)
    if config.max_steps > limit:
        raise ConfigError(f"--max-steps: got {config.max_steps}, more than the env's time limit "
                          f"{limit}")


def steps_per_update(config) -> int:
    """Env steps computed per update: num_envs episodes of max_steps steps each."""
    return config.num_envs * config.max_steps


def episode_stats(returns: jax.Array, lengths: jax.Array) -> dict:
    """One update's metrics of its episodes ([E] returns and lengths, batch order): the
    `episode_return_*` and `episode_length_*` statistics every agent reports, plus `first_best`,
    the 1-based position of the first episode with the update's highest return (random search's
    choice), and `first_best_steps`, the env steps of episodes 1..first_best."""
    every = jnp.ones(returns.shape, bool)
    i = jnp.argmax(returns)
    return {**masked_stats(returns, every, "episode_return"),
            **masked_stats(lengths, every, "episode_length"),
            "first_best": (i + 1).astype(jnp.float32), "first_best_steps": jnp.cumsum(lengths)[i]}


def check_divides(total: int, name: str, num_envs: int) -> None:
    if total % num_envs:
        raise ConfigError(f"--num-envs: {num_envs} does not divide --{name.replace('_', '-')} "
                          f"{total}")


@struct.dataclass
class SearchState:
    """The incumbent (random search's best, hill climbing's current) and its score: the return
    that chose it, -inf while unscored (fresh or loaded params), so that the next update scores it
    first."""

    params: Any
    score: jax.Array
    key: jax.Array


def keep_better(state: SearchState, candidate, score: jax.Array, key: jax.Array) -> SearchState:
    """The candidate with its score if the score is strictly higher than the incumbent's, else
    the incumbent (random search's and hill climbing's one rule)."""
    better = score > state.score
    params = jax.tree.map(lambda c, p: jnp.where(better, c, p), candidate, state.params)
    return SearchState(params, jnp.where(better, score, state.score), key)


def search_init(like, scale_of: Callable):
    """`init(config, key)` of random search and hill climbing: an incumbent drawn from
    `config.distribution` at scale `scale_of(config)`, unscored."""
    def init(config, key):
        key, draw_key = jax.random.split(key)
        return SearchState(draw(draw_key, like, config.distribution, scale_of(config)),
                           jnp.float32(-jnp.inf), key)

    return init


def unscored(config, state: SearchState, params) -> SearchState:
    """`with_params` of random search and hill climbing: the params become the incumbent,
    unscored."""
    return state.replace(params=params, score=jnp.float32(-jnp.inf))


def episodic_trainer(init, update, num_updates, network, env, env_params, with_params) -> Trainer:
    """The Trainer of an episode agent whose params are the score network's: the sign policy,
    no value function, evaluated in the env itself up to its time limit."""
    return Trainer(init, update, num_updates, params=lambda state: state.params,
                   with_params=with_params,
                   policy=lambda params: lambda obs: sign_action(network.apply(params, obs)),
                   value=None, eval_env=env, eval_env_params=env_params,
                   eval_max_steps=envs.max_steps(env_params))
