"""Soft actor-critic (SAC; Haarnoja et al. 2018) for bounded Box action spaces: a tanh-squashed
Gaussian actor, twin critics with Polyak targets, and automatic temperature tuning towards the
target entropy -|A|, on the shared replay-buffer loop."""
from jaxrl.agents.base import Algo
from jaxrl.agents.offpolicy import steps_per_update
from jaxrl.agents.sac.config import SACConfig
from jaxrl.agents.sac.losses import (sac_actor_loss, sample_tanh_gaussian, soft_target,
                                     tanh_gaussian_log_prob, temperature_loss)
from jaxrl.agents.sac.train import SACState, SquashedGaussianActor, make_train, validate

ALGO = Algo("sac", SACConfig, make_train, validate, steps_per_update)

__all__ = ["ALGO", "SACConfig", "SACState", "SquashedGaussianActor", "make_train",
           "sac_actor_loss", "sample_tanh_gaussian", "soft_target", "steps_per_update",
           "tanh_gaussian_log_prob", "temperature_loss", "validate"]
