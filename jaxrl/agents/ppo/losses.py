"""PPO's formulas, apart from the training loop: GAE with termination/truncation, and the clipped
surrogate loss with clipped value loss and entropy bonus."""
from __future__ import annotations

import jax
import jax.numpy as jnp


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
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
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
