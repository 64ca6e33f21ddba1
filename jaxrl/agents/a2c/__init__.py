"""Advantage actor-critic (A2C, the synchronous A3C of Mnih et al. 2016), discrete and
Gaussian-continuous, on the on-policy family's rollout and GAE (`jaxrl.agents.onpolicy`)."""
from jaxrl.agents.a2c.config import A2CConfig
from jaxrl.agents.a2c.losses import a2c_loss
from jaxrl.agents.a2c.train import make_train, validate
from jaxrl.agents.base import Algo
from jaxrl.agents.onpolicy import steps_per_update

ALGO = Algo("a2c", A2CConfig, make_train, validate, steps_per_update)

__all__ = ["ALGO", "A2CConfig", "a2c_loss", "make_train", "validate"]
