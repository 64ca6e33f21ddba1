"""Hill climbing's config: static fields shape the compiled program; the scales are traced
leaves (a sweep over the noise scale is one program)."""
from __future__ import annotations

from flax import struct

from jaxrl.agents.episodes import (activation_field, distribution_field, hidden_sizes_field,
                                   max_steps_field)
from jaxrl.config import hparam, static


@struct.dataclass
class HillClimbingConfig:
    num_candidates: int = static(1_000, "perturbations tried per run, one update each (the "
                                 "first update scores the initial parameters instead)")
    num_envs: int = static(1, "episodes scoring each candidate, played in parallel; its score is "
                           "their mean return")
    distribution: str = distribution_field("uniform", "the initial parameters and the noise")
    hidden_sizes: tuple[int, ...] = hidden_sizes_field()
    activation: str = activation_field()
    max_steps: int = max_steps_field()
    init_scale: float = hparam(1.0, "scale of the initial parameters' distribution",
                               low_open=True)
    noise_scale: float = hparam(0.3, "scale of the perturbation's distribution", low_open=True)
