"""DQN's formulas, apart from the training loop: the (double) Q-learning TD target, where a
terminated transition does not bootstrap and a truncated one does, and the TD loss."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def td_target(reward, next_q_target, next_q_online, terminated, gamma, double: bool):
    """One-step TD target. `reward`, `terminated`: [B]; `next_q_*`: [B, A], Q values of the
    observation that followed the step *before* any auto-reset (the final observation of an episode).

    Vanilla: r + gamma * max_a Q_target(s', a). Double (`double`, static): the online network picks
    the action, the target network values it, r + gamma * Q_target(s', argmax_a Q_online(s', a)).
    A terminated step does not bootstrap; a truncated one does (pass only `terminated`). Returns [B]."""
    if double:
        next_action = jnp.argmax(next_q_online, axis=-1)
        next_value = jnp.take_along_axis(next_q_target, next_action[..., None], axis=-1)[..., 0]
    else:
        next_value = next_q_target.max(axis=-1)
    return reward + gamma * (1.0 - terminated.astype(next_value.dtype)) * next_value


def dqn_loss(params, target_params, apply_fn, batch, gamma, double: bool, loss: str):
    """TD loss on a batch dict with obs, action, reward, next_obs, terminated (each [B, ...]).

    `target_params=None` means no target network: targets come from the online network itself
    (under stop_gradient, as they always are). `loss` (static) is "mse" (mean squared TD error) or
    "huber" (Huber with delta 1). Returns (loss, metrics); metrics["td"] [B] is the TD error
    q - target itself (for preconditioners that need it), the others are scalars."""
    need_online_next = double or target_params is None
    if need_online_next:  # one forward pass over obs and next_obs together
        both = apply_fn(params, jnp.concatenate([batch["obs"], batch["next_obs"]]))
        q, next_q_online = jnp.split(both, 2)
    else:
        q, next_q_online = apply_fn(params, batch["obs"]), None
    next_q_target = next_q_online if target_params is None else apply_fn(target_params, batch["next_obs"])
    target = jax.lax.stop_gradient(td_target(batch["reward"], next_q_target, next_q_online,
                                             batch["terminated"], gamma, double))
    q_taken = jnp.take_along_axis(q, batch["action"][..., None].astype(jnp.int32), axis=-1)[..., 0]
    td = q_taken - target
    if loss == "huber":
        td_loss = optax.huber_loss(q_taken, target, delta=1.0).mean()
    else:
        td_loss = jnp.mean(td**2)
    return td_loss, {"td_loss": td_loss, "q_mean": q_taken.mean(), "td": td}
