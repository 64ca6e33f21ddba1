"""Planning a run, once: the algorithm, the env (built once: an MJX family compiles its MuJoCo
models), the task rows, every config validated, the seeds checked, the params to fine-tune from
checked to fit, and the trainer. The CLI makes the plan while it checks the command line and
hands it to `execute`; `run` (the Python API) makes it the same way."""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import numpy as np

import envs
from jaxrl.agents import Algo, Trainer, get_algo
from jaxrl.config import MAX_SEED, ConfigError, static_fields


def seed_key(seed: int) -> jax.Array:
    """The PRNG key of seed `seed`: run i of a vmapped batch equals a lone run with this key."""
    return jax.random.PRNGKey(seed)


def task_plan(env_name: str, env_params, tasks: Sequence[int] | None,
              single_task: bool) -> list[list[int]] | None:
    """The task ids of each run row: None for an ordinary env; [[all selected]] for multi-task
    training; [[t] for each selected t] with single_task. Raises ConfigError on bad --tasks."""
    if not envs.is_table(env_params):
        if tasks is not None or single_task:
            families = ", ".join(envs.FAMILIES)
            raise ConfigError(f"--tasks/--single-task: {env_name} is not a task family; "
                              f"families: {families}")
        return None
    k = envs.num_tasks(env_params)
    ids = list(range(k)) if tasks is None else [int(t) for t in tasks]
    if not ids or len(set(ids)) != len(ids) or not all(0 <= t < k for t in ids):
        raise ConfigError(f"--tasks: got {ids}; give distinct task ids in 0..{k - 1} "
                          f"({env_name} has {k} tasks)")
    return [[t] for t in ids] if single_task else [ids]


def stack_configs(configs: Sequence[Any]) -> Any:
    """One config whose float leaves are [N] arrays; every config must share the static fields."""
    names = static_fields(type(configs[0]))
    for cfg in configs[1:]:
        for name in names:
            if getattr(cfg, name) != getattr(configs[0], name):
                raise ConfigError(f"--{name.replace('_', '-')}: a static field must be the same "
                                  "for every config of one run (sweep it as separate groups)")
    return jax.tree.map(lambda *xs: np.asarray(xs, np.float32), *configs)


@dataclasses.dataclass(frozen=True, eq=False)
class Plan:
    """A checked run, ready to compile: `configs` has one entry per run row (config x task
    selection, config-major), `row_tasks` the task ids of each row (None unless a task family),
    `env_params` the env params of the first row (a task table's selected rows for a family)."""

    spec: Algo
    env_name: str
    env: Any
    family_params: Any  # the env's params as made (a family's whole task table)
    configs: list
    seeds: Sequence[int]  # a range stays a range: a huge --seeds is refused before any list
    tasks: list[int] | None  # the task selection asked for (None: all)
    single_task: bool
    row_tasks: list[list[int]] | None
    init_params: Any  # leaves [seeds, ...]: seed i's params to fine-tune from, or None
    trainer: Trainer

    @property
    def algo(self) -> str:
        return self.spec.name

    @property
    def n_runs(self) -> int:
        return len(self.configs) * len(self.seeds)

    @property
    def env_params(self):
        return self.family_params if self.row_tasks is None else self.row_params(0)

    def row_params(self, row: int):
        return envs.select_tasks(self.family_params, self.row_tasks[row])

    def trainer_for(self, env_params) -> Trainer:
        """The trainer on `env_params`: None for the plan's own; for a task family a run's
        (traced) task table, so one compiled program serves every task selection of a size."""
        if env_params is None:
            return self.trainer
        return self.spec.make_trainer(self.configs[0], self.env, env_params)

    def with_runs(self, configs: Sequence[Any], seeds: Sequence[int]) -> "Plan":
        """The same env and tasks with other configs and seeds (a sweep's groups, its test
        re-run), checked again; the env is not built again."""
        return _plan(self.spec, self.env_name, self.env, self.family_params, configs, seeds,
                     self.tasks, self.single_task, None)


def make_plan(algo: str, env_name: str, configs: Sequence[Any], seeds: Sequence[int], *,
              env_kwargs: dict | None = None, tasks: Sequence[int] | None = None,
              single_task: bool = False, init_params: Any = None) -> Plan:
    """Check everything about a run before compiling (ConfigError naming the option) and build
    its env and trainer. `init_params`: leaves [seeds, ...] (a finished run's params), checked
    to have this run's network shapes."""
    spec = get_algo(algo)
    try:
        env, family_params = envs.make(env_name, **(env_kwargs or {}))
    except ValueError as e:  # envs never imports jaxrl, so it raises a plain ValueError
        raise ConfigError(str(e)) from None
    return _plan(spec, env_name, env, family_params, configs, seeds, tasks, single_task,
                 init_params)


def _plan(spec, env_name, env, family_params, configs, seeds, tasks, single_task,
          init_params) -> Plan:
    configs = list(configs)
    seeds = seeds if isinstance(seeds, range) else [int(s) for s in seeds]
    if not configs or not len(seeds):
        raise ConfigError("--seeds: a run needs at least one config and one seed")
    if not 0 <= min(seeds) <= max(seeds) <= MAX_SEED:
        raise ConfigError(f"--seeds: seeds must be in 0..{MAX_SEED} (32-bit), got "
                          f"{min(seeds)}..{max(seeds)}")
    row_tasks = task_plan(env_name, family_params, tasks, single_task)
    if row_tasks is not None:  # one row per (config, task selection)
        configs = [cfg for cfg in configs for _ in row_tasks]
        row_tasks = row_tasks * (len(configs) // len(row_tasks))
    env_params = family_params if row_tasks is None else envs.select_tasks(family_params,
                                                                            row_tasks[0])
    for cfg in configs:
        spec.validate(cfg, env, env_params)
    stack_configs(configs)  # the static fields agree
    trainer = spec.make_trainer(configs[0], env, env_params)
    if init_params is not None:
        _check_fits(init_params, trainer, configs[0], len(seeds))
    return Plan(spec=spec, env_name=env_name, env=env, family_params=family_params,
                configs=configs, seeds=seeds, tasks=None if tasks is None else list(tasks),
                single_task=bool(single_task and row_tasks is not None), row_tasks=row_tasks,
                init_params=init_params, trainer=trainer)


def params_like(trainer: Trainer, config) -> Any:
    """The shapes and dtypes of one run's `trainer.params` (nothing is computed)."""
    return jax.eval_shape(lambda: trainer.params(trainer.init(config, jax.random.PRNGKey(0))))


def _check_fits(init_params, trainer: Trainer, config, num_seeds: int) -> None:
    like = params_like(trainer, config)
    mine = [(x.shape, x.dtype) for x in jax.tree.leaves(like)]
    theirs = [(x.shape[1:], x.dtype) for x in jax.tree.leaves(init_params)]
    if jax.tree.structure(like) != jax.tree.structure(init_params) or mine != theirs:
        raise ConfigError("--init-from: the params do not fit this network (compare "
                          "--hidden-sizes and the other static fields)")
    if any(x.shape[0] != num_seeds for x in jax.tree.leaves(init_params)):
        raise ConfigError(f"--init-from: give params for each of the {num_seeds} seeds")
