"""What every agent's `make_train` returns: `init` and `update` as pure functions, so that a whole
run is `init` followed by a scan of `update`, and a run can also be cut into segments of updates
(for checkpoints) that compute exactly what the whole scan computes."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax


@dataclasses.dataclass(frozen=True)
class Trainer:
    """`init(config, key) -> state`; `update(config, state) -> (state, metrics)` where metrics is
    a dict of scalars for one update. Calling the trainer runs all `num_updates` updates."""

    init: Callable[[Any, jax.Array], Any]
    update: Callable[[Any, Any], tuple[Any, dict]]
    num_updates: int

    def segment(self, num_updates: int) -> Callable[[Any, Any], tuple[Any, dict]]:
        """`(config, state) -> (state, metrics)` running `num_updates` updates; metrics are
        stacked [num_updates]."""

        def run_segment(config, state):
            return jax.lax.scan(lambda s, _: self.update(config, s), state, None, num_updates)

        return run_segment

    def __call__(self, config, key):
        """The whole run: `(config, key) -> (final state, metrics [num_updates])`."""
        return self.segment(self.num_updates)(config, self.init(config, key))
