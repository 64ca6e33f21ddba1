"""The runner: chunked and sharded runs give the numbers of one unchunked run; results are
labelled by (config, seed, update)."""
import json

import numpy as np
import pytest

import jax

from conftest import TINY_PPO, run_python
from jaxrl.config import ConfigError
from jaxrl.runner import run

pytestmark = pytest.mark.timeout(300)


def assert_same_metrics(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5, err_msg=k)


@pytest.fixture(scope="module")
def unchunked():
    from jaxrl.agents.ppo import PPOConfig

    configs = [PPOConfig(**TINY_PPO), PPOConfig(**TINY_PPO).replace(lr=1e-3, clip_eps=0.1)]
    return configs, run("ppo", "CartPole-v1", configs, range(5), progress=None)


def test_results_are_labelled(unchunked):
    configs, results = unchunked
    assert results.metrics["entropy"].shape == (2, 5, 2)
    df = results.to_dataframe()
    assert len(df) == 2 * 5 * 2
    row = df[(df["config"] == 1) & (df["seed"] == 3) & (df["update"] == 1)].iloc[0]
    assert row.lr == pytest.approx(1e-3) and row.env_steps == 2 * 64
    assert row.entropy == pytest.approx(results.metrics["entropy"][1, 3, 1])
    summary = results.summary(config_index=1)
    for key in ("algo", "env", "num_seeds", "total_steps", "compile_seconds", "run_seconds",
                "env_steps_per_second", "devices", "final_return"):
        assert key in summary
    json.dumps(summary)


