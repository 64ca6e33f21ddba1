"""Vanilla policy gradient (Spinning Up's VPG: REINFORCE with a learned value baseline and GAE),
discrete and Gaussian-continuous, on the on-policy family's rollout (`jaxrl.agents.onpolicy`)."""
from jaxrl.agents.base import Algo
from jaxrl.agents.onpolicy import steps_per_update
from jaxrl.agents.vpg.config import VPGConfig
from jaxrl.agents.vpg.losses import value_loss, vpg_policy_loss
from jaxrl.agents.vpg.train import make_train, validate

ALGO = Algo("vpg", VPGConfig, make_train, validate, steps_per_update)

__all__ = ["ALGO", "VPGConfig", "make_train", "validate", "value_loss", "vpg_policy_loss"]
