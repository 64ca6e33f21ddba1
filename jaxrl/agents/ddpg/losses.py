"""DDPG's formulas (Lillicrap et al. 2016), shared with TD3 (which runs N = 2 critics and a
smoothed target action through the same two functions):

    y = r + gamma (1 - terminated) min_i Q'_i(s', a'),   a' = mu'(s') (TD3: smoothed),
    actor loss = -mean_b Q_1(s, mu(s)),

with Q'_i the target critics and mu' the target actor; for one critic (DDPG) the min is Q'_1
itself. The critics' TD loss is `jaxrl.agents.continuous.critic_loss`."""
from __future__ import annotations

from typing import Callable

import jax.numpy as jnp

from jaxrl.agents.continuous import critic_loss, td_target


def deterministic_target(reward, next_q, terminated, gamma):
    """r + gamma (1 - terminated) min_i next_q_i; `next_q` [N, B] is the target critics' value of
    the target action at next_obs (the observation before any auto-reset: a truncated step
    bootstraps, a terminated one does not). Returns [B]."""
    return td_target(reward, jnp.min(next_q, axis=0), terminated, gamma)


def actor_loss(actor_params, actor_apply: Callable, critic_params, critics_apply: Callable, obs):
    """-mean Q_1(s, mu(s)): the first critic's value of the actor's action (the critics are
    constants here: only `actor_params` is differentiated by the caller). Returns (loss, metrics)."""
    q = critics_apply(critic_params, obs, actor_apply(actor_params, obs))[0]
    loss = -jnp.mean(q)
    return loss, {"actor_loss": loss}


__all__ = ["actor_loss", "critic_loss", "deterministic_target", "td_target"]
