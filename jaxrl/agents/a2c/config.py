"""A2C's config: Stable-Baselines3's A2C defaults (RMSprop as PyTorch defines it, 5-step rollouts,
n-step returns through GAE with lambda 1, no entropy bonus, unnormalised advantages) with the RL
zoo's CartPole-v1 settings (8 envs, 500k steps)."""
from __future__ import annotations

from flax import struct

from jaxrl.agents.onpolicy import (activation_field, gae_lambda_field, gamma_field, reward_scaling_field,
                                   hidden_sizes_field, normalize_obs_field, num_envs_field,
                                   num_steps_field, total_steps_field)
from jaxrl.config import hparam, static


@struct.dataclass
class A2CConfig:
    total_steps: int = total_steps_field(500_000)
    num_envs: int = num_envs_field(8)
    num_steps: int = num_steps_field(5)
    hidden_sizes: tuple[int, ...] = hidden_sizes_field()
    activation: str = activation_field()
    normalize_obs: bool = normalize_obs_field()
    normalize_advantages: bool = static(False, "standardise the advantages of each rollout",
                                        minimum=None)
    lr: float = hparam(7e-4, "RMSprop learning rate (traced)", low_open=True)
    rms_decay: float = hparam(0.99, "RMSprop's decay of the squared-gradient average (alpha)",
                              high=1.0)
    rms_eps: float = hparam(1e-5, "RMSprop's epsilon, added to the root (PyTorch's form)",
                            low_open=True)
    gamma: float = gamma_field()
    gae_lambda: float = gae_lambda_field(1.0)
    reward_scaling: float = reward_scaling_field()
    ent_coef: float = hparam(0.0, "entropy bonus coefficient")
    vf_coef: float = hparam(0.5, "value loss coefficient")
    max_grad_norm: float = hparam(0.5, "global gradient-norm clip", low_open=True)
