"""PPO's config: static fields shape the compiled program; float fields are vmappable leaves.
Defaults are PureJaxRL's CartPole settings."""
from __future__ import annotations

from flax import struct

from jaxrl.agents.onpolicy import (activation_field, gae_lambda_field, gamma_field, reward_scaling_field,
                                   hidden_sizes_field, normalize_obs_field, num_envs_field,
                                   num_steps_field, total_steps_field)
from jaxrl.config import hparam, static


@struct.dataclass
class PPOConfig:
    total_steps: int = total_steps_field(500_000)
    num_envs: int = num_envs_field(4)
    num_steps: int = num_steps_field(128)
    update_epochs: int = static(4, "passes over each rollout")
    num_minibatches: int = static(4, "minibatches per epoch; must divide num_envs x num_steps")
    hidden_sizes: tuple[int, ...] = hidden_sizes_field()
    activation: str = activation_field()
    anneal_lr: bool = static(True, "decay the learning rate linearly to 0 over training", minimum=None)
    normalize_obs: bool = normalize_obs_field()
    normalize_advantages: bool = static(True, "standardise advantages per minibatch", minimum=None)
    lr: float = hparam(2.5e-4, "Adam learning rate (traced: sweeping it does not recompile)", low_open=True)
    gamma: float = gamma_field()
    gae_lambda: float = gae_lambda_field(0.95)
    reward_scaling: float = reward_scaling_field()
    clip_eps: float = hparam(0.2, "PPO ratio clip (also clips the value update)", low_open=True)
    ent_coef: float = hparam(0.01, "entropy bonus coefficient")
    vf_coef: float = hparam(0.5, "value loss coefficient")
    max_grad_norm: float = hparam(0.5, "global gradient-norm clip", low_open=True)
