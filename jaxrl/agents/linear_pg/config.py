"""linear_pg's config: static fields shape the compiled program; lr and gamma are traced leaves."""
from __future__ import annotations

from flax import struct

from jaxrl.agents.episodes import activation_field, hidden_sizes_field, max_steps_field
from jaxrl.config import hparam, static


@struct.dataclass
class LinearPGConfig:
    num_updates: int = static(200, "policy-gradient updates per run, each from num_envs fresh "
                              "episodes")
    num_envs: int = static(8, "episodes per update, played in parallel; at least 2 (the "
                           "baseline is their mean)", minimum=2)
    hidden_sizes: tuple[int, ...] = hidden_sizes_field()
    activation: str = activation_field()
    max_steps: int = max_steps_field()
    lr: float = hparam(0.1, "Adam learning rate of the policy", low_open=True)
    gamma: float = hparam(0.99, "discount of the returns-to-go", high=1.0)
