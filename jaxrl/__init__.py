"""jaxrl: a JAX-native RL research sandbox. Whole training runs (rollouts plus updates) are pure
functions `train(config, key)`, jit-compiled and vmapped over seeds and hyperparameters."""
import os


def _one_cpu_device_per_core() -> None:
    """XLA runs one CPU device's program on about one core, so on a CPU host jaxrl exposes one
    device per core (`$JAXRL_CPU_DEVICES` overrides, 1 turns it off) and the runner shards the
    batch of runs across them. It must happen before jax creates its CPU backend; an explicit
    --xla_force_host_platform_device_count in XLA_FLAGS wins. Accelerators are unaffected."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return
    count = int(os.environ.get("JAXRL_CPU_DEVICES", len(os.sched_getaffinity(0))))
    if count > 1:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


_one_cpu_device_per_core()

from jaxrl.compile_cache import enable_compilation_cache  # noqa: E402  (after the flag above)

if os.environ.get("JAXRL_CACHE_DIR") != "off":  # on by default, so repeat runs skip compiling
    enable_compilation_cache()

__version__ = "0.1.0"
__all__ = ["enable_compilation_cache", "load", "__version__"]


def __getattr__(name: str):
    """`jaxrl.load(RUN)`: a finished run's configs, results and trained policies
    (jaxrl.trained), imported on first use so that `import jaxrl` stays light."""
    if name == "load":
        from jaxrl.trained import load

        return load
    raise AttributeError(f"module 'jaxrl' has no attribute {name!r}")
