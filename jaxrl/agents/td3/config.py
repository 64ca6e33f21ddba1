"""TD3's config: DDPG's fields plus the target policy smoothing noise, named and defaulted as in
CleanRL's td3_continuous_action.py (policy_noise 0.2, noise_clip 0.5; lr 3e-4, tau 0.005,
exploration_noise 0.1, policy_frequency 2 as for DDPG)."""
from __future__ import annotations

from flax import struct

from jaxrl.agents.ddpg.config import DDPGConfig
from jaxrl.config import hparam


@struct.dataclass
class TD3Config(DDPGConfig):
    policy_noise: float = hparam(0.2, "std of the Gaussian noise on the target action (target "
                                 "policy smoothing; normalised units)")
    noise_clip: float = hparam(0.5, "the target action noise is clipped to [-noise_clip, "
                               "noise_clip] (normalised units)")
