"""Task families: K similar tasks behind one env, the task table a batched params pytree.

    env, params = envs.make("WalkerMorph-v0")     # params leaves have a leading task axis [K]
    task = envs.task(params, 2)                   # one task's params (no task axis)
    obs, state = env.reset(key, task)             # obs ends with a one-hot task id (K entries)

Tasks are a vmap axis exactly like seeds: a family is one compiled program whatever the task, and
changing a task's numbers (masses, lengths, reward weights) does not recompile. Agents spread their
parallel envs over the tasks of a table with `spread_tasks` (env i runs task i mod T), so one
network trains on every task at once; a table sliced to one task (`select_tasks`) is single-task
training. The one-hot id uses the task's index in the whole family, so a network trained on a
subset of tasks sees the same inputs when it meets the others.
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces

from envs.wrappers import Wrapper


@struct.dataclass
class TaskParams:
    """One task's params (`task_id` a scalar) or a table of tasks (`task_id` [T], every leaf of
    `env` with a leading [T] axis). `max_steps_in_episode` is static: the same for every task."""

    task_id: jax.Array
    env: Any
    max_steps_in_episode: int = struct.field(pytree_node=False, default=1000)


class TaskFamily(Wrapper):
    """Wraps an env whose params describe one task, given each task's params.

    With `one_hot` (default) the observation gets the task's one-hot id appended; without it the
    task is hidden context the agent must infer. `info["final_observation"]` gets it too."""

    def __init__(self, env: Any, task_params: Sequence[Any], task_names: Sequence[str],
                 one_hot: bool = True, max_steps_in_episode: int = 1000):
        super().__init__(env)
        if len(task_params) != len(task_names) or not task_params:
            raise ValueError("TaskFamily: give one name per task, at least one task")
        self.task_names, self.one_hot = list(task_names), one_hot
        self.num_tasks = len(task_names)
        self.max_steps_in_episode = max_steps_in_episode
        self._table = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *task_params)

    def default_params(self) -> TaskParams:
        """The whole task table."""
        return TaskParams(jnp.arange(self.num_tasks, dtype=jnp.int32), self._table,
                          self.max_steps_in_episode)

    def _observe(self, obs, params: TaskParams):
        if not self.one_hot:
            return obs
        return jnp.concatenate([obs.astype(jnp.float32),
                                jax.nn.one_hot(params.task_id, self.num_tasks, dtype=jnp.float32)])

    def reset(self, key, params: TaskParams):
        obs, state = self.env.reset(key, params.env)
        return self._observe(obs, params), state

    def step(self, key, state, action, params: TaskParams):
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action, params.env)
        if "final_observation" in info:
            info = {**info, "final_observation": self._observe(info["final_observation"], params)}
        return self._observe(obs, params), state, reward, terminated, truncated, info

    @staticmethod
    def _first(params: TaskParams):
        """One task's inner params: spaces have the same shape for every task."""
        return jax.tree.map(lambda x: x[0], params.env) if is_table(params) else params.env

    def observation_space(self, params: TaskParams):
        inner = self.env.observation_space(self._first(params))
        if len(inner.shape) != 1:
            raise ValueError(f"TaskFamily: observations must be vectors, got shape {inner.shape}")
        extra = self.num_tasks if self.one_hot else 0
        return spaces.Box(-jnp.inf, jnp.inf, (inner.shape[0] + extra,), jnp.float32)

    def action_space(self, params: TaskParams):
        """The first task's action space when given a table (families share the action shape;
        bounds that differ by task are applied per env, at step)."""
        return self.env.action_space(self._first(params))


def is_table(params: Any) -> bool:
    """True for a task table (a leading task axis), False for one task's or an ordinary env's params."""
    return isinstance(params, TaskParams) and jnp.ndim(params.task_id) == 1


def task_id_width(env: Any) -> int:
    """How many trailing observation entries of `env` (wrapped or not) are a one-hot task id: a
    family's task count, 0 when the id is hidden or `env` is not a family."""
    return env.num_tasks if getattr(env, "one_hot", False) else 0


def num_tasks(params: Any) -> int:
    return int(params.task_id.shape[0]) if is_table(params) else 1


def task(params: TaskParams, index: int) -> TaskParams:
    """Row `index` of a task table."""
    return jax.tree.map(lambda x: x[index], params)


def select_tasks(params: TaskParams, tasks: Sequence[int]) -> TaskParams:
    """The sub-table of rows `tasks` (their one-hot ids stay those of the whole family)."""
    index = np.asarray(tasks, dtype=np.int32)
    return jax.tree.map(lambda x: x[index], params)


def spread_tasks(params: Any, num_envs: int) -> tuple[Any, int | None]:
    """(per-env params, vmap axis) for `num_envs` parallel envs: with a task table, env i runs
    row i mod T (so envs are spread evenly when T divides num_envs); other params are shared
    (axis None)."""
    if not is_table(params):
        return params, None
    index = env_task_index(params, num_envs)
    return jax.tree.map(lambda x: x[index], params), 0


def env_task_index(params: Any, num_envs: int) -> jax.Array | None:
    """Which row of the table each of `num_envs` envs runs (None without a table)."""
    return jnp.arange(num_envs) % num_tasks(params) if is_table(params) else None
