"""Matrix-free conjugate gradient and Fisher (Gauss-Newton) vector products on parameter pytrees.

Shared by the Fisher preconditioner (`jaxrl.optim.fisher`) and natural-gradient policy methods
(TRPO). Iteration counts are static Python ints, so both jit and vmap (over seeds) without
data-dependent control flow."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

PyTree = Any


def _vdot(a: PyTree, b: PyTree) -> jax.Array:
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def conjugate_gradient(matvec: Callable[[PyTree], PyTree], b: PyTree, iters: int) -> PyTree:
    """Approximately solve `matvec(x) = b` for a symmetric positive-definite linear map by `iters`
    (static) conjugate-gradient steps from x = 0.

    `b` and x are pytrees of the same structure (a flat vector works too). Once the residual is
    exactly zero the remaining steps are no-ops rather than 0/0 = NaN, so a generous fixed `iters`
    is safe."""
    def step(_, carry):
        x, r, p, rs = carry
        ap = matvec(p)
        pap = _vdot(p, ap)
        alpha = jnp.where(pap > 0, rs / jnp.where(pap > 0, pap, 1.0), 0.0)
        x = jax.tree.map(lambda x, p: x + alpha * p, x, p)
        r = jax.tree.map(lambda r, ap: r - alpha * ap, r, ap)
        rs_new = _vdot(r, r)
        beta = jnp.where(rs > 0, rs_new / jnp.where(rs > 0, rs, 1.0), 0.0)
        p = jax.tree.map(lambda r, p: r + beta * p, r, p)
        return x, r, p, rs_new

    x0 = jax.tree.map(jnp.zeros_like, b)
    return jax.lax.fori_loop(0, iters, step, (x0, b, b, _vdot(b, b)))[0]


def make_fisher_matvec(f: Callable[[PyTree], jax.Array], params: PyTree,
                       output_metric: Callable[[jax.Array], jax.Array] | None = None
                       ) -> Callable[[PyTree], PyTree]:
    """v -> F v with F = J^T M J the Gauss-Newton / Fisher matrix of `f` at `params`.

    f: params -> outputs [B, ...] (for Q-learning the batch's taken-action Q values [B]);
    J = df/dparams. `output_metric` maps an output tangent u = J v to M u; the default u / B is the
    Fisher of a unit-variance Gaussian with mean f, averaged over the batch (the Gauss-Newton matrix
    of 0.5 * mean squared error). For a categorical policy pass the softmax Fisher of the logits,
    u -> (p * u - p * sum(p * u, -1, keepdims=True)) / B. `f` is linearised once, so repeated
    products (inside `conjugate_gradient`) do not redo the forward pass."""
    out, jvp = jax.linearize(f, params)
    vjp = jax.linear_transpose(jvp, params)
    metric = output_metric or (lambda u: u / out.shape[0])
    return lambda v: vjp(metric(jvp(v)))[0]


def fisher_vector_product(f: Callable[[PyTree], jax.Array], params: PyTree, v: PyTree,
                          output_metric: Callable[[jax.Array], jax.Array] | None = None) -> PyTree:
    """F v for one vector v (a pytree like `params`); see `make_fisher_matvec` for F."""
    return make_fisher_matvec(f, params, output_metric)(v)
