"""Environments behind one contract (gymnax 1.0 semantics), and the registry that makes them.

    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

`params` is a pytree, so a batch of params is a batch of tasks. Every env auto-resets; the
observation before the reset is kept in `info["final_observation"]` so that agents can bootstrap
from it on truncation. `envs.make(name) -> (env, params)` builds any named env: every gymnax
env (classic control, MinAtar, bsuite, ...) by its gymnax name, brax envs as `brax/NAME` run on
the MJX backend, the task families of `FAMILIES` (see `envs.family`: their params are a task
table with a leading task axis), and whatever `envs.register(name, factory)` added.
`envs.spec(env, params)` says what the rest needs to know (spaces, time limit, tasks). This
package never imports jaxrl.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
from typing import Any, Callable

# XLA's CPU fusion emitters (jax 0.10.2) compile MJX's kinematics of a body chain five deep into a
# kernel ~25x slower than the classic emitters do (ReacherLinks-v0's whole step: 7k vs 94k env
# steps/s at 64 envs on the 2-core CPU; PPO, DQN and SAC on CartPole/Pendulum ran as fast or
# faster without them, docs/performance.md). So envs turns them off, unless XLA_FLAGS already
# says; like every XLA flag it counts only if set before jax starts its CPU backend, which the
# first `import envs` does (gymnax builds arrays at import). Accelerators ignore the flag.
CPU_FUSION_FLAG = "--xla_cpu_use_fusion_emitters=false"
if "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {CPU_FUSION_FLAG}".strip()

import gymnax  # noqa: E402  (after the flag above)

from envs.family import (TaskFamily, TaskParams, env_task_index, is_table, num_tasks, select_tasks,
                         spread_tasks, task, task_id_width)
from envs.wrappers import (ENV_AXIS, AutoReset, ClipAction, EpisodeStats, NormalizeObservation,
                           RescaleAction, Wrapper)

BRAX_ENVS = ("ant", "halfcheetah", "hopper", "humanoid", "humanoidstandup", "inverted_pendulum",
             "inverted_double_pendulum", "pusher", "reacher", "walker2d")

# Task families: name -> "module:function" returning (env, task table); imported on first use.
FAMILIES = {
    "CartPoleMorph-v0": "envs.classic_families:cartpole_morph",
    "PendulumMorph-v0": "envs.classic_families:pendulum_morph",
    "WalkerMorph-v0": "envs.walker:walker_morph",
    "WalkerSkills-v0": "envs.walker:walker_skills",
    "ReacherLinks-v0": "envs.reacher_links:reacher_links",
}

# Every named env besides gymnax's and brax/NAME: the families and what `register` adds.
_REGISTRY: dict[str, Callable[..., tuple[Any, Any]] | str] = dict(FAMILIES)
# What `register(..., recommended=)` gave: env name -> algorithm -> {config field: value}.
_RECOMMENDED: dict[str, dict[str, dict[str, Any]]] = {}


def register(name: str, factory: Callable[..., tuple[Any, Any]] | str,
             recommended: dict[str, dict[str, Any]] | None = None) -> None:
    """Make `make(name, **kwargs)` return `factory(**kwargs)`, an (env, params) pair that keeps
    the contract above (6-value step, auto-reset with info["final_observation"]: wrap an env that
    does not reset itself in `envs.AutoReset`). `factory` may be "module:function", imported on
    first use. The CLI, `jaxrl.load` and render all build envs through `make`; a module that
    registers envs is given to the CLI as `--env-module MODULE`. `recommended` maps an algorithm
    name to the config fields it should train this env with (see `recommended`)."""
    if name in _REGISTRY or name in gymnax.registered_envs or name.startswith("brax/"):
        raise ValueError(f"envs.register: {name!r} is already an env name; choose another")
    _REGISTRY[name] = factory
    _RECOMMENDED[name] = {algo: dict(fields) for algo, fields in (recommended or {}).items()}


def recommended(name: str, algo: str) -> dict[str, Any]:
    """The config fields (field name -> value) that env `name` recommends for training it with
    algorithm `algo` (observation normalisation, reward scaling, envs, rollout length, ...), {}
    when it recommends none. They live with the env, in one place: a family's module holds
    `RECOMMENDED = {env name: {algo: fields}}`, and `register(..., recommended=)` gives your
    own env's. jaxrl's CLI and
    `jaxrl.agents.env_config` start from them; options given explicitly win."""
    if name in _RECOMMENDED:
        return dict(_RECOMMENDED[name].get(algo, {}))
    factory = _REGISTRY.get(name)
    if not isinstance(factory, str):
        return {}
    table = getattr(importlib.import_module(factory.split(":")[0]), "RECOMMENDED", {})
    return dict(table.get(name, {}).get(algo, {}))


def import_env_module(module: str) -> None:
    """Import a module that registers envs (`--env-module`); ValueError naming it if it fails."""
    try:
        importlib.import_module(module)
    except Exception as e:
        raise ValueError(f"--env-module: cannot import {module!r} ({type(e).__name__}: {e})") from None


def list_envs() -> list[str]:
    """Every name `make` accepts."""
    return sorted(gymnax.registered_envs) + [f"brax/{name}" for name in BRAX_ENVS] + list(_REGISTRY)


def make(name: str, **kwargs: Any) -> tuple[Any, Any]:
    """Build env `name` and its default params. Raises ValueError naming the allowed envs."""
    if name.startswith("brax/") and name[5:] in BRAX_ENVS:
        from envs.brax_adapter import make_brax

        return make_brax(name[5:], **kwargs)
    if name in _REGISTRY:
        factory = _REGISTRY[name]
        if isinstance(factory, str):
            module, function = factory.split(":")
            factory = getattr(importlib.import_module(module), function)
        return factory(**kwargs)
    if name in gymnax.registered_envs:
        env, params = gymnax.make(name, **kwargs)
        return env, params
    raise ValueError(f"--env: unknown environment {name!r}; allowed: {', '.join(list_envs())} "
                     "(or your own: envs.register, --env-module)")


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """What the runner, the CLI and the agents need to know of an env, in one place."""

    observation_shape: tuple[int, ...]
    action_space: Any
    discrete: bool
    max_steps_in_episode: int
    num_tasks: int
    task_names: list[str] | None


def spec(env: Any, params: Any) -> EnvSpec:
    """The EnvSpec of an (env, params) pair from `make` (a task table's: its selected rows)."""
    return EnvSpec(observation_shape=tuple(env.observation_space(params).shape),
                   action_space=env.action_space(params), discrete=is_discrete(env, params),
                   max_steps_in_episode=max_steps(params), num_tasks=num_tasks(params),
                   task_names=getattr(env, "task_names", None))


DEFAULT_MAX_STEPS = 1000  # the time limit assumed for an env whose params set none


def max_steps(params: Any) -> int:
    """The env's time limit in steps (`params.max_steps_in_episode`), DEFAULT_MAX_STEPS when its
    params set none: the one rule for evaluation caps and the final-return window."""
    value = getattr(params, "max_steps_in_episode", None)
    return int(value) if value else DEFAULT_MAX_STEPS


def is_discrete(env: Any, params: Any) -> bool:
    """True when the action space is a gymnax Discrete space."""
    return isinstance(env.action_space(params), gymnax.environments.spaces.Discrete)


__all__ = ["make", "register", "recommended", "import_env_module", "spec", "EnvSpec", "list_envs", "is_discrete", "max_steps", "DEFAULT_MAX_STEPS", "Wrapper", "AutoReset", "EpisodeStats",
           "NormalizeObservation", "ENV_AXIS", "ClipAction", "RescaleAction", "BRAX_ENVS", "FAMILIES", "TaskFamily",
           "TaskParams", "env_task_index", "is_table", "num_tasks", "select_tasks", "spread_tasks", "task", "task_id_width"]
