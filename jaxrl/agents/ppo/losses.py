"""PPO's formula, apart from the training loop: the clipped surrogate loss with clipped value loss
and entropy bonus (GAE is the on-policy family's, `jaxrl.agents.onpolicy.compute_gae`)."""
from __future__ import annotations

import jax.numpy as jnp

from jaxrl.agents.onpolicy import normalized


def ppo_loss(params, apply_fn, batch, clip_eps, vf_coef, ent_coef, normalize_advantages=True):
    """Clipped PPO objective on a minibatch dict with obs, action, log_prob, value, advantage,
    target (each [B, ...]); advantages are standardised per minibatch unless told not to.
    Returns (loss, metrics)."""
    dist, value = apply_fn(params, batch["obs"])
    log_prob = dist.log_prob(batch["action"])
    log_ratio = log_prob - batch["log_prob"]
    ratio = jnp.exp(log_ratio)
    adv = batch["advantage"]
    if normalize_advantages:
        adv = normalized(adv)
    policy_loss = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * adv).mean()
    value_clipped = batch["value"] + jnp.clip(value - batch["value"], -clip_eps, clip_eps)
    value_loss = 0.5 * jnp.maximum((value - batch["target"]) ** 2,
                                   (value_clipped - batch["target"]) ** 2).mean()
    entropy = dist.entropy().mean()
    loss = policy_loss + vf_coef * value_loss - ent_coef * entropy
    metrics = {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy,
               "approx_kl": ((ratio - 1) - log_ratio).mean(),
               "clip_fraction": (jnp.abs(ratio - 1) > clip_eps).mean()}
    return loss, metrics
