"""What the Box-action replay agents share (NAF, DDPG, TD3, SAC): the action-space check, the
normalised action box, uniform warm-up actions, the TD target, and for the actor-critics
(DDPG, TD3, SAC) their common config fields, the critic ensemble Q_i(s, a) with its TD loss and
the critic step (Adam, then a Polyak update of the target critics).

Actions live in the normalised box [-1, 1]^A inside these agents (actors end in tanh, the buffer
stores normalised actions, noise scales are in normalised units, SAC's log-probabilities are
those of the normalised action) and are mapped affinely onto the env's box only to step the env
and in the greedy policy."""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

import envs
from jaxrl.agents.base import check_task_spread
from jaxrl.agents.offpolicy import validate_replay
from jaxrl.config import ConfigError, check_fields, hparam, static
from jaxrl.nets import ACTIVATIONS, MLP, flatten_obs


def validate_box(config, env, env_params, algo: str) -> None:
    """Raise ConfigError, naming the option, for a config or env a Box-action agent cannot train:
    the field ranges, the task spread, a discrete or unbounded action space, the replay schedule."""
    check_fields(config)
    check_task_spread(config.num_envs, env_params)
    space = env.action_space(env_params)
    if envs.is_discrete(env, env_params) or len(getattr(space, "shape", ())) != 1:
        raise ConfigError(f"--algo {algo}: needs a continuous (Box) action space, got {space}; "
                          f"pick a Box --env (dqn and ppo train discrete actions)")
    low, high = np.broadcast_to(space.low, space.shape), np.broadcast_to(space.high, space.shape)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high > low)):
        raise ConfigError(f"--algo {algo}: needs a bounded Box action space (finite low < high), "
                          f"got low {low}, high {high} from --env")
    validate_replay(config)


def env_action_map(env, env_params) -> Callable[[jax.Array], jax.Array]:
    """The affine map from the normalised box [-1, 1]^A onto the env's action box."""
    space = env.action_space(env_params)
    low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), space.shape)
    high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), space.shape)
    return lambda action: (high + low) / 2 + (high - low) / 2 * action


def warmup_actions(action, key, iteration, num_envs: int, learning_starts: int):
    """`action` [E, A], or uniform random actions in [-1, 1]^A while fewer than learning_starts env
    steps have been taken (the iteration's first env step counts)."""
    uniform = jax.random.uniform(key, action.shape, minval=-1.0, maxval=1.0)
    return jnp.where(iteration * num_envs < learning_starts, uniform, action)


def td_target(reward, next_value, terminated, gamma):
    """r + gamma * V(s') * (1 - terminated), all [B]. `next_value` is the value of the observation
    that followed the step *before* any auto-reset; a truncated step bootstraps (pass only
    `terminated`), a terminated one is its reward alone."""
    return reward + gamma * (1.0 - terminated.astype(next_value.dtype)) * next_value


# ------------------------------------------------------------------ actor-critics (DDPG, TD3, SAC)

@struct.dataclass
class ActorCriticConfig:
    """The fields DDPG, TD3 and SAC share (their configs add their own). Names and algorithm
    defaults follow CleanRL's *_continuous_action.py (1 env, a gradient step of 256 per env step,
    256x256 ReLU, gamma 0.99, tau 0.005, policy_frequency 2); the run size is the RL zoo's
    Pendulum-v1 budget, 20k steps, with CleanRL SAC's learning_starts 5k (its DDPG/TD3 25k would
    exceed it) and a 100k buffer (CleanRL: 1M, more than such runs fill). docs/algorithms.md
    gives faster CPU settings (more envs, 64x64) and what they reached.

    Units: `total_steps`, `learning_starts` and `buffer_size` count env steps (transitions, all
    envs together); `train_frequency` counts iterations (one vectorised step of all envs);
    `policy_frequency` counts gradient steps."""

    total_steps: int = static(20_000, "environment steps per run (all envs together)")
    num_envs: int = static(1, "parallel environments per run; one iteration steps them all once")
    buffer_size: int = static(100_000, "replay buffer capacity in transitions")
    batch_size: int = static(256, "transitions sampled from the buffer per gradient step")
    learning_starts: int = static(5_000, "environment steps collected (uniform random actions) "
                                  "before the first gradient step", minimum=0)
    train_frequency: int = static(1, "iterations (vectorised env steps) per gradient step")
    log_every: int = static(0, "gradient steps per metrics row, reduced inside the program "
                            "(episode statistics pooled, losses averaged); 0 = auto, about 1000 "
                            "rows per run", minimum=0)
    policy_frequency: int = static(2, "gradient steps per delayed actor update (SAC: that many "
                                   "actor steps each time); the critics learn every gradient step")
    hidden_sizes: tuple[int, ...] = static((256, 256), "hidden layer widths of the actor and of "
                                           "each critic, e.g. 256,256")
    activation: str = static("relu", "hidden activation", choices=ACTIVATIONS)
    gamma: float = hparam(0.99, "discount factor", high=1.0)
    tau: float = hparam(0.005, "target network Polyak rate; 1.0 = hard copy", low_open=True,
                        high=1.0)


class Critics(nn.Module):
    """`num` independent MLPs Q_i(s, a) on [flattened obs, action] -> [num, ...]."""

    num: int
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs, action):
        x = jnp.concatenate([flatten_obs(obs, self.obs_ndim), action], axis=-1)
        return jnp.stack([MLP(self.hidden_sizes, 1, self.activation)(x)[..., 0]
                          for _ in range(self.num)])


def critic_loss(critic_params, critics_apply: Callable, batch: dict, target):
    """sum_i mean_b (Q_i(s, a) - target)^2 over the critics (CleanRL's qf1_loss + qf2_loss);
    `target` [B] is a constant. Returns (loss, metrics)."""
    q = critics_apply(critic_params, batch["obs"], batch["action"])  # [N, B]
    loss = jnp.sum(jnp.mean((q - jax.lax.stop_gradient(target)) ** 2, axis=-1))
    return loss, {"critic_loss": loss, "q_mean": q.mean()}


def adam_step(loss_fn: Callable, params, opt_state, optimizer):
    """One optimizer step on `loss_fn(params) -> (loss, aux)`; returns (params, opt_state, aux)."""
    grads, aux = jax.grad(loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, aux


def critic_step(critics_apply, critics, critic_opt, optimizer, batch, target):
    """The critic step DDPG, TD3 and SAC share: Adam on `critic_loss` towards `target` [B].
    Returns (critics, critic_opt, metrics)."""
    return adam_step(lambda p: critic_loss(p, critics_apply, batch, target), critics,
                     critic_opt, optimizer)


def polyak(online, target, tau):
    """target <- tau * online + (1 - tau) * target, leaf by leaf."""
    return optax.incremental_update(online, target, tau)


def every(step, frequency: int) -> jax.Array:
    """True on gradient steps 0, f, 2f, ...: `step` is unbatched (shared by every vmapped run),
    so a lax.cond on this is a real branch."""
    return step % frequency == 0
