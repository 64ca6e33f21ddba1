"""TRPO's formulas (Schulman et al. 2015), each a pure function tested against a dense reference:
the surrogate objective, the policy's Fisher-vector product (the Hessian of the mean KL at the
current policy, through `jaxrl.optim.make_fisher_matvec`), the natural step scaled to the trust
region (conjugate gradient, `jaxrl.optim.conjugate_gradient`), and the backtracking line search."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxrl.nets import Categorical, DiagGaussian
from jaxrl.optim import conjugate_gradient, make_fisher_matvec

PyTree = Any


def surrogate(dist, action, old_log_prob, advantage) -> jax.Array:
    """L(theta) = mean(pi_theta(a|s) / pi_old(a|s) A): its gradient at theta_old is the policy
    gradient, and its change estimates the change of the expected return."""
    return (jnp.exp(dist.log_prob(action) - old_log_prob) * advantage).mean()


def policy_fisher_matvec(dist_fn: Callable[[PyTree], Any], params: PyTree) -> Callable:
    """v -> F v, F the Fisher of the policy over the batch, (1/B) sum_i J_i^T M_i J_i with J_i the
    Jacobian of sample i's distribution parameters and M_i their Fisher: for a categorical policy
    the logits' softmax Fisher diag(p) - p p^T; for the diagonal Gaussian the outputs (mean,
    log_std) with Fisher diag(1/sigma^2, 2). F is exactly the Hessian of the mean
    KL(pi_params || pi_theta) at theta = params, which is what TRPO's trust region bounds.

    `dist_fn(params)` gives the batch's distributions (`jaxrl.nets.Categorical` or
    `DiagGaussian`, batch axis first)."""
    dist = dist_fn(params)
    if isinstance(dist, Categorical):
        probs = jax.nn.softmax(dist.logits)
        outputs = lambda p: dist_fn(p).logits  # noqa: E731
        metric = lambda u: (probs * u - probs * jnp.sum(probs * u, -1, keepdims=True)  # noqa: E731
                            ) / u.shape[0]
    elif isinstance(dist, DiagGaussian):
        dim = dist.mean.shape[-1]
        inv_var = jnp.broadcast_to(jnp.exp(-2 * dist.log_std), dist.mean.shape)

        def outputs(p):
            d = dist_fn(p)
            return jnp.concatenate([d.mean, jnp.broadcast_to(d.log_std, d.mean.shape)], -1)

        metric = lambda u: jnp.concatenate([u[:, :dim] * inv_var, 2 * u[:, dim:]], -1  # noqa: E731
                                           ) / u.shape[0]
    else:
        raise TypeError(f"no Fisher for a {type(dist).__name__} policy")
    return make_fisher_matvec(outputs, params, metric)


def natural_step(fisher_matvec: Callable, grads: PyTree, max_kl, damping, cg_iters: int
                 ) -> tuple[PyTree, dict]:
    """The largest step along the natural gradient x ~= (F + damping I)^-1 g (cg_iters CG steps)
    that stays in the trust region to second order: beta x with 0.5 beta^2 x^T (F + damping) x =
    max_kl. Returns (step, metrics)."""
    damped = lambda v: jax.tree.map(lambda f, v: f + damping * v, fisher_matvec(v), v)  # noqa
    x = conjugate_gradient(damped, grads, cg_iters)
    xfx = sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(damped(x))))
    beta = jnp.sqrt(2 * max_kl / jnp.maximum(xfx, jnp.finfo(jnp.float32).tiny))
    step = jax.tree.map(lambda x: beta * x, x)
    expected = beta * sum(jnp.vdot(g, x) for g, x in zip(jax.tree.leaves(grads),
                                                           jax.tree.leaves(x)))
    return step, {"step_norm": beta * jnp.sqrt(sum(jnp.vdot(v, v) for v in jax.tree.leaves(x))),
                  "expected_improvement": expected}


def line_search(evaluate: Callable[[PyTree], tuple[jax.Array, jax.Array]], params: PyTree,
                step: PyTree, max_kl, backtrack_coef, backtrack_iters: int
                ) -> tuple[PyTree, dict]:
    """params + coef^k step for the first k in 0 .. backtrack_iters-1 whose objective improves on
    params' and whose KL from params is at most max_kl (`evaluate(p) -> (objective, kl)`), or
    params unchanged when none does. Candidates are tried in order and the search stops at the
    first accepted one (a while loop: under vmap over seeds it runs until every seed has
    accepted, and a seed that has keeps its result). Returns (params, metrics)."""
    base_objective, _ = evaluate(params)

    def untried(carry):
        k, accepted = carry[0], carry[1]
        return (k < backtrack_iters) & ~accepted

    def attempt(carry):
        k, _, new, fraction, kl, gain = carry
        f = jnp.asarray(backtrack_coef, jnp.float32) ** k
        candidate = jax.tree.map(lambda p, s: p + f * s, params, step)
        objective, kl_k = evaluate(candidate)
        ok = (objective > base_objective) & (kl_k <= max_kl) & jnp.isfinite(objective)
        pick = lambda a, b: jnp.where(ok, a, b)  # noqa: E731
        return (k + 1, ok, jax.tree.map(pick, candidate, new), pick(f, fraction), pick(kl_k, kl),
                pick(objective - base_objective, gain))

    zero = jnp.float32(0.0)
    _, accepted, new, fraction, kl, gain = jax.lax.while_loop(
        untried, attempt, (jnp.int32(0), jnp.bool_(False), params, zero, zero, zero))
    return new, {"line_search_accepted": accepted.astype(jnp.float32), "step_fraction": fraction,
                 "kl": kl, "surrogate_gain": gain}
