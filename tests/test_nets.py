"""The LAPACK-free orthogonal initialiser, the vmapped-QR deadlock it avoids, the activations."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.nets import ACTIVATIONS, MLP, orthogonal

pytestmark = pytest.mark.timeout(240)


@pytest.mark.parametrize("shape", [(4, 64), (64, 64), (64, 2), (3, 1)])
def test_orthogonal_is_orthogonal_and_equals_qr(shape):
    key = jax.random.PRNGKey(3)
    w = np.asarray(orthogonal(2.0)(key, shape), np.float64) / 2.0
    rows, cols = shape
    small = min(rows, cols)
    gram = w.T @ w if rows >= cols else w @ w.T
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-5)
    # Same matrix as the Q of NumPy's QR of the same Gaussian draw, signs fixed so diag(R) > 0.
    a = np.asarray(jax.random.normal(key, (max(rows, cols), small)), np.float64)
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    np.testing.assert_allclose(w, q if rows >= cols else q.T, atol=1e-4)


def test_vmapped_orthogonal_init_does_not_deadlock():
    """Regression for the jax 0.10.2 CPU deadlock: jaxlib runs a batched LAPACK call (the QR of
    `jax.nn.initializers.orthogonal`) whose work is >= 2e5 flop by scheduling chunks on XLA's
    intra-op pool and blocking on them; the actor's and critic's 64x64 QRs are independent, so
    on 2 cores both pool threads block and nothing runs the chunks. With the stock initialiser
    this init-only program hung in 3 of 3 tries (and 6 of 6 in an earlier study) under vmap over
    2 seeds; ours uses no LAPACK.
    Run in a subprocess so a hang fails this test instead of the suite."""
    from conftest import run_python

    out = run_python("""
import jax, jax.numpy as jnp
from jaxrl.nets import orthogonal  # jax.nn.initializers.orthogonal hung here 3 of 3 tries
init_fn = orthogonal(jnp.sqrt(2.0))
def init(key):  # actor and critic layers of a 64x64 PPO network
    shapes = [(4, 64), (64, 64), (64, 2), (4, 64), (64, 64), (64, 1)]
    return sum(init_fn(k, s).sum() for k, s in zip(jax.random.split(key, 6), shapes))
for seeds in (2, 4, 2):
    out = jax.block_until_ready(jax.jit(jax.vmap(init))(jax.random.split(jax.random.PRNGKey(0), seeds)))
print(out.shape[0])
""", env={"JAXRL_CPU_DEVICES": "1"}, timeout=90)
    assert out.strip().endswith("2")


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_listed_activation_is_the_flax_function(activation):
    """MLP's hidden activation is flax.linen's function of that name (a plain reference)."""
    mlp = MLP((3,), 2, activation)
    x = jnp.linspace(-2.0, 2.0, 8).reshape(2, 4)
    params = mlp.init(jax.random.PRNGKey(0), x)["params"]
    hidden = x @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"]
    want = getattr(nn, activation)(hidden) @ params["Dense_1"]["kernel"] + params["Dense_1"]["bias"]
    np.testing.assert_allclose(mlp.apply({"params": params}, x), want, rtol=1e-5, atol=1e-6)
