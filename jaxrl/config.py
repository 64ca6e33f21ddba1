"""Config fields: static (shape- or control-flow-changing, part of the compiled program) versus
dynamic (float hyperparameters, pytree leaves that can be vmapped and swept without recompiling),
and the generic checks that turn bad values into one-line errors naming the option."""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from flax import struct


MAX_SEED = 2**32 - 1  # seeds are uint32 PRNG seeds: a larger one would silently wrap around


class ConfigError(ValueError):
    """Bad user input; the message names the option (`--field-name`) and what is allowed."""


def static(default: Any, help: str, *, minimum: float | None = 1,
           choices: tuple[str, ...] | None = None) -> Any:
    """A field baked into the compiled program (changing it recompiles); `choices` lists the
    allowed values of a string field."""
    return struct.field(pytree_node=False, default=default,
                        metadata={"help": help, "static": True,
                                  "minimum": None if choices else minimum, "choices": choices})


def hparam(default: float, help: str, *, low: float = 0.0, high: float = math.inf,
           low_open: bool = False) -> Any:
    """A float hyperparameter: a traced pytree leaf, sweepable without recompiling."""
    return struct.field(default=default,
                        metadata={"help": help, "static": False, "range": (low, high, low_open)})


def option(name: str) -> str:
    return "--" + name.replace("_", "-")


def static_fields(config_cls) -> list[str]:
    return [f.name for f in dataclasses.fields(config_cls) if f.metadata.get("static")]


def dynamic_fields(config_cls) -> list[str]:
    return [f.name for f in dataclasses.fields(config_cls) if not f.metadata.get("static")]


def check_fields(config) -> None:
    """Range checks declared on the fields; raises ConfigError on the first bad value."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.metadata.get("static"):
            choices = f.metadata.get("choices")
            if choices and value not in choices:
                raise ConfigError(f"{option(f.name)}: got {value!r}, allowed: {', '.join(choices)}")
            minimum = f.metadata.get("minimum")
            values = value if isinstance(value, tuple) else (value,)
            if minimum is not None and any(isinstance(v, (int, float)) and not isinstance(v, bool)
                                           and v < minimum for v in values):
                raise ConfigError(f"{option(f.name)}: got {value}, must be >= {minimum}")
        else:
            low, high, low_open = f.metadata["range"]
            with np.errstate(over="ignore"):  # what the program computes with: 1e39 is inf there
                v = float(np.float32(value))
            if not (math.isfinite(v) and (v > low if low_open else v >= low) and v <= high):
                bound = f"> {low}" if low_open else f">= {low}"
                upper = "" if high == math.inf else f" and <= {high}"
                raise ConfigError(f"{option(f.name)}: got {value}, must be {bound}{upper}")


def make_config(config_cls, given: dict[str, Any]):
    """The config with the fields `given` (e.g. the options on a command line), every other field
    at the default that the given ones imply (`config_cls.implied_defaults(fields)`, e.g. natural
    DQN's per-solver lr and damping), else at its field default. The one place where implied
    defaults are applied: the CLI, sweeps and the Python API all come here."""
    fields = {f.name: f.default for f in dataclasses.fields(config_cls)} | dict(given)
    implied = getattr(config_cls, "implied_defaults", lambda fields: {})(fields)
    return config_cls(**(fields | {k: v for k, v in implied.items() if k not in given}))


def explicit_fields(config) -> dict[str, Any]:
    """The fields of `config` that differ from what its static choices imply (make_config with
    nothing given but the static fields): what a user must have set on purpose."""
    statics = {name: getattr(config, name) for name in static_fields(type(config))}
    implied = make_config(type(config), statics)
    return {k: v for k, v in to_dict(config).items() if k in statics or v != getattr(implied, k)}


def to_dict(config) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
