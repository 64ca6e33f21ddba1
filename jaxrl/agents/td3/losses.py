"""TD3's formulas (Fujimoto et al. 2018): target policy smoothing,

    a' = clip(mu'(s') + clip(policy_noise * eps, -noise_clip, noise_clip), -1, 1),  eps ~ N(0, I),

in the normalised box, and the clipped double-Q target y = r + gamma (1 - terminated)
min(Q'_1, Q'_2)(s', a') with the actor loss -mean Q_1(s, mu(s)), which are DDPG's with two
critics (jaxrl.agents.ddpg.losses)."""
from __future__ import annotations

import jax.numpy as jnp

from jaxrl.agents.ddpg.losses import actor_loss, deterministic_target


def smoothed_target_action(mu, noise, policy_noise, noise_clip):
    """The smoothed target action; `mu` [..., A] in [-1, 1], `noise` standard normal like mu."""
    return jnp.clip(mu + jnp.clip(policy_noise * noise, -noise_clip, noise_clip), -1.0, 1.0)


__all__ = ["actor_loss", "deterministic_target", "smoothed_target_action"]
