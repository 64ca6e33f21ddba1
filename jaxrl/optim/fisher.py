"""Fisher (Gauss-Newton) preconditioning for Q-learning as an optax GradientTransformation.

The Fisher is that of a unit-variance Gaussian on the taken action's Q value,
F = J^T J / B with J [B, P] the Jacobian of the batch's Q values q(s_i, a_i; theta): the
Gauss-Newton matrix of the squared TD loss with a stopped target. `empirical=True` swaps in the
empirical Fisher J^T diag(td^2) J / B (an ablation). The step is x ~= (F + damping I)^-1 g, scaled
by an ACKTR trust region, eta = min(eta_max, sqrt(2 delta / (x^T F x))), so the RMS change of the
batch's Q values is at most sqrt(2 delta) (to first order), and updates = -eta * x.

Interface (like `optax.GradientTransformationExtraArgs`):

    opt = fisher_preconditioner(solver="gram", damping=1e-3, eta_max=0.1, delta=1e-3)
    state = opt.init(params)
    (loss, td), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)  # loss = 0.5 mean(td^2)
    updates, state = opt.update(grads, state, params, q_fn=q_fn, batch=batch, td=td)

q_fn(params, batch) -> [B] taken-action Q values, a pure function; td [B] = q - target, so that
grads = J^T td / B (for another per-sample loss l(q_i), td_i = dl/dq_i). It composes with
`optax.chain`, which passes the keyword arguments on; the state is a pytree of arrays, so it vmaps
over seeds and checkpoints. Float hyperparameters may be traced values."""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from jaxrl.optim import kfac
from jaxrl.optim.cg import conjugate_gradient, make_fisher_matvec
from jaxrl.optim.linalg import spd_solve

PyTree = Any
SOLVERS = ("gram", "cg", "kfac", "diagonal")
KFAC_TRUST_REGIONS = ("exact", "factors")


class FisherState(NamedTuple):
    count: jax.Array                      # [] int32, updates done so far
    kfac: dict[str, kfac.KFACFactors]     # per dense layer; empty unless solver="kfac"


