"""Shared test set-up: the persistent compilation cache (compiles dominate this suite's time on a
2-core CPU) and a tiny PPO config shared by the tests that only need *a* program, not learning."""
import os

import pytest

from jaxrl import enable_compilation_cache

enable_compilation_cache()

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
