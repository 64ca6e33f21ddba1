"""The LAPACK-free orthogonal initialiser, and the vmapped-QR deadlock it avoids."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.nets import orthogonal

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


def test_vmapped_orthogonal_init_in_a_training_like_program_finishes():
    """Regression for the jax 0.10.2 CPU deadlock seen with a batched LAPACK QR inside a vmapped
    PPO program; run in a subprocess so a hang fails this test instead of the suite."""
    from conftest import run_python

    out = run_python("""
import jax, jax.numpy as jnp
from jaxrl.agents.ppo import PPOConfig, make_train
import envs
env, params = envs.make('CartPole-v1')
config = PPOConfig(total_steps=4 * 32 * 2, num_envs=4, num_steps=32, hidden_sizes=(64, 64))
train = jax.jit(jax.vmap(make_train(config, env, params), in_axes=(None, 0)))
_, metrics = train(config, jax.random.split(jax.random.PRNGKey(0), 4))
print(jax.block_until_ready(metrics['entropy']).shape)
""", timeout=180)
    assert "(4, 2)" in out
