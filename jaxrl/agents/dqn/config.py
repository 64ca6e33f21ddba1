"""DQN's config: static fields shape the compiled program; float fields are vmappable leaves.
Names follow CleanRL's dqn.py. Defaults are its CartPole settings retuned here (see README): 16 envs
and one gradient step of 64 transitions per iteration (4 sampled per env step) learn CartPole-v1 in
500k steps; with 1 env, data is cheap but gradient steps are what costs time on a CPU.

Units: `total_steps`, `learning_starts` and `buffer_size` count environment steps (transitions, all
envs together); `train_frequency` and `target_network_frequency` count iterations, one iteration
being one vectorised step of all `num_envs` envs (the same thing when num_envs is 1)."""
from __future__ import annotations

from flax import struct

from jaxrl.config import hparam, static
from jaxrl.nets import ACTIVATIONS


@struct.dataclass
class DQNConfig:
    total_steps: int = static(500_000, "environment steps per run (all envs together)")
    num_envs: int = static(16, "parallel environments per run; one iteration steps them all once")
    buffer_size: int = static(100_000, "replay buffer capacity in transitions")
    batch_size: int = static(64, "transitions sampled from the buffer per gradient step")
    learning_starts: int = static(10_000, "environment steps collected before the first gradient "
                                  "step", minimum=0)
    train_frequency: int = static(1, "iterations (vectorised env steps) per gradient step")
    log_every: int = static(0, "gradient steps per metrics row, reduced inside the program "
                            "(episode statistics pooled, losses averaged); 0 = auto, about 1000 "
                            "rows per run", minimum=0)
    target_network_frequency: int = static(100, "iterations between target network updates; 0 = no "
                                           "target network (targets from the online network)",
                                           minimum=0)
    hidden_sizes: tuple[int, ...] = static((64, 64), "hidden layer widths of the Q network, e.g. 64,64")
    activation: str = static("relu", "hidden activation", choices=ACTIVATIONS)
    double: bool = static(True, "double DQN: the online network picks the next action, the target "
                          "network values it", minimum=None)
    loss: str = static("mse", "TD loss", choices=("huber", "mse"))
    lr: float = hparam(4e-4, "Adam learning rate (traced: sweeping it does not recompile)", low_open=True)
    gamma: float = hparam(0.99, "discount factor", high=1.0)
    tau: float = hparam(1.0, "target update rate (Polyak); 1.0 = hard copy every "
                        "target_network_frequency iterations", low_open=True, high=1.0)
    start_e: float = hparam(1.0, "exploration epsilon at the start", high=1.0)
    end_e: float = hparam(0.05, "exploration epsilon at the end of the linear schedule", high=1.0)
    exploration_fraction: float = hparam(0.1, "fraction of total_steps over which epsilon goes "
                                         "linearly from start_e to end_e", low_open=True, high=1.0)
    max_grad_norm: float = hparam(10.0, "global gradient-norm clip", low_open=True)
