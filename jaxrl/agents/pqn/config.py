"""PQN's config (Gallici et al. 2024, "Simplifying Deep Temporal Difference Learning"): option
names follow CleanRL's pqn.py and PPO's (the same rollout shape); defaults are CleanRL's CartPole
settings with PureJaxQL's env count (32 envs x 64 steps, 16 minibatches: the same 15.6k gradient
steps of 128 transitions over 500k env steps as CleanRL's 4 x 128, 4 minibatches). Static fields
shape the compiled program; float fields are vmappable leaves."""
from __future__ import annotations

from flax import struct

from jaxrl.config import hparam, static
from jaxrl.nets import ACTIVATIONS


@struct.dataclass
class PQNConfig:
    total_steps: int = static(500_000, "environment steps per run (all envs together)")
    num_envs: int = static(32, "parallel environments per run")
    num_steps: int = static(64, "steps per env per rollout; one update uses num_envs x num_steps")
    update_epochs: int = static(4, "passes over each rollout")
    num_minibatches: int = static(16, "minibatches per epoch; must divide num_envs x num_steps")
    hidden_sizes: tuple[int, ...] = static((120, 84), "hidden layer widths of the Q network "
                                           "(each followed by LayerNorm), e.g. 120,84")
    activation: str = static("relu", "hidden activation", choices=ACTIVATIONS)
    layer_norm_params: bool = static(True, "learn a scale and bias in each LayerNorm (off: plain "
                                     "normalisation)", minimum=None)
    anneal_lr: bool = static(True, "decay the learning rate linearly to 0 over training",
                             minimum=None)
    lr: float = hparam(2.5e-4, "RAdam learning rate (traced: sweeping it does not recompile)",
                       low_open=True)
    gamma: float = hparam(0.99, "discount factor", high=1.0)
    q_lambda: float = hparam(0.65, "lambda of the Q(lambda) returns (0: one-step targets, 1: "
                             "Monte Carlo within the rollout)", high=1.0)
    start_e: float = hparam(1.0, "exploration epsilon at the start", high=1.0)
    end_e: float = hparam(0.05, "exploration epsilon at the end of the linear schedule", high=1.0)
    exploration_fraction: float = hparam(0.5, "fraction of total_steps over which epsilon goes "
                                         "linearly from start_e to end_e", low_open=True, high=1.0)
    max_grad_norm: float = hparam(10.0, "global gradient-norm clip", low_open=True)
