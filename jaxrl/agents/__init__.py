"""The algorithm registry: a new algorithm is one folder under jaxrl/agents/ and one line here.

Each entry gives the config class, `make_train(config, env, env_params) -> train(config, key)`,
`validate(config, env, env_params)` (raises ConfigError) and `steps_per_update(config)`."""
from __future__ import annotations

from types import SimpleNamespace

from jaxrl.agents import dqn, natural_dqn, ppo
from jaxrl.agents import naf
from jaxrl.agents.ppo import train as ppo_train

ALGOS = {
    "ppo": SimpleNamespace(Config=ppo.PPOConfig, make_train=ppo.make_train, validate=ppo.validate,
                           steps_per_update=ppo_train.steps_per_update),
    "dqn": SimpleNamespace(Config=dqn.DQNConfig, make_train=dqn.make_train, validate=dqn.validate,
                           steps_per_update=dqn.steps_per_update),
    "natural_dqn": SimpleNamespace(Config=natural_dqn.NaturalDQNConfig,
                                   make_train=natural_dqn.make_train, validate=natural_dqn.validate,
                                   steps_per_update=natural_dqn.steps_per_update),
    "naf": SimpleNamespace(Config=naf.NAFConfig, make_train=naf.make_train, validate=naf.validate,
                           steps_per_update=naf.steps_per_update),
}


def get_algo(name: str) -> SimpleNamespace:
    from jaxrl.config import ConfigError

    if name not in ALGOS:
        raise ConfigError(f"--algo: unknown algorithm {name!r}; allowed: {', '.join(ALGOS)}")
    return ALGOS[name]


def register(name: str, base: str, **make_train_kwargs) -> SimpleNamespace:
    """Register a variant of algorithm `base` under `name`, e.g. PPO with another loss:
    `register("ppo_mine", base="ppo", loss_fn=my_loss)`; `run("ppo_mine", ...)` then trains it."""
    import functools

    spec = get_algo(base)
    ALGOS[name] = SimpleNamespace(**{**vars(spec), "make_train": functools.partial(
        spec.make_train, **make_train_kwargs)})
    return ALGOS[name]
