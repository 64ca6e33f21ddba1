"""Networks and action distributions shared by the agents: MLPs with a LAPACK-free orthogonal
initialiser, separate actor and critic towers, and categorical / diagonal-Gaussian policies."""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct


ACTIVATIONS = ("tanh", "relu", "gelu", "swish")  # the `activation` values MLP accepts (flax.linen names)


def flatten_obs(obs, obs_ndim: int):
    """[..., *obs_shape] -> [..., prod(obs_shape)] float32, the first layer's input."""
    return obs.reshape(obs.shape[: obs.ndim - obs_ndim] + (-1,)).astype(jnp.float32)


def orthogonal(scale: float = 1.0) -> Callable:
    """Orthogonal initialiser (Saxe et al.) computed by twice-iterated Gram-Schmidt in plain jnp ops.

    Same distribution as `jax.nn.initializers.orthogonal` (the Q of a Gaussian matrix's QR with a
    positive R diagonal), but without LAPACK's QR: a batched QR inside a vmapped training program
    deadlocked jax 0.10.2 on a 2-core CPU (see tests/test_nets.py). Kernels are [fan_in, fan_out]."""

    def init(key, shape, dtype=jnp.float32):
        rows, cols = shape
        tall = (max(rows, cols), min(rows, cols))
        a = jax.random.normal(key, tall, jnp.float32)

        def add_column(j, q):
            v = a[:, j]
            v = v - q @ (q.T @ v)  # columns of q not yet filled are zero, so this projects on 0..j-1
            v = v - q @ (q.T @ v)  # second pass restores orthogonality lost to rounding (CGS2)
            return q.at[:, j].set(v / jnp.linalg.norm(v))

        q = jax.lax.fori_loop(0, tall[1], add_column, jnp.zeros(tall, jnp.float32))
        q = q if rows >= cols else q.T
        return (scale * q).astype(dtype)

    return init


class MLP(nn.Module):
    """Dense layers with `activation` between them (with `layer_norm`, a LayerNorm before each
    activation, with a learned scale and bias unless `layer_norm_params` is off); the last layer
    has its own init scale."""

    hidden_sizes: Sequence[int]
    out_size: int
    activation: str = "tanh"
    out_scale: float = 1.0
    layer_norm: bool = False
    layer_norm_params: bool = True

    @nn.compact
    def __call__(self, x):
        act = getattr(nn, self.activation)
        for size in self.hidden_sizes:
            x = nn.Dense(size, kernel_init=orthogonal(jnp.sqrt(2.0)))(x)
            if self.layer_norm:
                x = nn.LayerNorm(use_scale=self.layer_norm_params,
                                 use_bias=self.layer_norm_params)(x)
            x = act(x)
        return nn.Dense(self.out_size, kernel_init=orthogonal(self.out_scale))(x)


@struct.dataclass
class Categorical:
    logits: jax.Array  # [..., num_actions]

    def sample(self, key):
        return jax.random.categorical(key, self.logits)

    def log_prob(self, action):
        logp = jax.nn.log_softmax(self.logits)
        return jnp.take_along_axis(logp, action[..., None].astype(jnp.int32), axis=-1)[..., 0]

    def entropy(self):
        logp = jax.nn.log_softmax(self.logits)
        return -jnp.sum(jnp.exp(logp) * logp, axis=-1)

    def mode(self):
        return jnp.argmax(self.logits, axis=-1)

    def kl(self, other: "Categorical"):
        """KL(self || other) per distribution."""
        logp, logq = jax.nn.log_softmax(self.logits), jax.nn.log_softmax(other.logits)
        return jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)


@struct.dataclass
class DiagGaussian:
    mean: jax.Array     # [..., action_dim]
    log_std: jax.Array  # [action_dim] or [..., action_dim]

    def sample(self, key):
        return self.mean + jnp.exp(self.log_std) * jax.random.normal(key, self.mean.shape)

    def log_prob(self, action):
        z = (action - self.mean) * jnp.exp(-self.log_std)
        return jnp.sum(-0.5 * z**2 - self.log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)

    def entropy(self):
        return jnp.sum(jnp.broadcast_to(self.log_std + 0.5 * jnp.log(2 * jnp.pi * jnp.e),
                                        self.mean.shape), axis=-1)

    def mode(self):
        return self.mean

    def kl(self, other: "DiagGaussian"):
        """KL(self || other) per distribution."""
        var, other_var = jnp.exp(2 * self.log_std), jnp.exp(2 * other.log_std)
        return jnp.sum(other.log_std - self.log_std
                       + (var + (self.mean - other.mean) ** 2) / (2 * other_var) - 0.5, axis=-1)


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs on the flattened observation -> (distribution, value)."""

    action_dim: int
    discrete: bool
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    obs_ndim: int = 1  # trailing axes of one observation, flattened before the first layer

    @nn.compact
    def __call__(self, obs):
        x = flatten_obs(obs, self.obs_ndim)
        out = MLP(self.hidden_sizes, self.action_dim, self.activation, out_scale=0.01)(x)
        value = MLP(self.hidden_sizes, 1, self.activation, out_scale=1.0)(x)[..., 0]
        if self.discrete:
            return Categorical(out), value
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        return DiagGaussian(out, log_std), value
