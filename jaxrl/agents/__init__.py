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


__all__ = ["ALGOS", "Algo", "Trainer", "get_algo", "register"]
