"""A2C's loss on one rollout: the policy gradient with the rollout's advantages (n-step returns
minus V), the squared error of V against the returns, and an entropy bonus."""
from __future__ import annotations

from jaxrl.agents.onpolicy import normalized


def a2c_loss(params, apply_fn, batch, vf_coef, ent_coef, normalize_advantages=False):
    """-mean(A log pi(a|s)) + vf_coef mean((V(s) - R)^2) - ent_coef mean(entropy), on a batch
    dict with obs, action, advantage, target (the return R = advantage + V at acting time).
    Returns (loss, metrics)."""
    dist, value = apply_fn(params, batch["obs"])
    adv = normalized(batch["advantage"]) if normalize_advantages else batch["advantage"]
    policy_loss = -(adv * dist.log_prob(batch["action"])).mean()
    value_loss = ((value - batch["target"]) ** 2).mean()
    entropy = dist.entropy().mean()
    loss = policy_loss + vf_coef * value_loss - ent_coef * entropy
    return loss, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}
