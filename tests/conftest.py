"""Shared test set-up: the persistent compilation cache (compiles dominate this suite's time on a
2-core CPU) and a tiny PPO config shared by the tests that only need *a* program, not learning."""
import os

import pytest

from jaxrl import enable_compilation_cache

enable_compilation_cache()

def slow(reason: str):
    """Skip unless JAXRL_SLOW_TESTS is set (`make test-slow`): for tests too long for the
    suite's 15-minute budget on the 2-core CI machine; `reason` says what still checks it."""
    return pytest.mark.skipif(not os.environ.get("JAXRL_SLOW_TESTS"),
                              reason=f"{reason}; `make test-slow` runs it")


RUN_FILES = ["config.json", "metrics.csv", "params", "params.sha256", "summary.json"]  # a finished run

TINY_PPO = dict(total_steps=2 * 4 * 16, num_envs=4, num_steps=16, update_epochs=2, num_minibatches=2,
                hidden_sizes=(16, 16))


@pytest.fixture
def tiny_ppo():
    from jaxrl.agents.ppo import PPOConfig

    return PPOConfig(**TINY_PPO)


def run_python(code: str, env: dict | None = None, timeout: float = 240) -> str:
    """Run `code` in a fresh interpreter (for XLA flags that must be set before jax imports)."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, **(env or {})},
                            cwd=os.path.dirname(os.path.dirname(__file__)))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def reproducible_run(train, config, seeds=(0, 2)):
    """Runs `train` alone for each seed twice (bit-identical) and all seeds 0..max vmapped in one
    program (equal to the lone runs up to float reassociation); returns the last seed's lone
    (final state, metrics)."""
    import jax
    import numpy as np

    from jaxrl.runner import seed_key

    keys = jax.vmap(seed_key)(np.arange(max(seeds) + 1))
    _, batched = jax.jit(jax.vmap(train, in_axes=(None, 0)))(config, keys)
    lone = jax.jit(train)
    for i in seeds:
        state, m1 = lone(config, seed_key(i))
        _, m2 = lone(config, seed_key(i))
        for k in m1:
            np.testing.assert_array_equal(m1[k], m2[k])  # same key, bit-identical
            np.testing.assert_allclose(batched[k][i], m1[k], rtol=1e-4, atol=1e-5, err_msg=k)
    return state, m1
