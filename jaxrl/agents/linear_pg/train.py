"""linear_pg as a Trainer: each update plays `num_envs` whole episodes with the stochastic
logistic policy and takes one Adam step on `reinforce_loss`."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl.agents.base import Trainer, play
from jaxrl.agents.episodes import episode_stats, episodic_trainer, score_network, validate_episodic
from jaxrl.agents.linear_pg.config import LinearPGConfig
from jaxrl.agents.linear_pg.losses import reinforce_loss

validate = validate_episodic


@struct.dataclass
class PGState:
    params: Any
    opt_state: Any
    key: jax.Array


def make_train(config: LinearPGConfig, env, env_params) -> Trainer:
    network = score_network(config, env, env_params)
    obs = jnp.zeros(env.observation_space(env_params).shape)

    def optimizer(config):
        return optax.adam(config.lr)

    def init(config, key):
        key, init_key = jax.random.split(key)
        params = network.init(init_key, obs)
        return PGState(params, optimizer(config).init(params), key)

    def update(config, state, index):
        del index
        key, play_key = jax.random.split(state.key)

        def act(obs, key):  # action 1 with probability sigmoid(score)
            score = network.apply(state.params, obs)
            return jax.random.bernoulli(key, jax.nn.sigmoid(score)).astype(jnp.int32)

        episodes = play(env, env_params, act, play_key, config.num_envs, config.max_steps,
                        record=True)
        grads, metrics = jax.grad(reinforce_loss, has_aux=True)(
            state.params, network.apply, episodes, config.gamma)
        updates, opt_state = optimizer(config).update(grads, state.opt_state, state.params)
        return PGState(optax.apply_updates(state.params, updates), opt_state, key), {
            **episode_stats(episodes["return"], episodes["length"]), **metrics,
            "grad_norm": optax.global_norm(grads)}

    return episodic_trainer(init, update, config.num_updates, network, env, env_params,
                            lambda config, state, params: state.replace(
                                params=params, opt_state=optimizer(config).init(params)))
