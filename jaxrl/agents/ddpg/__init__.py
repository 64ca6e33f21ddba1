"""Deep deterministic policy gradient (DDPG; Lillicrap et al. 2016) for bounded Box action
spaces: a deterministic tanh actor, one critic Q(s, a), target networks moved by Polyak `tau`,
Gaussian exploration noise, on the shared replay-buffer loop. TD3 (jaxrl.agents.td3) is this
agent with twin critics and target policy smoothing."""
from jaxrl.agents.base import Algo
from jaxrl.agents.ddpg.config import DDPGConfig
from jaxrl.agents.ddpg.losses import actor_loss, deterministic_target
from jaxrl.agents.ddpg.train import DDPGState, DeterministicActor, make_train, validate
from jaxrl.agents.offpolicy import steps_per_update

ALGO = Algo("ddpg", DDPGConfig, make_train, validate, steps_per_update)

__all__ = ["ALGO", "DDPGConfig", "DDPGState", "DeterministicActor", "actor_loss",
           "deterministic_target", "make_train", "steps_per_update", "validate"]
