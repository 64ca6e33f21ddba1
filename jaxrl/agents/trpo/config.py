"""TRPO's config: Stable-Baselines3-contrib's TRPO with the RL zoo's CartPole-v1 settings (2 envs
x 512 steps, 100k steps, CG damping 1e-3, GAE lambda 0.98, 20 critic epochs of 512-sample
minibatches at Adam 1e-3), and sb3-contrib's defaults for the rest (max KL 0.01, 15 CG steps, a
line search of 10 steps shrinking by 0.8, standardised advantages)."""
from __future__ import annotations

from flax import struct

from jaxrl.agents.onpolicy import (activation_field, gae_lambda_field, gamma_field, reward_scaling_field,
                                   hidden_sizes_field, normalize_obs_field, num_envs_field,
                                   num_steps_field, total_steps_field)
from jaxrl.config import hparam, static


@struct.dataclass
class TRPOConfig:
    total_steps: int = total_steps_field(100_000)
    num_envs: int = num_envs_field(2)
    num_steps: int = num_steps_field(512)
    critic_epochs: int = static(20, "passes of the value function's Adam over each rollout")
    num_minibatches: int = static(2, "critic minibatches per pass; must divide num_envs x "
                                  "num_steps")
    cg_iters: int = static(15, "conjugate-gradient steps for the natural gradient")
    backtrack_iters: int = static(10, "line-search candidates, step x coef^k for k < this")
    hidden_sizes: tuple[int, ...] = hidden_sizes_field()
    activation: str = activation_field()
    normalize_obs: bool = normalize_obs_field()
    max_kl: float = hparam(0.01, "trust region: the mean KL(old || new policy) per update",
                           low_open=True)
    cg_damping: float = hparam(1e-3, "damping of the Fisher in the CG solve, (F + damping I)")
    backtrack_coef: float = hparam(0.8, "line-search shrink factor per candidate", low_open=True,
                                   high=1.0)
    lr: float = hparam(1e-3, "value-function Adam learning rate (traced)", low_open=True)
    gamma: float = gamma_field()
    gae_lambda: float = gae_lambda_field(0.98)
    reward_scaling: float = reward_scaling_field()
