"""PPO end to end: determinism, vmapped equals lone, no recompilation across float sweeps, and
learning judged by IQM over vmapped seeds."""
import jax
import numpy as np
import pytest

import envs
from jaxrl.claims import CLAIMS
from jaxrl.agents.ppo import PPOConfig, make_train
from jaxrl.runner import run, seed_key
from jaxrl.runner.plan import stack_configs

pytestmark = pytest.mark.timeout(300)


def test_same_key_same_result_and_vmapped_equals_lone(tiny_ppo):
    env, params = envs.make("CartPole-v1")
    train = make_train(tiny_ppo, env, params)
    seeds = np.arange(4)
    keys = jax.vmap(seed_key)(seeds)
    _, batched = jax.jit(jax.vmap(train, in_axes=(None, 0)))(tiny_ppo, keys)
    lone = jax.jit(train)
    for i in (0, 3):
        _, m1 = lone(tiny_ppo, seed_key(i))
        _, m2 = lone(tiny_ppo, seed_key(i))
        for k in m1:
            np.testing.assert_array_equal(m1[k], m2[k])  # same key, bit-identical
            np.testing.assert_allclose(batched[k][i], m1[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_float_sweep_does_not_recompile(tiny_ppo):
    env, params = envs.make("CartPole-v1")
    traces = []
    inner = make_train(tiny_ppo, env, params)

    def train(config, key):
        traces.append(1)
        return inner(config, key)

    fn = jax.jit(jax.vmap(train))
    key = jax.vmap(seed_key)(np.arange(2))
    for lr, ent in [(1e-3, 0.0), (3e-4, 0.01), (1e-4, 0.05)]:
        configs = stack_configs([tiny_ppo.replace(lr=lr, ent_coef=ent),
                                 tiny_ppo.replace(lr=lr * 2, gamma=0.9)])
        _, metrics = fn(configs, key)
    assert len(traces) == 1
    # ...and the traced learning rate really is used: different rates, different updates.
    assert not np.allclose(metrics["approx_kl"][0], metrics["approx_kl"][1])
    # reward_scaling (traced too) scales what is learned from, not the returns reported: the
    # first rollouts (same params, same key) report the same returns, the value losses differ
    configs = stack_configs([tiny_ppo, tiny_ppo.replace(reward_scaling=10.0)])
    _, metrics = fn(configs, jax.vmap(seed_key)(np.zeros(2, int)))
    assert len(traces) == 1
    np.testing.assert_array_equal(metrics["episode_return_mean"][0, 0], metrics["episode_return_mean"][1, 0])
    assert metrics["value_loss"][1, 0] > 10 * metrics["value_loss"][0, 0]


@pytest.mark.timeout(600)
def test_ppo_learns_cartpole():
    """PureJaxRL's CartPole settings reach the 500 cap; require IQM >= 450 over 8 seeds."""
    CLAIMS["ppo/CartPole-v1"].check(range(8))


@pytest.mark.timeout(600)
def test_ppo_learns_pendulum():
    """Continuous PPO on Pendulum-v1. A random policy scores about -1200; RLlib's tuned PPO example
    stops at -400 within 400k steps, and these settings reached IQM -201 at 400k and about -300
    at 300k (8 seeds); require IQM >= -400 at 300k steps over 8 seeds."""
    CLAIMS["ppo/Pendulum-v1"].check(range(8))


def test_ppo_runs_on_a_brax_mjx_env():
    """Continuous PPO end to end on brax/inverted_pendulum (MJX backend): shapes, finite numbers,
    episodes recorded. Tiny: MJX on this CPU is slow to compile and to step."""
    config = PPOConfig(total_steps=2 * 8 * 32, num_envs=8, num_steps=32, update_epochs=1,
                       num_minibatches=2, hidden_sizes=(16,))
    results = run("ppo", "brax/inverted_pendulum", [config], range(2), progress=None)
    assert results.metrics["entropy"].shape == (1, 2, 2)
    assert np.isfinite(results.metrics["value_loss"]).all() and not results.diverged.any()
    assert results.metrics["episode_return_count"].sum() > 0  # the pendulum falls: episodes end