def test_chunked_equals_unchunked(unchunked):
    configs, results = unchunked
    chunked = run("ppo", "CartPole-v1", configs, range(5), max_batch=3, progress=None)
    assert chunked.chunk_size <= 3 and chunked.num_chunks == -(-10 // chunked.chunk_size) >= 4
    assert_same_metrics(chunked.metrics, results.metrics)


def test_sharded_over_four_cpu_devices_equals_unchunked(unchunked, tmp_path):
    configs, results = unchunked
    run_python(f"""
import numpy as np, jax
from jaxrl import enable_compilation_cache
from jaxrl.agents.ppo import PPOConfig
from jaxrl.runner import run
enable_compilation_cache()
assert len(jax.devices()) == 4
tiny = PPOConfig(**{TINY_PPO!r})
res = run("ppo", "CartPole-v1", [tiny, tiny.replace(lr=1e-3, clip_eps=0.1)], range(5), progress=None)
assert res.chunk_size == 12 and len(res.devices) == 4, (res.chunk_size, res.devices)
np.savez("{tmp_path}/sharded.npz", **res.metrics)
""", env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    sharded = dict(np.load(tmp_path / "sharded.npz"))
    assert_same_metrics(sharded, results.metrics)


def test_chunks_follow_the_compiled_programs_memory(unchunked, monkeypatch):
    """With a memory budget too small for the whole batch, the runner halves the chunk (from the
    compiled program's memory analysis) until it fits, and the numbers do not change."""
    import jaxrl.runner.loop as loop

    configs, results = unchunked
    seen = []
    real = loop.compiled_bytes

    def spy(compiled):  # the real figure is measured; the budget sees one unit per run
        seen.append(real(compiled))
        return jax.tree.leaves(compiled.in_avals)[0].shape[0]

    n_dev = len(jax.local_devices())
    monkeypatch.setattr(loop, "compiled_bytes", spy)
    monkeypatch.setattr(loop, "memory_budget", lambda device: n_dev)  # one run per device
    squeezed = run("ppo", "CartPole-v1", configs, range(5), progress=None)
    assert seen[0] > 0 and len(seen) >= 2  # measured, then halved at least once
    assert squeezed.chunk_size == n_dev  # down to one run per device
    assert_same_metrics(squeezed.metrics, results.metrics)

    # When even one run per device does not fit: refused with the sizes, nothing run.
    monkeypatch.setattr(loop, "memory_budget", lambda device: n_dev - 1)
    with pytest.raises(ConfigError, match=f"one chunk of {n_dev} runs needs .* use a smaller"):
        run("ppo", "CartPole-v1", configs, range(5), progress=None, max_batch=n_dev)


def test_a_diverging_seed_is_flagged_and_leaves_the_others_alone(unchunked):
    """A learning rate of 1e30 blows one config's params up; the other config's seeds are
    untouched and nothing else is flagged."""
    configs, results = unchunked
    blown = [configs[0], configs[1].replace(lr=1e30, max_grad_norm=1e30)]
    mixed = run("ppo", "CartPole-v1", blown, range(5), progress=None)
    assert not results.diverged.any()
    assert mixed.diverged[1].all() and not mixed.diverged[0].any()
    for k in results.metrics:
        np.testing.assert_allclose(mixed.metrics[k][0], results.metrics[k][0], rtol=1e-4, atol=1e-5)
    assert mixed.summary(config_index=1)["diverged_seeds"] == [0, 1, 2, 3, 4]


def test_greedy_evaluation_matches_a_plain_loop():
    """`evaluate` plays the first episode of each fresh env with the given policy; compare with
    stepping gymnax's CartPole by hand with the same keys and a fixed policy. An env reporting
    `info["success"]` (here: the cart ends its episode right of the centre) also gets the
    fraction of episodes whose last step succeeded."""
    import jax
    import jax.numpy as jnp

    import envs
    from jaxrl.agents.base import evaluate

    class Succeeds(envs.Wrapper):
        def step(self, key, state, action, params):
            out = self.env.step(key, state, action, params)
            return (*out[:5], {**out[5], "success": out[5]["final_observation"][0] > 0})

    env, params = envs.make("CartPole-v1")
    policy = lambda obs: (obs[..., 2] > 0).astype(jnp.int32)  # push toward the pole's lean
    key, n = jax.random.PRNGKey(7), 8
    out = jax.jit(lambda k: evaluate(env, params, policy, k, n, 500))(key)
    with_success = jax.jit(lambda k: evaluate(Succeeds(env), params, policy, k, n, 500))(key)
    assert "eval_success_mean" not in out
    reset_key, step_key = jax.random.split(key)
    step_keys = jax.random.split(step_key, 500)
    lengths, returns, successes = [], [], []
    for e, k in enumerate(jax.random.split(reset_key, n)):
        obs, state = env.reset(k, params)
        total, t = 0.0, 0
        while t < 500:
            obs, state, r, term, trunc, info = env.step(jax.random.split(step_keys[t], n)[e], state,
                                                         policy(obs), params)
            total, t = total + float(r), t + 1
            if bool(term) or bool(trunc):
                break
        lengths.append(t)
        returns.append(total)
        successes.append(float(info["final_observation"][0] > 0))
    np.testing.assert_allclose(out["eval_length_mean"], np.mean(lengths))
    np.testing.assert_allclose(out["eval_return_mean"], np.mean(returns))
    assert 0 < np.mean(successes) < 1  # both outcomes occur, so the check can fail
    np.testing.assert_allclose(with_success["eval_success_mean"], np.mean(successes))
    np.testing.assert_allclose(with_success["eval_return_mean"], np.mean(returns))


def test_eval_every_and_progress(unchunked):
    configs, results = unchunked
    lines = []
    config = configs[0].replace(total_steps=64 * 6)
    evaluated = run("ppo", "CartPole-v1", [config], range(2), eval_every=3, eval_episodes=2,
                    progress=lines.append)
    ev = evaluated.metrics["eval_return_mean"][0]
    assert np.isnan(ev[:, [0, 1, 3, 4]]).all() and np.isfinite(ev[:, [2, 5]]).all()
    assert (ev[:, [2, 5]] >= 1).all()
    assert any("update 6/6 (100%)" in line for line in lines), lines
    assert evaluated.summary()["final_return"]["eval"]["per_seed"] == list(ev[:, 5])


def test_tensorboard_logs(unchunked, tmp_path):
    _, results = unchunked
    results.to_tensorboard(str(tmp_path))
    files = list((tmp_path / "config_1").glob("events.out.tfevents.*"))
    assert len(files) == 1 and files[0].stat().st_size > 500
