"""The persistent XLA compilation cache, on by default, so a repeated run skips compilation."""
from __future__ import annotations

import os
import tempfile
import warnings

import jax


def enable_compilation_cache(path: str | None = None) -> str | None:
    """Point JAX's persistent compilation cache at `path` (default $JAXRL_CACHE_DIR or
    ~/.cache/jaxrl/xla) and cache every program that took more than half a second to compile.
    `import jaxrl` calls this; JAXRL_CACHE_DIR=off (cold compiles, e.g. for benchmarks) makes it
    do nothing and return None."""
    if path is None and os.environ.get("JAXRL_CACHE_DIR") == "off":
        return None
    path = path or os.environ.get("JAXRL_CACHE_DIR") or os.path.expanduser("~/.cache/jaxrl/xla")
    try:  # a cache we cannot write is a slower run, never a failed one
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        warnings.warn(f"JAXRL_CACHE_DIR: cannot write the compilation cache at {path} "
                      f"({e.strerror}); compiling without it", stacklevel=2)
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
