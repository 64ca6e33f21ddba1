"""DDPG's config: the actor-critic fields (jaxrl.agents.continuous.ActorCriticConfig) plus its
learning rate and exploration noise, named and defaulted as in CleanRL's
ddpg_continuous_action.py (lr 3e-4 for actor and critic, tau 0.005, exploration_noise 0.1,
policy_frequency 2: CleanRL's DDPG already delays the actor and target updates;
`--policy-frequency 1` is Lillicrap et al.'s every-step DDPG)."""
from __future__ import annotations

from flax import struct

from jaxrl.agents.continuous import ActorCriticConfig
from jaxrl.config import hparam


@struct.dataclass
class DDPGConfig(ActorCriticConfig):
    lr: float = hparam(3e-4, "Adam learning rate of the actor and of the critics (traced: "
                       "sweeping it does not recompile)", low_open=True)
    exploration_noise: float = hparam(0.1, "std of the Gaussian noise added to the actor's action "
                                      "while collecting (normalised units, box = [-1, 1])")
