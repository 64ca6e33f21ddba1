"""Random search's config: static fields shape the compiled program; `scale` is a traced leaf."""
from __future__ import annotations

from flax import struct

from jaxrl.agents.episodes import (activation_field, distribution_field, hidden_sizes_field,
                                   max_steps_field)
from jaxrl.config import hparam, static


@struct.dataclass
class RandomSearchConfig:
    num_candidates: int = static(10_000, "parameter vectors drawn per run, each scored by the "
                                 "return of one episode; the best is kept")
    num_envs: int = static(10_000, "candidates scored together in one update (vmapped, one env "
                           "each); must divide num_candidates")
    distribution: str = distribution_field("gaussian", "the candidates")
    hidden_sizes: tuple[int, ...] = hidden_sizes_field()
    activation: str = activation_field()
    max_steps: int = max_steps_field()
    scale: float = hparam(1.0, "scale of the candidates' distribution (a linear sign policy does "
                          "not depend on it)", low_open=True)
