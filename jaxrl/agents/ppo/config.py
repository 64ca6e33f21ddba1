"""PPO's config: static fields shape the compiled program; float fields are vmappable leaves.
Defaults are PureJaxRL's CartPole settings."""
from __future__ import annotations

from flax import struct

from jaxrl.config import hparam, static
from jaxrl.nets import ACTIVATIONS


@struct.dataclass
class PPOConfig:
    total_steps: int = static(500_000, "environment steps per run (all envs together)")
    num_envs: int = static(4, "parallel environments per run")
    num_steps: int = static(128, "steps per env per rollout; one update uses num_envs x num_steps")
    update_epochs: int = static(4, "passes over each rollout")
    num_minibatches: int = static(4, "minibatches per epoch; must divide num_envs x num_steps")
    hidden_sizes: tuple[int, ...] = static((64, 64), "hidden layer widths of actor and critic, e.g. 64,64")
    activation: str = static("tanh", "hidden activation", choices=ACTIVATIONS)
    anneal_lr: bool = static(True, "decay the learning rate linearly to 0 over training", minimum=None)
    normalize_obs: bool = static(False, "normalise observations by running statistics", minimum=None)
    lr: float = hparam(2.5e-4, "Adam learning rate (traced: sweeping it does not recompile)", low_open=True)
    gamma: float = hparam(0.99, "discount factor", high=1.0)
    gae_lambda: float = hparam(0.95, "GAE lambda", high=1.0)
    clip_eps: float = hparam(0.2, "PPO ratio clip (also clips the value update)", low_open=True)
    ent_coef: float = hparam(0.01, "entropy bonus coefficient")
    vf_coef: float = hparam(0.5, "value loss coefficient")
    max_grad_norm: float = hparam(0.5, "global gradient-norm clip", low_open=True)
