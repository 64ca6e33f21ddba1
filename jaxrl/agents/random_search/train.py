"""Random search as a Trainer: each update draws `num_envs` candidates, scores each by one
episode, and keeps the first best of them if it beats the incumbent's score."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrl.agents.base import Trainer, play
from jaxrl.agents.episodes import (check_divides, draw, episode_stats, episodic_trainer,
                                   keep_better, params_like, score_network, search_init,
                                   sign_action, unscored, validate_episodic)
from jaxrl.agents.random_search.config import RandomSearchConfig


def validate(config: RandomSearchConfig, env, env_params) -> None:
    validate_episodic(config, env, env_params)
    check_divides(config.num_candidates, "num_candidates", config.num_envs)


def score_each(env, env_params, network, candidates, key, max_steps):
    """Return and length of one episode per candidate (leaves [C, ...]), all played at once."""
    def one(params, key):
        out = play(env, env_params, lambda obs, _: sign_action(network.apply(params, obs)), key,
                   1, max_steps)
        return out["return"][0], out["length"][0]

    count = jax.tree.leaves(candidates)[0].shape[0]
    return jax.vmap(one)(candidates, jax.random.split(key, count))


def make_train(config: RandomSearchConfig, env, env_params) -> Trainer:
    network = score_network(config, env, env_params)
    like = params_like(network, env, env_params)
    batch = config.num_envs

    def update(config, state, index):
        del index
        key, draw_key, play_key = jax.random.split(state.key, 3)
        candidates = jax.vmap(lambda k: draw(k, like, config.distribution, config.scale))(
            jax.random.split(draw_key, batch))
        unscored = ~jnp.isfinite(state.score)  # the incumbent is candidate 0 until scored
        candidates = jax.tree.map(lambda c, p: c.at[0].set(jnp.where(unscored, p, c[0])),
                                  candidates, state.params)
        returns, lengths = score_each(env, env_params, network, candidates, play_key,
                                      config.max_steps)
        best = jnp.argmax(returns)  # the first best
        state = keep_better(state, jax.tree.map(lambda c: c[best], candidates), returns[best], key)
        return state, {**episode_stats(returns, lengths), "best_return": state.score}

    init = search_init(like, lambda config: config.scale)
    return episodic_trainer(init, update, config.num_candidates // batch, network, env,
                            env_params, unscored)
