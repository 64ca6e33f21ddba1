"""Cost per update of natural DQN's variants against DQN, in one process: prints one JSON object.

bench.py (one subprocess per case, wall time) is the reference; on a shared machine its wall
times swing with other jobs. This script compiles DQN and each variant on bench's DQN settings
(rejax's: 1 env, batch 256, one gradient step per env step) as `jax.jit(jax.vmap(trainer))` over
`--seeds` runs on one device, then runs them in alternation, `--rounds` times, and reports for
each variant its median wall and process-CPU seconds and their ratios to DQN's of the same round
(medians over rounds). Like bench's ratio, these include the 2,048 warm-up updates without a
gradient step, which cost DQN and natural DQN about the same.

    .venv/bin/python scripts/cost_ratio.py --seeds 1 --rounds 3 \\
        --variants "kfac:kfac_trust_region=exact,kfac_stats_every=1;kfac"

A variant is SOLVER[:FIELD=VALUE,...] (natural DQN with that solver and its per-solver defaults,
then the fields given; bench.parse_case); DQN is always measured."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import CASES, parse_case  # noqa: E402  (the DQN settings and case syntax, one place)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="kfac", help="semicolon-separated "
                        "SOLVER[:FIELD=VALUE,...] (default %(default)s)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--total-steps", type=int, default=10_000)
    parser.add_argument("--env", default="CartPole-v1")
    args = parser.parse_args()

    import jax

    import envs
    from jaxrl.agents.dqn import DQNConfig
    from jaxrl.agents.dqn import make_train as dqn_train
    from jaxrl.agents.natural_dqn import NaturalDQNConfig
    from jaxrl.agents.natural_dqn import make_train as natural_train
    from jaxrl.runner import seed_key

    env, env_params = envs.make(args.env)
    overrides = dict(CASES["dqn"][0], total_steps=args.total_steps)
    cases = {"dqn": (DQNConfig(**overrides), dqn_train)}
    for text in args.variants.split(";"):
        _, solver, fields = parse_case(f"natural_dqn-{text}")
        cases[text] = (NaturalDQNConfig.for_solver(solver, **overrides, **fields), natural_train)
    keys = jax.vmap(seed_key)(np.arange(args.seeds))
    programs = {}
    for name, (config, make_train) in cases.items():
        fn = jax.jit(jax.vmap(make_train(config, env, env_params), in_axes=(None, 0)))
        programs[name] = (fn.lower(config, keys).compile(), config)

    times = {name: {"wall": [], "cpu": []} for name in cases}
    for _ in range(args.rounds):
        for name, (compiled, config) in programs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(compiled(config, keys))
            times[name]["wall"].append(time.perf_counter() - wall)
            times[name]["cpu"].append(time.process_time() - cpu)
    base = times["dqn"]
    out = {"seeds": args.seeds, "total_steps": args.total_steps, "rounds": args.rounds,
           "load_average": os.getloadavg(), "cases": {}}
    for name, t in times.items():
        out["cases"][name] = {
            "wall_seconds": float(np.median(t["wall"])), "cpu_seconds": float(np.median(t["cpu"])),
            "wall_ratio": float(np.median(np.divide(t["wall"], base["wall"]))),
            "cpu_ratio": float(np.median(np.divide(t["cpu"], base["cpu"]))),
            "wall_ratios": list(np.round(np.divide(t["wall"], base["wall"]), 3))}
    print(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
