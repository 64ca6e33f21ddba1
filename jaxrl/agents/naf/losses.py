"""NAF's formulas, apart from the training loop (Gu et al. 2016, "Continuous Deep Q-Learning with
Model-based Acceleration"): the quadratic-advantage Q function

    Q(s, a) = V(s) - (a - mu(s))^T P(s) (a - mu(s)) / 2,   P(s) = L(s) L(s)^T,

with L lower-triangular and a positive (exp) diagonal, or diagonal; the TD target, where a
terminated transition does not bootstrap and a truncated one does, bootstrapping from the target
network's V (max_a Q(s', a) = V(s') since the advantage is <= 0 and 0 at a = mu); and the TD loss."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.agents.continuous import td_target  # noqa: F401 (re-exported: naf.td_target)


def num_l_entries(action_dim: int, diagonal_p: bool) -> int:
    """How many network outputs parameterise L: A (diagonal) or A(A+1)/2 (lower triangle)."""
    return action_dim if diagonal_p else action_dim * (action_dim + 1) // 2


def lower_triangular(l_entries: jax.Array, action_dim: int) -> jax.Array:
    """[..., A(A+1)/2] -> L [..., A, A]: the entries fill the lower triangle row by row
    (np.tril_indices order: (0,0), (1,0), (1,1), (2,0), ...); diagonal entries go through exp, so
    L is invertible and P = L L^T positive definite."""
    rows, cols = np.tril_indices(action_dim)
    entries = jnp.where(rows == cols, jnp.exp(l_entries), l_entries)
    L = jnp.zeros(l_entries.shape[:-1] + (action_dim, action_dim), l_entries.dtype)
    return L.at[..., rows, cols].set(entries)


def naf_advantage(mu: jax.Array, l_entries: jax.Array, action: jax.Array) -> jax.Array:
    """A(s, a) = -(a - mu)^T P (a - mu) / 2 = -||L^T (a - mu)||^2 / 2. `mu`, `action`: [..., A];
    `l_entries`: [..., A(A+1)/2] (full L) or [..., A] (diagonal P = diag(exp(2 l))), told apart by
    their count (the two agree when A = 1). Returns [...]."""
    action_dim = mu.shape[-1]
    d = action - mu
    if l_entries.shape[-1] == action_dim:  # diagonal L (for A = 1 the same as the full one)
        y = jnp.exp(l_entries) * d
    elif l_entries.shape[-1] == num_l_entries(action_dim, False):
        y = jnp.einsum("...ij,...i->...j", lower_triangular(l_entries, action_dim), d)  # L^T d
    else:
        raise ValueError(f"l_entries has {l_entries.shape[-1]} entries; for {action_dim} action "
                         f"dims it needs {action_dim} (diagonal) or {num_l_entries(action_dim, False)}")
    return -0.5 * jnp.sum(y**2, axis=-1)


def naf_q_value(v: jax.Array, mu: jax.Array, l_entries: jax.Array, action: jax.Array) -> jax.Array:
    """Q(s, a) = V(s) + A(s, a) (see `naf_advantage`). `v`: [...]; returns [...]."""
    return v + naf_advantage(mu, l_entries, action)


def taken_q(params, apply_fn: Callable, batch: dict) -> jax.Array:
    """Q(obs, action) of a batch, [B]; `apply_fn(params, obs) -> (v [B], mu [B, A], l [B, n])`.
    This is the `q_fn` handed to a Fisher preconditioner."""
    v, mu, l_entries = apply_fn(params, batch["obs"])
    return naf_q_value(v, mu, l_entries, batch["action"])


def naf_loss(params, target_params, apply_fn: Callable, batch: dict, gamma):
    """Mean squared TD error on a batch dict with obs, action [B, A], reward, next_obs, terminated.
    The target uses the target network's V(s') under stop_gradient. Returns
    (loss, (metrics, dloss_dq)) where dloss_dq [B] = d(per-sample loss)/dQ = 2 (Q - target), the
    `td` a Fisher preconditioner expects (grads = J^T dloss_dq / B)."""
    v, mu, l_entries = apply_fn(params, batch["obs"])
    q = naf_q_value(v, mu, l_entries, batch["action"])
    next_v = apply_fn(target_params, batch["next_obs"])[0]
    target = jax.lax.stop_gradient(td_target(batch["reward"], next_v, batch["terminated"], gamma))
    td = q - target
    td_loss = jnp.mean(td**2)
    metrics = {"td_loss": td_loss, "q_mean": q.mean(), "v_mean": v.mean(),
               "advantage_mean": (q - v).mean()}
    return td_loss, (metrics, jax.lax.stop_gradient(2.0 * td))
