"""REINFORCE with a baseline, for a logistic policy over two actions, as pure functions of [T, E]
(time x episode) arrays of whole episodes (`jaxrl.agents.base.play(..., record=True)`): `alive`
is 1 for the steps of an episode, 0 after it ended."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def logistic_log_prob(score: jax.Array, action: jax.Array) -> jax.Array:
    """log pi(action | s) with pi(1 | s) = sigmoid(score), pi(0 | s) = sigmoid(-score)."""
    return jax.nn.log_sigmoid(jnp.where(action == 1, score, -score))


def returns_to_go(rewards: jax.Array, alive: jax.Array, gamma) -> jax.Array:
    """G_t = sum_{k >= t} gamma^(k - t) r_k over the rest of the episode ([T, E]; 0 after it)."""
    def back(g, x):
        reward, live = x
        g = (reward + gamma * g) * live
        return g, g

    _, returns = jax.lax.scan(back, jnp.zeros(rewards.shape[1:]), (rewards, alive), reverse=True)
    return returns


def time_baseline(returns: jax.Array, alive: jax.Array) -> jax.Array:
    """b_t: the mean of G_t over the episodes still running at step t ([T]; 0 where none is)."""
    count = alive.sum(axis=1)
    return jnp.where(count > 0, (returns * alive).sum(axis=1) / jnp.maximum(count, 1), 0.0)


def reinforce_loss(params, score_fn: Callable, episodes: dict, gamma) -> tuple[jax.Array, dict]:
    """-(1/E) sum_e sum_t alive log pi(a_t | s_t) (G_t - b_t), whose gradient is REINFORCE's
    estimate of minus the policy gradient, the advantages held constant. `episodes`: [T, E]
    "obs" (with trailing obs axes), "action", "reward", "alive"; `score_fn(params, obs)` gives
    the logistic policy's scores."""
    alive = episodes["alive"]
    returns = returns_to_go(episodes["reward"], alive, gamma)
    advantage = jax.lax.stop_gradient(returns - time_baseline(returns, alive)[:, None])
    score = score_fn(params, episodes["obs"])
    log_prob = logistic_log_prob(score, episodes["action"])
    loss = -(alive * log_prob * advantage).sum() / alive.shape[1]
    steps = jnp.maximum(alive.sum(), 1)
    p = jax.nn.sigmoid(score)
    entropy = -(p * jax.nn.log_sigmoid(score) + (1 - p) * jax.nn.log_sigmoid(-score))
    return loss, {"advantage_rms": jnp.sqrt((alive * advantage**2).sum() / steps),
                  "entropy": jax.lax.stop_gradient((alive * entropy).sum() / steps)}
