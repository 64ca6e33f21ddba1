"""Hyperparameter sweeps with honest tuning: grid or random search on tuning seeds, then the best
config re-run on fresh test seeds that no tuning run used, reported with a 95% bootstrap CI.

Configs that differ only in float fields run as one compiled program; a grid over a static field
(num_envs, hidden_sizes, ...) is split into groups, one program each. Tuning seeds are
`0 .. seeds-1` and test seeds start at `TEST_SEED_OFFSET`, so they are disjoint by construction."""
from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Sequence

import numpy as np

from jaxrl import stats
from jaxrl.config import ConfigError, check_fields, explicit_fields, make_config, static_fields
from jaxrl.runner import Plan, Results, execute, make_plan

TEST_SEED_OFFSET = 1_000_000


@dataclasses.dataclass
class SweepResult:
    """`tuning`: one Results per group of configs sharing static fields; `test`: the best config
    re-run on the test seeds; `best`: that config."""

    tuning: list[Results]
    test: Results | None
    best: Any
    compiles: int

    def results_frame(self):
        """One row per (phase, config, seed): the swept fields and the final return."""
        import pandas as pd

        rows = []
        for phase, group in [("tune", r) for r in self.tuning] + [("test", self.test)] * bool(self.test):
            final = group.final_return()
            for c, cfg in enumerate(group.configs):
                fields = {f.name: _plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
                for s, seed in enumerate(group.seeds):
                    rows.append({"phase": phase, "config_id": _config_id(cfg), "seed": seed,
                                 **fields, "final_return": final[c, s],
                                 "diverged": bool(group.diverged[c, s])})
        return pd.DataFrame(rows)

    def summary(self, reps: int = 10_000) -> dict:
        table = self.results_frame()
        tune = table[table.phase == "tune"]
        ranking = []
        for config_id, rows in tune.groupby("config_id", sort=False):
            finite = rows.final_return[np.isfinite(rows.final_return)].to_numpy()
            ranking.append({"config_id": config_id, "tuning_iqm": float(stats.iqm(finite))
                            if finite.size else None, "num_seeds": int(len(rows))})
        out = {"compiles": self.compiles, "num_configs": len(ranking),
               "best_config": {k: _plain(v) for k, v in dataclasses.asdict(self.best).items()},
               "tuning": ranking}
        if self.test is not None:
            out["test"] = self.test.summary(reps=reps)["final_return"] | {
                "seeds": list(self.test.seeds)}
        return out


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _config_id(config) -> str:
    return ",".join(f"{f.name}={_plain(getattr(config, f.name))}" for f in dataclasses.fields(config)
                    if getattr(config, f.name) != f.default) or "default"


def parse_values(field: dataclasses.Field, text: str) -> list:
    """'1e-4,3e-4' -> typed values for one field (tuples as 64x64 or 64-64)."""
    kind = type(field.default)
    values = []
    for item in text.split(","):
        try:
            if kind is bool:
                values.append({"true": True, "false": False}[item.strip().lower()])
            elif kind is tuple:
                values.append(tuple(int(x) for x in item.replace("-", "x").split("x")))
            else:
                values.append(kind(item))
        except (KeyError, ValueError):
            raise ConfigError(f"--grid {field.name}: cannot read {item!r} as {kind.__name__}") from None
    return values


def grid_configs(base, grid: dict[str, Sequence], given: dict | None = None) -> list:
    """The cartesian product of `grid` over `base` (field name -> values). A grid point over a
    static choice gets that choice's own implied defaults (natural DQN's per-solver lr and
    damping) for every field not set on purpose: `given` (e.g. the command line's options),
    default the fields of `base` that differ from its own implied defaults."""
    names = list(grid)
    given = explicit_fields(base) if given is None else given
    kept = {k: v for k, v in given.items() if k not in grid}
    configs = [make_config(type(base), kept | dict(zip(names, combo)))
               for combo in itertools.product(*grid.values())]
    for cfg in configs:
        check_fields(cfg)
    return configs


def random_configs(base, ranges: dict[str, tuple[float, float, bool]], n: int, seed: int = 0) -> list:
    """`n` configs with each field drawn uniformly (log-uniformly when flagged) from [lo, hi]."""
    rng = np.random.default_rng(seed)
    configs = []
    for _ in range(n):
        values = {}
        for name, (lo, hi, log) in ranges.items():
            values[name] = float(math.exp(rng.uniform(math.log(lo), math.log(hi))) if log
                                 else rng.uniform(lo, hi))
        configs.append(base.replace(**values))
    for cfg in configs:
        check_fields(cfg)
    return configs


def group_by_static(configs: Sequence) -> list[list]:
    """Configs grouped so each group shares every static field (one compiled program per group)."""
    groups: dict[tuple, list] = {}
    for cfg in configs:
        key = tuple(_plain(getattr(cfg, name)) if not isinstance(getattr(cfg, name), tuple)
                    else getattr(cfg, name) for name in static_fields(type(cfg)))
        groups.setdefault(key, []).append(cfg)
    return list(groups.values())


def plan_sweep(algo: str, env: str, configs: Sequence, seeds: int, **plan_options) -> list[Plan]:
    """A sweep's plans, checked before anything compiles: one per group of configs sharing their
    static fields, on tuning seeds 0..seeds-1, the env built once (`make_plan`'s options)."""
    if seeds < 1:
        raise ConfigError(f"--seeds: got {seeds}, must be >= 1")
    groups = group_by_static(configs)
    base = make_plan(algo, env, groups[0], range(seeds), **plan_options)
    return [base] + [base.with_runs(group, range(seeds)) for group in groups[1:]]


def sweep(algo: str, env: str, configs: Sequence, *, seeds: int = 8, test_seeds: int = 16,
          env_kwargs: dict | None = None, tasks: Sequence[int] | None = None,
          single_task: bool = False, **execute_options) -> SweepResult:
    """Run every config on tuning seeds `0..seeds-1`, pick the best by IQM final return, and
    re-run it on `test_seeds` fresh seeds (none of which any tuning run used); the options of
    `jaxrl.runner.execute` apply to every run."""
    plans = plan_sweep(algo, env, configs, seeds, env_kwargs=env_kwargs, tasks=tasks,
                       single_task=single_task)
    return sweep_plans(plans, test_seeds=test_seeds, **execute_options)


def sweep_plans(plans: Sequence[Plan], *, test_seeds: int = 16, **execute_options) -> SweepResult:
    """`sweep` of already made plans (`plan_sweep`)."""
    if test_seeds < 0:
        raise ConfigError(f"--test-seeds: got {test_seeds}, must be >= 0")
    tuning = [execute(plan, **execute_options) for plan in plans]
    compiles = sum(results.compiles for results in tuning)
    scored = [(stats.iqm(f[np.isfinite(f)]) if np.isfinite(f).any() else -np.inf, cfg)
              for r in tuning for f, cfg in zip(r.final_return(), r.configs)]
    best = max(scored, key=lambda pair: pair[0])[1]
    test = None
    if test_seeds:
        test = execute(plans[0].with_runs(
            [best], range(TEST_SEED_OFFSET, TEST_SEED_OFFSET + test_seeds)), **execute_options)
        compiles += test.compiles
    return SweepResult(tuning=tuning, test=test, best=best, compiles=compiles)
