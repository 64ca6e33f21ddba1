"""The algorithm registry: a new algorithm is one folder under jaxrl/agents/ that exports its
`ALGO` (a `jaxrl.agents.base.Algo`: name, Config, make_trainer, validate, steps_per_update), and
one entry in `_BUILTIN` here. `register` adds a variant at run time."""
from __future__ import annotations

import dataclasses
import functools

from jaxrl.agents import (a2c, ddpg, dqn, hill_climbing, linear_pg, naf, natural_dqn, natural_pqn,
                          ppo, pqn, random_search, sac, td3, trpo, vpg)
from jaxrl.agents.base import Algo, Trainer

_BUILTIN = (ppo.ALGO, a2c.ALGO, vpg.ALGO, trpo.ALGO, dqn.ALGO, natural_dqn.ALGO, naf.ALGO, pqn.ALGO, natural_pqn.ALGO, ddpg.ALGO,
            td3.ALGO, sac.ALGO, random_search.ALGO, hill_climbing.ALGO, linear_pg.ALGO)
ALGOS: dict[str, Algo] = {algo.name: algo for algo in _BUILTIN}


def get_algo(name: str) -> Algo:
    from jaxrl.config import ConfigError

    if name not in ALGOS:
        raise ConfigError(f"--algo: unknown algorithm {name!r}; allowed: {', '.join(ALGOS)}")
    return ALGOS[name]


def register(name: str, base: str | Algo, **make_trainer_kwargs) -> Algo:
    """Register an algorithm under `name`: a new `Algo`, or a variant of a registered one with
    hooks of its make_trainer bound, e.g. PPO with another loss:
    `register("ppo_mine", base="ppo", loss_fn=my_loss)`; `run("ppo_mine", ...)` then trains it."""
    algo = base if isinstance(base, Algo) else get_algo(base)
    ALGOS[name] = dataclasses.replace(
        algo, name=name, make_trainer=functools.partial(algo.make_trainer, **make_trainer_kwargs))
    return ALGOS[name]


def env_fields(algo: str, env: str, given: dict | None = None) -> dict:
    """The config fields to build `algo`'s config for `env` from: the settings the env recommends
    for `algo` (`envs.recommended`), with the fields `given` on top. A recommended field that the
    algorithm's Config lacks is an error naming the env."""
    import envs
    from jaxrl.config import ConfigError

    fields = envs.recommended(env, algo)
    known = {f.name for f in dataclasses.fields(get_algo(algo).Config)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ConfigError(f"--env: {env} recommends {', '.join(unknown)} for {algo}, which "
                          f"{algo}'s config does not have (fix the env's RECOMMENDED)")
    return fields | dict(given or {})


def env_config(algo: str, env: str, **given):
    """`algo`'s Config for `env`: the fields `given`, the rest at the settings the env recommends
    (`envs.recommended`), the rest at their (implied) defaults; what `train --algo ALGO --env ENV`
    trains with, e.g. `env_config("ppo", "ReacherLinks-v0", total_steps=2_000_000)`."""
    from jaxrl.config import make_config

    return make_config(get_algo(algo).Config, env_fields(algo, env, given))


__all__ = ["ALGOS", "Algo", "Trainer", "env_config", "env_fields", "get_algo", "register"]
