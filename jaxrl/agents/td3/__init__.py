"""Twin delayed DDPG (TD3; Fujimoto et al. 2018) for bounded Box action spaces: DDPG with twin
critics (clipped double Q), target policy smoothing and delayed actor and target updates."""
from jaxrl.agents.base import Algo
from jaxrl.agents.offpolicy import steps_per_update
from jaxrl.agents.td3.config import TD3Config
from jaxrl.agents.td3.losses import smoothed_target_action
from jaxrl.agents.td3.train import make_train, validate

ALGO = Algo("td3", TD3Config, make_train, validate, steps_per_update)

__all__ = ["ALGO", "TD3Config", "make_train", "smoothed_target_action", "steps_per_update",
           "validate"]
