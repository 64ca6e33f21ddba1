"""NAF's config: static fields shape the compiled program; float fields are vmappable leaves.
Names follow CleanRL's off-policy agents (dqn.py, ddpg_continuous_action.py). Defaults are the
Pendulum-v1 settings measured in the README: 4 envs and one gradient step of 128 transitions per
iteration (32 sampled per env step), Polyak target updates every gradient step, and rewards scaled
by 0.1 in the TD target: unscaled, V(s) lagged its falling targets for long stretches, the loss
then lowered Q at the buffer's actions by pushing mu away from them, and tanh(mu) saturated at
the box edge for good in 2 to 4 of 8 seeds.

Units: `total_steps`, `learning_starts` and `buffer_size` count environment steps (transitions, all
envs together); `train_frequency` counts iterations, one iteration being one vectorised step of
all `num_envs` envs. Actions are handled in the normalised box [-1, 1]^A (mu is tanh-squashed) and
mapped affinely onto the env's box; the exploration noise scales are in those normalised units."""
from __future__ import annotations

from flax import struct

from jaxrl.config import hparam, static
from jaxrl.nets import ACTIVATIONS


@struct.dataclass
class NAFConfig:
    total_steps: int = static(40_000, "environment steps per run (all envs together)")
    num_envs: int = static(4, "parallel environments per run; one iteration steps them all once")
    buffer_size: int = static(100_000, "replay buffer capacity in transitions")
    batch_size: int = static(128, "transitions sampled from the buffer per gradient step")
    learning_starts: int = static(2_000, "environment steps collected (uniform random actions) "
                                  "before the first gradient step", minimum=0)
    train_frequency: int = static(1, "iterations (vectorised env steps) per gradient step")
    log_every: int = static(0, "gradient steps per metrics row, reduced inside the program "
                            "(episode statistics pooled, losses averaged); 0 = auto, about 1000 "
                            "rows per run", minimum=0)
    hidden_sizes: tuple[int, ...] = static((64, 64), "hidden layer widths of the NAF network, "
                                           "e.g. 64,64")
    activation: str = static("relu", "hidden activation", choices=ACTIVATIONS)
    diagonal_p: bool = static(False, "diagonal P(s) (A entries) instead of P = L L^T with a full "
                              "lower-triangular L (A(A+1)/2 entries)", minimum=None)
    lr: float = hparam(1e-3, "Adam learning rate (traced: sweeping it does not recompile)",
                       low_open=True)
    gamma: float = hparam(0.99, "discount factor", high=1.0)
    reward_scale: float = hparam(0.1, "rewards are multiplied by this in the TD target (the "
                                 "returns reported are the env's own)", low_open=True)
    tau: float = hparam(0.005, "target network Polyak rate, applied after every gradient step; "
                        "1.0 = hard copy", low_open=True, high=1.0)
    start_noise: float = hparam(0.5, "std of the Gaussian exploration noise on mu at the start "
                                "(normalised action units, box = [-1, 1])")
    end_noise: float = hparam(0.05, "exploration noise std at the end of the linear schedule")
    exploration_fraction: float = hparam(0.5, "fraction of total_steps over which the noise std "
                                         "goes linearly from start_noise to end_noise",
                                         low_open=True, high=1.0)
    max_grad_norm: float = hparam(10.0, "global gradient-norm clip", low_open=True)
