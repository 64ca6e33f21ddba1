"""SAC's config: the actor-critic fields (jaxrl.agents.continuous.ActorCriticConfig) plus its
learning rates and temperature, named and defaulted as in CleanRL's sac_continuous_action.py
(policy_lr 3e-4, q_lr 1e-3 for the critics and the temperature, tau 0.005, policy_frequency 2
with as many actor steps per delayed update, alpha 0.2 when not autotuned, autotune on with
target entropy -|A|)."""
from __future__ import annotations

from flax import struct

from jaxrl.agents.continuous import ActorCriticConfig
from jaxrl.config import hparam, static


@struct.dataclass
class SACConfig(ActorCriticConfig):
    autotune: bool = static(True, "learn the temperature alpha (from 1.0) so that the policy's "
                            "entropy tracks -|A|; --no-autotune keeps alpha fixed at --alpha",
                            minimum=None)
    policy_lr: float = hparam(3e-4, "Adam learning rate of the actor", low_open=True)
    q_lr: float = hparam(1e-3, "Adam learning rate of the critics and of the temperature",
                         low_open=True)
    alpha: float = hparam(0.2, "the fixed entropy temperature with --no-autotune")