def fisher_preconditioner(solver: str = "gram", damping: float = 1e-3, eta_max: float = 1.0,
                          delta: float = 1e-3, *, empirical: bool = False, cg_iters: int = 10,
                          kfac_decay: float = 0.95, kfac_inverse_every: int = 10,
                          kfac_pi_damping: bool = True, kfac_stats_every: int = 1,
                          kfac_trust_region: str = "exact"
                          ) -> optax.GradientTransformationExtraArgs:
    """Natural-gradient step for Q-learning; see the module docstring for the interface.

    solver (static):
      "gram"      exact minibatch step in function space, x = S^T (S S^T + damping B I)^-1 u with
                  S = J (u = td), or diag(td) J (u = 1) if empirical: a B x B Cholesky solve
                  (plain jnp loops, jaxrl.optim.linalg: no LAPACK)
                  (or the equal P x P one, (S^T S + damping B I)^-1 S^T u, when P < B, where
                  the B x B system is singular up to the damping).
                  It builds x from `td`, not from the incoming `grads` (equal to J^T td / B), so
                  put it first in a chain.
      "cg"        `cg_iters` (static) conjugate-gradient steps on (F + damping I) x = grads with
                  matrix-free Fisher-vector products.
      "kfac"      per dense layer A^-1 dW G^-1 with moving-average factors (`kfac_decay`), inverses
                  refreshed every `kfac_inverse_every` (static) updates; see jaxrl.optim.kfac.
                  Its factors and the trust region's J x come from one forward and backward pass
                  (kfac.capture); a caller that has already made that pass (natural DQN computes
                  its gradient from it) passes it as `kfac_capture=` to `update`.
                  `kfac_stats_every` (static): the factors' statistics (a^T a, g^T g over the
                  batch) enter the moving averages only every that many updates (K-FAC's T1;
                  1 = every update). `kfac_trust_region` (static): "exact" measures x^T F x as
                  below; "factors" with the factors themselves, sum_l x_l^T (A_l (x) G_l) x_l
                  (ACKTR's choice; kfac.quadratic_form), which needs no pass over the batch.
      "diagonal"  x = grads / (diag(F) + damping): the cheap ablation.
    The trust region measures x^T F x with the true Fisher, ||J x||^2 / B, even when
    empirical=True, because it is what bounds the change of the Q values (kfac_trust_region=
    "factors" instead uses the factors, empirical ones if empirical=True). eta_max, delta, damping
    and kfac_decay may be traced (e.g. created inside jit from swept hyperparameters)."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if kfac_trust_region not in KFAC_TRUST_REGIONS:
        raise ValueError(f"kfac_trust_region must be one of {KFAC_TRUST_REGIONS}, got "
                         f"{kfac_trust_region!r}")
    for name, value in (("cg_iters", cg_iters), ("kfac_inverse_every", kfac_inverse_every),
                        ("kfac_stats_every", kfac_stats_every)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int (static), got {value!r}")
    for name, value in (("damping", damping), ("eta_max", eta_max), ("delta", delta)):
        if isinstance(value, (int, float)) and not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")

    def init(params: PyTree) -> FisherState:
        factors = kfac.init_factors(params) if solver == "kfac" else {}
        return FisherState(jnp.zeros([], jnp.int32), factors)

    def update(grads: PyTree, state: FisherState, params: PyTree | None = None, *,
               q_fn: Callable[[PyTree, Any], jax.Array], batch: Any, td: jax.Array,
               kfac_capture: dict | None = None, **_):
        if params is None:
            raise ValueError("fisher_preconditioner.update needs params (F depends on them)")
        q = lambda p: q_fn(p, batch)  # noqa: E731
        size = td.shape[0]
        weights = td if empirical else jnp.ones_like(td)  # scale of each sample's Jacobian row
        factors = state.kfac
        if solver in ("gram", "diagonal"):
            _, unravel = ravel_pytree(params)
            rows = weights[:, None] * jacobian_rows(q_fn, params, batch)  # [B, P]
            if solver == "gram":
                u = jnp.ones_like(td) if empirical else td  # rows^T u = J^T td = B grads
                if rows.shape[1] >= size:  # function space: B x B solve
                    x = rows.T @ spd_solve(rows @ rows.T + damping * size * jnp.eye(size), u)
                else:  # fewer parameters than samples: the same x from the P x P system
                    eye = jnp.eye(rows.shape[1])
                    x = spd_solve(rows.T @ rows + damping * size * eye, rows.T @ u)
                x = unravel(x)
            else:
                flat_grads, _ = ravel_pytree(grads)
                x = unravel(flat_grads / (jnp.mean(rows**2, axis=0) + damping))
        elif solver == "cg":
            fvp = make_fisher_matvec(q, params, lambda u: weights**2 * u / size)
            damped = lambda v: jax.tree.map(lambda f, v: f + damping * v, fvp(v), v)  # noqa: E731
            x = conjugate_gradient(damped, grads, cg_iters)
        else:
            captured = kfac_capture if kfac_capture is not None else kfac.capture(q_fn, params,
                                                                                   batch)[1]
            factors = kfac.update_factors(factors, captured, weights, state.count, kfac_decay,
                                          damping, kfac_inverse_every, kfac_pi_damping,
                                          kfac_stats_every)
            x = kfac.precondition(grads, factors)
        if solver == "kfac" and kfac_trust_region == "factors":
            xfx = kfac.quadratic_form(factors, x)
        else:
            if solver == "kfac":  # J x from the captured pass: no further pass through the network
                jx = kfac.directional_derivative(captured, x)
            else:
                jx = jax.jvp(q, (params,), (x,))[1]  # [B], first-order change of q per unit step
            xfx = jnp.mean(jx**2)
        xfx = jnp.maximum(xfx, jnp.finfo(xfx.dtype).tiny)
        eta = jnp.minimum(eta_max, jnp.sqrt(2 * delta / xfx))
        updates = jax.tree.map(lambda x, g: (-eta * x).astype(g.dtype), x, grads)
        return updates, FisherState(state.count + 1, factors)

    return optax.GradientTransformationExtraArgs(init, update)


def jacobian_rows(q_fn: Callable[[PyTree, Any], jax.Array], params: PyTree, batch: Any) -> jax.Array:
    """J [B, P]: row i the flattened gradient of q_fn(params, batch)[i], computed per sample (a
    vmapped gradient of q_fn on the one-sample batch i) in O(B) backward passes of one sample.
    jax.jacrev of the batch function would instead pull B one-hot cotangents back through the
    whole batch, O(B^2) work (20x slower at B = 128). Needs each sample's Q value to depend on
    that sample alone (true of Q networks; not of batch norm), and every leaf of `batch` to have
    the leading batch axis."""
    def row(sample):
        one = jax.tree.map(lambda x: x[None], sample)
        return ravel_pytree(jax.grad(lambda p: q_fn(p, one)[0])(params))[0]

    return jax.vmap(row)(batch)
