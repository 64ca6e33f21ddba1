"""Proximal Policy Optimization (Schulman et al. 2017), discrete and Gaussian-continuous."""
from jaxrl.agents.ppo.config import PPOConfig
from jaxrl.agents.ppo.losses import compute_gae, ppo_loss
from jaxrl.agents.ppo.train import make_train, validate

__all__ = ["PPOConfig", "compute_gae", "ppo_loss", "make_train", "validate"]
