"""Pure-JAX replay buffers: fixed-capacity circular storage of transitions as a pytree, so a buffer
lives in a training program's scan carry, is vmapped over seeds with the rest of the run, and adds
and samples without leaving the device.

A transition is any pytree (for DQN: obs, action, reward, next_obs, terminated, truncated); the
buffer stores each leaf as a `[capacity, ...]` array. `add` writes a batch of transitions at the
write position, wrapping around and overwriting the oldest; `sample` draws uniformly (with
replacement) among the filled slots."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class ReplayBuffer:
    data: Any            # the transition pytree, every leaf [capacity, ...]
    position: jax.Array  # int32 []: the slot the next transition is written to
    size: jax.Array      # int32 []: filled slots, at most capacity
    capacity: int = struct.field(pytree_node=False)


def init(example_transition: Any, capacity: int) -> ReplayBuffer:
    """An empty buffer for transitions shaped like `example_transition` (one transition, no batch
    axis), holding at most `capacity` of them."""
    if capacity < 1:
        raise ValueError(f"capacity must be >= 1, got {capacity}")
    data = jax.tree.map(lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype),
                        example_transition)
    return ReplayBuffer(data=data, position=jnp.int32(0), size=jnp.int32(0), capacity=capacity)


def add(buffer: ReplayBuffer, transitions: Any) -> ReplayBuffer:
    """Write a batch of transitions (every leaf [N, ...], N <= capacity) at the write position,
    wrapping around; once full, the oldest transitions are overwritten first."""
    n = jax.tree.leaves(transitions)[0].shape[0]
    if n > buffer.capacity:  # a batch larger than the buffer would overwrite itself
        raise ValueError(f"cannot add {n} transitions at once to a buffer of capacity {buffer.capacity}")
    index = (buffer.position + jnp.arange(n, dtype=jnp.int32)) % buffer.capacity
    data = jax.tree.map(lambda store, x: store.at[index].set(x.astype(store.dtype)),
                        buffer.data, transitions)
    return buffer.replace(data=data, position=(buffer.position + n) % buffer.capacity,
                          size=jnp.minimum(buffer.size + n, buffer.capacity))


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Any:
    """`batch_size` transitions (every leaf [batch_size, ...]) drawn uniformly with replacement from
    the filled slots. The buffer must not be empty (an empty one returns its zero-filled slot 0)."""
    index = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda store: store[index], buffer.data)
