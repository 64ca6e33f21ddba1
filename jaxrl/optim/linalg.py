"""Small dense symmetric positive-definite solves in plain jnp ops, without LAPACK.

jax 0.10.2's CPU LAPACK calls (Cholesky, triangular solve, inverse, ...) split a large enough
batched (vmapped) call across XLA's intra-op thread pool and block waiting on it; with as many
such calls ready at once as there are cores (two layers' K-FAC inverses, vmapped over seeds, on a
2-core CPU) every pool thread blocks and the process deadlocks (see README, "Notes and hazards").
A column-by-column Cholesky and row-by-row triangular solves, each a `fori_loop` of matrix-vector
products, compute the same factor and solutions (in O(n) sequential steps) with plain XLA ops; an
inverse is Gauss-Jordan elimination, n rank-1 updates."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def cholesky(m: jax.Array) -> jax.Array:
    """Lower-triangular L [n, n] with L L^T = m for a symmetric positive-definite m [n, n]."""
    n = m.shape[0]
    rows = jnp.arange(n)
    tiny = jnp.finfo(m.dtype).tiny

    def column(j, lower):
        # Columns j.. of `lower` are still zero, so this subtracts sum_{k<j} L[:, k] L[j, k].
        v = m[:, j] - lower @ lower[j]
        return lower.at[:, j].set(jnp.where(rows >= j, v / jnp.sqrt(jnp.maximum(v[j], tiny)), 0.0))

    return jax.lax.fori_loop(0, n, column, jnp.zeros_like(m))


def cho_solve(lower: jax.Array, b: jax.Array) -> jax.Array:
    """x with L L^T x = b, for L from `cholesky`; b is [n] or [n, k]."""
    n = lower.shape[0]

    def forward(i, y):  # L y = b; rows i.. of y are still zero
        return y.at[i].set((b[i] - lower[i] @ y) / lower[i, i])

    y = jax.lax.fori_loop(0, n, forward, jnp.zeros_like(b))

    def backward(t, x):  # L^T x = y, from the last row up; rows ..i of x are still zero
        i = n - 1 - t
        return x.at[i].set((y[i] - lower[:, i] @ x) / lower[i, i])

    return jax.lax.fori_loop(0, n, backward, jnp.zeros_like(b))


def spd_solve(m: jax.Array, b: jax.Array) -> jax.Array:
    """m^-1 b for a symmetric positive-definite m [n, n]; b is [n] or [n, k]."""
    return cho_solve(cholesky(m), b)


def spd_inverse(m: jax.Array) -> jax.Array:
    """m^-1 for a symmetric positive-definite m [n, n] by Gauss-Jordan elimination in place,
    without pivoting (stable for SPD matrices: every pivot is a positive Schur-complement diagonal):
    one loop of n rank-1 updates, half the sequential steps of a Cholesky factor followed by a
    triangular inverse, which is what the loop count costs on a CPU. Symmetrised at the end."""
    n = m.shape[0]
    rows = jnp.arange(n)
    tiny = jnp.finfo(m.dtype).tiny

    def eliminate(k, a):
        pivot = jnp.maximum(a[k, k], tiny)
        row, col = a[k] / pivot, a[:, k]
        in_row, in_col = (rows == k)[:, None], (rows == k)[None, :]
        return jnp.where(in_row & in_col, 1.0 / pivot,
                         jnp.where(in_row, row[None, :],
                                   jnp.where(in_col, -col[:, None] / pivot,
                                             a - col[:, None] * row[None, :])))

    inverse = jax.lax.fori_loop(0, n, eliminate, m)
    return 0.5 * (inverse + inverse.T)


def spd_inverse_many(ms: list[jax.Array]) -> list[jax.Array]:
    """The inverses of several small SPD matrices of any sizes. Matrices of similar size (each at
    least half the largest of its group) are computed together: padded to the group's largest size
    with an identity block (inverse(blockdiag(m, I)) = blockdiag(m^-1, I)), the stack goes through
    one batched `spd_inverse`, so the sequential loops run once per group instead of once per
    matrix, while a large factor (a 401 x 401 input factor next to 65 x 65 ones) is not made to
    pad every small one to its size."""
    order = sorted(range(len(ms)), key=lambda i: -ms[i].shape[0])
    groups: list[list[int]] = []
    for i in order:
        if groups and 2 * ms[i].shape[0] >= ms[groups[-1][0]].shape[0]:
            groups[-1].append(i)
        else:
            groups.append([i])
    out: list[jax.Array | None] = [None] * len(ms)
    for group in groups:
        n = ms[group[0]].shape[0]
        if len(group) == 1:
            out[group[0]] = spd_inverse(ms[group[0]])
            continue

        def pad(m):
            d = m.shape[0]
            ones = jnp.concatenate([jnp.zeros(d, m.dtype), jnp.ones(n - d, m.dtype)])
            return jnp.pad(m, ((0, n - d), (0, n - d))) + jnp.diag(ones)

        inverses = jax.vmap(spd_inverse)(jnp.stack([pad(ms[i]) for i in group]))
        for k, i in enumerate(group):
            d = ms[i].shape[0]
            out[i] = inverses[k, :d, :d]
    return out
