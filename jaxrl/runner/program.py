"""The compiled programs of a plan. A run is (config, key, env params, initial params): env params
are None (the trainer's own) or, for a task family, the run's task table; initial params are
None (the agent's random init) or the params to fine-tune, put into the fresh state by the
agent's own `with_params`. Every run goes one way: `init` once, then `segment` programs of
updates start..start+n-1 (all of the same length but perhaps the last), vmapped over the runs of a
chunk and sharded over the devices, the update number unbatched (`Trainer.update`)."""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import NamedSharding

from jaxrl.agents.base import nonfinite
from jaxrl.config import ConfigError
from jaxrl.runner.plan import Plan


def init_fn(plan: Plan) -> Callable:
    def init(config, key, env_params, init_params):
        trainer = plan.trainer_for(env_params)
        state = trainer.init(config, key)
        return state if init_params is None else trainer.with_params(config, state, init_params)

    return init


def segment_fn(plan: Plan, num_updates: int, **segment_options) -> Callable:
    """`(config, state, env_params, start) -> (state, metrics [num_updates], diverged)`;
    diverged: some float of the state (params, optimizer state, ...) is NaN or inf. vmapped runs
    share no arithmetic, so a diverged run never affects the others."""
    def segment(config, state, env_params, start):
        state, metrics = plan.trainer_for(env_params).segment(num_updates, **segment_options)(
            config, state, start)
        return state, metrics, nonfinite(state)

    return segment


@dataclasses.dataclass
class Programs:
    """A plan's programs for chunks of `chunk` runs: `init(configs, keys, env_params,
    init_params) -> state` and `segment(n)(configs, state, env_params, start)` (compiled on
    first use for each segment length n; the state argument is donated)."""

    plan: Plan
    chunk: int
    sharding: NamedSharding
    inputs: tuple  # (configs, keys, env params, initial params), leaves [runs, ...] or None
    options: dict
    compile_seconds: float = 0.0
    compiles: int = 0  # training (segment) programs compiled
    _init: Any = None
    _segments: dict = dataclasses.field(default_factory=dict)

    def shapes(self, tree):
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct(
            (self.chunk,) + x.shape[1:], x.dtype, sharding=self.sharding), tree)

    def state_shapes(self):
        return self.shapes(jax.eval_shape(jax.vmap(init_fn(self.plan)), *self.inputs))

    @property
    def init(self):
        if self._init is None:
            t0 = time.perf_counter()
            self._init = jax.jit(jax.vmap(init_fn(self.plan)), out_shardings=self.sharding).lower(
                *self.shapes(self.inputs)).compile()
            self.compile_seconds += time.perf_counter() - t0
        return self._init

    def segment(self, n: int):
        if n not in self._segments:
            t0 = time.perf_counter()
            configs, _, env_params, _ = self.inputs
            self._segments[n] = jax.jit(
                jax.vmap(segment_fn(self.plan, n, **self.options), in_axes=(0, 0, 0, None)),
                out_shardings=self.sharding, donate_argnums=1).lower(
                self.shapes(configs), self.state_shapes(), self.shapes(env_params), 0).compile()
            self.compile_seconds += time.perf_counter() - t0
            self.compiles += 1
        return self._segments[n]


def one_run_outputs(plan: Plan, keep_params: bool, **segment_options) -> Callable:
    """What one whole run hands back to the host (metrics per update, kept params), for
    `jax.eval_shape` only (`check_host_memory`)."""
    def outputs(config, key, env_params, init_params):
        state = init_fn(plan)(config, key, env_params, init_params)
        state, metrics, _ = segment_fn(plan, plan.trainer.num_updates, **segment_options)(
            config, state, env_params, 0)
        return metrics, plan.trainer_for(env_params).params(state) if keep_params else None

    return outputs


def check_host_memory(one_run: Callable, args: tuple, n_runs: int) -> None:
    """Raise ConfigError, before anything is allocated, when the outputs of `n_runs` runs (each
    what `one_run(*args)` returns: metrics per update, kept params) exceed the host's budget."""
    out = jax.eval_shape(one_run, *args)
    per_run = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(out))
    budget = host_budget()
    if n_runs * per_run > budget:
        raise ConfigError(f"--seeds: {n_runs:,} runs would return {n_runs * per_run / 2**30:,.1f} "
                          f"GiB of results, more than this host's {budget / 2**30:,.1f} GiB budget "
                          f"(half its memory); at most {budget // max(per_run, 1):,} runs fit")


def host_budget() -> int:
    return int(0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def memory_budget(device) -> int:
    try:
        limit = int(device.memory_stats()["bytes_limit"])
    except Exception:  # the CPU reports no memory stats: use half the host's RAM
        limit = 0
    return int(0.8 * limit) if limit > 0 else host_budget()  # (or, in a multi-process job, junk)


def compiled_bytes(compiled) -> int:
    """Device memory a compiled program needs: arguments, outputs and temporaries, less the
    outputs that reuse donated arguments."""
    m = compiled.memory_analysis()
    if m is None:
        return 0
    return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
               - getattr(m, "alias_size_in_bytes", 0))


def rows_of(tree, index: np.ndarray):
    """`tree`'s leaves indexed along their first (runs) axis."""
    return jax.tree.map(lambda x: np.asarray(x)[index], tree)
