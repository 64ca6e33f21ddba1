"""Proximal Policy Optimization (Schulman et al. 2017), discrete and Gaussian-continuous."""
from jaxrl.agents.ppo.config import PPOConfig
from jaxrl.agents.onpolicy import compute_gae
from jaxrl.agents.ppo.losses import ppo_loss
from jaxrl.agents.base import Algo
from jaxrl.agents.ppo.train import make_train, steps_per_update, validate

ALGO = Algo("ppo", PPOConfig, make_train, validate, steps_per_update)

__all__ = ["ALGO", "PPOConfig", "compute_gae", "ppo_loss", "make_train", "validate"]
