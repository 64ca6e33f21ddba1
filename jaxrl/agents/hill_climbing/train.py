"""Hill climbing as a Trainer: each update perturbs the current parameters by `noise_scale`
times a draw from `distribution`, scores the perturbation by its mean return over `num_envs`
episodes, and keeps it only if that beats the current score (strictly). The current score is
the one that chose it (not re-measured), so once it is the best possible return nothing
changes."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrl.agents.base import Trainer, play
from jaxrl.agents.episodes import (draw, episode_stats, episodic_trainer, keep_better,
                                   params_like, score_network, search_init, sign_action, unscored,
                                   validate_episodic)
from jaxrl.agents.hill_climbing.config import HillClimbingConfig

validate = validate_episodic


def make_train(config: HillClimbingConfig, env, env_params) -> Trainer:
    network = score_network(config, env, env_params)
    like = params_like(network, env, env_params)

    def update(config, state, index):
        del index
        key, noise_key, play_key = jax.random.split(state.key, 3)
        noise = draw(noise_key, like, config.distribution, config.noise_scale)
        scored = jnp.isfinite(state.score)  # an unscored current is scored as it is
        candidate = jax.tree.map(lambda p, n: p + jnp.where(scored, n, 0.0), state.params, noise)
        out = play(env, env_params, lambda obs, _: sign_action(network.apply(candidate, obs)),
                   play_key, config.num_envs, config.max_steps)
        new = keep_better(state, candidate, out["return"].mean(), key)
        return new, {**episode_stats(out["return"], out["length"]), "best_return": new.score,
                     "accepted": (new.score > state.score).astype(jnp.float32)}

    init = search_init(like, lambda config: config.init_scale)
    return episodic_trainer(init, update, config.num_candidates, network, env, env_params,
                            unscored)
