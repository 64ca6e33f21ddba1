"""GAE and PPO loss against plain Python/NumPy references; termination versus truncation."""
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.agents.onpolicy import compute_gae

pytestmark = pytest.mark.timeout(120)


def gae_reference(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Per-env backward loop, written from the definition."""
    T, E = rewards.shape
    adv = np.zeros((T, E))
    for e in range(E):
        running = 0.0
        for t in reversed(range(T)):
            bootstrap = 0.0 if terminated[t, e] else gamma * next_values[t, e]
            delta = rewards[t, e] + bootstrap - values[t, e]
            if terminated[t, e] or truncated[t, e]:
                running = delta
            else:
                running = delta + gamma * lam * running
            adv[t, e] = running
    return adv, adv + values


def test_gae_matches_python_loop():
    rng = np.random.default_rng(0)
    T, E = 37, 5
    rewards, values, next_values = (rng.normal(size=(T, E)) for _ in range(3))
    terminated = rng.random((T, E)) < 0.1
    truncated = (rng.random((T, E)) < 0.1) & ~terminated
    adv, target = compute_gae(jnp.asarray(rewards), jnp.asarray(values), jnp.asarray(next_values),
                              jnp.asarray(terminated, jnp.float32),
                              jnp.asarray(terminated | truncated, jnp.float32), 0.97, 0.9)
    ref_adv, ref_target = gae_reference(rewards, values, next_values, terminated, truncated, 0.97, 0.9)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(target, ref_target, rtol=1e-5, atol=1e-5)


def test_termination_does_not_bootstrap_truncation_does():
    # One step of reward 1 that ends an episode whose final observation has value 10.
    gamma = 0.9
    args = dict(rewards=jnp.ones((1, 2)), values=jnp.zeros((1, 2)), next_values=jnp.full((1, 2), 10.0))
    terminated = jnp.asarray([[1.0, 0.0]])  # env 0 terminated, env 1 truncated
    done = jnp.asarray([[1.0, 1.0]])
    _, target = compute_gae(**args, terminated=terminated, done=done, gamma=gamma, gae_lambda=0.95)
    np.testing.assert_allclose(target, [[1.0, 1.0 + gamma * 10.0]])


def test_done_cuts_the_trace():
    # A truncation at t=0 must not let the advantage of step 1 leak back into step 0.
    r = jnp.asarray([[0.0], [5.0]])
    v = jnp.zeros((2, 1))
    nv = jnp.zeros((2, 1))
    adv, _ = compute_gae(r, v, nv, jnp.zeros((2, 1)), jnp.asarray([[1.0], [0.0]]), 0.99, 1.0)
    np.testing.assert_allclose(adv[:, 0], [0.0, 5.0])
