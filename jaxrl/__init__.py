"""jaxrl: a JAX-native RL research sandbox. Whole training runs (rollouts plus updates) are pure
functions `train(config, key)`, jit-compiled and vmapped over seeds and hyperparameters."""
from jaxrl.compile_cache import enable_compilation_cache

__version__ = "0.1.0"
__all__ = ["enable_compilation_cache", "__version__"]
