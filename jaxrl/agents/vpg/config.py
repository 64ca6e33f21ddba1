"""VPG's config: Spinning Up's VPG (one Adam step of the policy per rollout, then 80 Adam steps of
the value function at 1e-3, GAE lambda 0.97, standardised advantages, 64x64 tanh) with smaller
rollouts and a larger policy step, chosen on CartPole-v1 (tuning seeds 100-107): Spinning Up's
4,000 steps per epoch at pi_lr 3e-4 reach IQM 84 at 500k steps (125 updates); 8 envs x 128 steps
reach 499 at 500k, and at 200k IQM 259, 500, 500 with pi_lr 3e-4, 1e-3, 3e-3."""
from __future__ import annotations

from flax import struct

from jaxrl.agents.onpolicy import (activation_field, gae_lambda_field, gamma_field, reward_scaling_field,
                                   hidden_sizes_field, normalize_obs_field, num_envs_field,
                                   num_steps_field, total_steps_field)
from jaxrl.config import hparam, static


@struct.dataclass
class VPGConfig:
    total_steps: int = total_steps_field(500_000)
    num_envs: int = num_envs_field(8)
    num_steps: int = num_steps_field(128)
    train_v_iters: int = static(80, "value-function Adam steps (whole rollout) per update")
    hidden_sizes: tuple[int, ...] = hidden_sizes_field()
    activation: str = activation_field()
    normalize_obs: bool = normalize_obs_field()
    pi_lr: float = hparam(1e-3, "policy Adam learning rate (one step per update; traced)",
                          low_open=True)
    vf_lr: float = hparam(1e-3, "value-function Adam learning rate (traced)", low_open=True)
    gamma: float = gamma_field()
    gae_lambda: float = gae_lambda_field(0.97)
    reward_scaling: float = reward_scaling_field()
