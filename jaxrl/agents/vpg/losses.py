"""VPG's two losses on one rollout: the policy gradient with standardised GAE advantages, and the
value function's squared error against the GAE value targets."""
from __future__ import annotations

from jaxrl.agents.onpolicy import normalized


def vpg_policy_loss(params, apply_fn, batch):
    """-mean(A log pi(a|s)), A the batch's advantages standardised; its gradient is minus the
    policy-gradient estimate. Returns (loss, metrics)."""
    dist, _ = apply_fn(params, batch["obs"])
    loss = -(normalized(batch["advantage"]) * dist.log_prob(batch["action"])).mean()
    return loss, {"policy_loss": loss, "entropy": dist.entropy().mean()}


def value_loss(params, apply_fn, batch):
    """mean((V(s) - target)^2): the critic's regression on the value targets (VPG, TRPO)."""
    _, value = apply_fn(params, batch["obs"])
    return ((value - batch["target"]) ** 2).mean()
