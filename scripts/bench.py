"""Speed benchmark: prints one JSON object.

For each algorithm in --algos (default ppo; any registered name, or natural_dqn-SOLVER) at each
seed count: an algorithm in CASES on its settings there (matched to rejax's), any other at its
defaults on CartPole-v1 (the episode agents, random_search, hill_climbing and linear_pg, at their
default budgets: they count candidates or updates, not --total-steps). For PPO on CartPole-v1 with
PureJaxRL's settings (4 envs x 128 steps, 4 epochs, 4 minibatches, 64x64 tanh) at 1, 16 and 256
seeds, and for env-only rollouts (random actions), it reports env
steps/s (seeds x steps / run seconds, compile excluded), compile seconds (cold: no persistent
cache) and peak resident memory. Each case runs in its own subprocess so its peak memory is its
own. With `--peer PYTHON` it also runs rejax (scripts/rejax_peer.py, in that interpreter's
venv) on the same settings right after ours, and reports the ratio.

    .venv/bin/python scripts/bench.py [--seeds 1,16,256] [--total-steps 500000] [--peer PYTHON]
    .venv/bin/python scripts/bench.py --algos dqn --seeds 1,16 --total-steps 20000 --peer PYTHON
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_SCRIPT = os.path.join(ROOT, "scripts", "rejax_peer.py")  # rejax 0.1.3 in its own venv
# This PPO's arithmetic per env step: acting (forward) plus 4 epochs of forward and backward on
# a 64x64 actor and critic, ~231 kFLOP; this box's f32 matmul peak is ~148 GFLOP/s.
FLOP_PER_STEP = 231e3
PEAK_FLOPS = 148e9


# Settings matched to the peer's: (env, our config overrides, rejax_peer.py overrides, steps cap).
# rejax 0.1.3's own defaults are what the peer runs with; ours are set field by field to them.
# Differences left: rejax always evaluates once at the end (a few episodes, inside its timing);
# rejax's optimizers are Adam where ours are RAdam (PQN); metrics rows: ours auto (--log-every 0).
CASES = {
    # PureJaxRL's CartPole PPO: 4 envs x 128 steps, 4 epochs, 4 minibatches, 64x64 tanh.
    "ppo": ("CartPole-v1", {}, ["num_envs=4", "num_steps=128", "num_epochs=4", "num_minibatches=4",
                                "learning_rate=0.00025", "max_grad_norm=0.5", "activation=tanh"],
            32_000_000),
    # rejax's DQN defaults: 1 env, buffer 131072, batch 256, one update per env step, Polyak
    # 0.99 every step, learning after 2048 steps, 64x64 (rejax: swish; ours: relu).
    "dqn": ("CartPole-v1", dict(num_envs=1, buffer_size=131_072, batch_size=256,
                                learning_starts=2048, train_frequency=1, target_network_frequency=1,
                                tau=0.01, hidden_sizes=(64, 64), log_every=1),  # updates = steps
            [], 320_000),
    # rejax's SAC defaults: 1 env, buffer 131072, batch 256, learning after 2048 steps, one
    # gradient step per env step for critics, actor and temperature (no delay), Polyak 0.99 every
    # step, Adam 3e-4 for all three, 64x64 relu, target entropy -|A|.
    "sac": ("Pendulum-v1", dict(num_envs=1, buffer_size=131_072, batch_size=256,
                                learning_starts=2048, policy_frequency=1, tau=0.01,
                                hidden_sizes=(64, 64), activation="relu", policy_lr=3e-4,
                                q_lr=3e-4), [], 320_000),
    # rejax's TD3 defaults: as SAC, plus exploration noise 0.3, target noise 0.2 clipped at 0.5,
    # actor and targets every 2 gradient steps, 64x64 swish.
    "td3": ("Pendulum-v1", dict(num_envs=1, buffer_size=131_072, batch_size=256,
                                learning_starts=2048, policy_frequency=2, tau=0.01,
                                hidden_sizes=(64, 64), activation="swish", lr=3e-4,
                                exploration_noise=0.3, policy_noise=0.2, noise_clip=0.5),
            [], 320_000),
    # rejax's PQN defaults: 64 envs x 64 steps, 1 epoch of 16 minibatches, lambda 0.9, 64x64 relu
    # with LayerNorm, epsilon 1 -> 0.05 over 10% of the run, lr 3e-4 constant, no gradient clip.
    "pqn": ("CartPole-v1", dict(num_envs=64, num_steps=64, update_epochs=1, num_minibatches=16,
                                q_lambda=0.9, hidden_sizes=(64, 64), exploration_fraction=0.1,
                                lr=3e-4, anneal_lr=False, max_grad_norm=1e9), [], 32_000_000),
}


def parse_case(text: str) -> tuple[str, str | None, dict]:
    """'natural_dqn-kfac:kfac_stats_every=1,kfac_trust_region=exact' -> (algo, solver or None,
    config fields given); values are read as int, else float, else str."""
    head, _, rest = text.partition(":")
    name, _, solver = head.partition("-")
    fields = {}
    for item in filter(None, rest.split(",")):
        key, value = item.split("=")
        for cast in (int, float, str):
            try:
                fields[key] = cast(value)
                break
            except ValueError:
                pass
    return name, solver or None, fields


def bench_algo(algo: str, seeds: int, total_steps: int, env_name: str) -> dict:
    import jax

    from jaxrl.agents import get_algo
    from jaxrl.runner import run

    # natural DQN runs on DQN's settings, so the two differ only in the optimizer
    name, solver, fields = parse_case(algo)
    Config = get_algo(name).Config
    overrides = dict(CASES.get(name.replace("natural_", ""), (None, {}))[1])
    if "total_steps" in {f.name for f in dataclasses.fields(Config)}:  # the episode agents count
        overrides["total_steps"] = total_steps  # candidates or updates: their defaults run
    overrides.update(fields)  # the case's own fields win over the peer-matched settings
    # natural_dqn-kfac: the preconditioner's solver, with its per-solver defaults
    config = Config.for_solver(solver, **overrides) if solver else Config(**overrides)
    results = run(name, env_name, [config], range(seeds), progress=None)
    steps_per_second = seeds * results.total_steps / results.run_seconds
    out = {"case": algo, "env": env_name, "num_seeds": seeds, "total_steps": results.total_steps,
           "compile_seconds": results.compile_seconds, "run_seconds": results.run_seconds,
           "env_steps_per_second": steps_per_second,
           "updates_per_second": seeds * results.num_updates / results.run_seconds,
           "final_return_mean": float(np.nanmean(results.final_return())),
           "devices": [str(d) for d in jax.devices()]}
    if algo == "ppo":
        out["fraction_of_arithmetic_limit"] = steps_per_second * FLOP_PER_STEP / PEAK_FLOPS
    return out


def _time_rollout(rollout) -> tuple[float, float]:
    """(compile seconds, run seconds) of `rollout(key)`, compiled once and run once."""
    import jax

    t0 = time.perf_counter()
    compiled = jax.jit(rollout).lower(jax.random.PRNGKey(0)).compile()
    compile_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(jax.random.PRNGKey(1)))
    return compile_seconds, time.perf_counter() - t0


def bench_env_only(num_envs: int, num_steps: int, env_name: str) -> dict:
    """Random-action rollouts of `num_envs` envs (a task family's envs spread over its tasks).
    For an MJX task family (one with `mj_model`), also the bare physics of the same model in the
    same process: jit(vmap(frame_skip x mjx.step)) with random controls, no observation, reward,
    reset or task switching, and the ratio of the two (the family's overhead)."""
    import jax

    import envs
    from jaxrl.agents.base import batched_env

    env, params = envs.make(env_name)
    space = env.action_space(params)
    reset_envs, step_envs = batched_env(env, params, num_envs)

    def rollout(key):
        obs, state = reset_envs(jax.random.split(key, num_envs))

        def step(state, key):
            k_act, k_step = jax.random.split(key)
            action = jax.vmap(space.sample)(jax.random.split(k_act, num_envs))
            obs, state, reward, *_ = step_envs(jax.random.split(k_step, num_envs), state, action)
            return state, reward.sum()

        return jax.lax.scan(step, state, jax.random.split(key, num_steps))[1].sum()

    compile_seconds, run_seconds = _time_rollout(rollout)
    result = {"case": "env_only", "env": env_name, "num_envs": num_envs, "num_steps": num_steps,
              "compile_seconds": compile_seconds, "run_seconds": run_seconds,
              "env_steps_per_second": num_envs * num_steps / run_seconds}
    if hasattr(env, "mj_model"):
        raw = bench_raw_mjx(env.mj_model(0), env.frame_skip, num_envs, num_steps)
        result.update(raw, family_cost_vs_raw=raw["raw_mjx_steps_per_second"]
                      / result["env_steps_per_second"])
    return result


def bench_raw_mjx(mj_model, frame_skip: int, num_envs: int, num_steps: int) -> dict:
    """Env steps/s of a bare `jit(vmap(mjx.step))` (frame_skip physics steps per env step)."""
    import jax
    from mujoco import mjx

    model = mjx.put_model(mj_model)
    nu = mj_model.nu

    def rollout(key):
        data = jax.vmap(lambda _: mjx.make_data(model))(jax.numpy.arange(num_envs))

        def step(data, key):
            ctrl = jax.random.uniform(key, (num_envs, nu), minval=-1.0, maxval=1.0)
            data = jax.vmap(lambda d, c: jax.lax.fori_loop(
                0, frame_skip, lambda _, d: mjx.step(model, d), d.replace(ctrl=c)))(data, ctrl)
            return data, data.qpos.sum()

        return jax.lax.scan(step, data, jax.random.split(key, num_steps))[1].sum()

    compile_seconds, run_seconds = _time_rollout(rollout)
    return {"raw_mjx_compile_seconds": compile_seconds, "raw_mjx_run_seconds": run_seconds,
            "raw_mjx_steps_per_second": num_envs * num_steps / run_seconds}


def in_subprocess(args: list[str], python: str = sys.executable) -> dict:
    env = {**os.environ, "JAXRL_CACHE_DIR": "off"}  # cold compiles: no persistent cache
    out = subprocess.run([python, *args], capture_output=True, text=True, cwd=ROOT, env=env)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed",
                "args": args}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", default="ppo", help="comma-separated: ppo, dqn, "
                        "natural_dqn-kfac (natural DQN with that solver), ...; a case may end in "
                        ":FIELD=VALUE;... to set config fields (';' between fields)")
    parser.add_argument("--seeds", default="1,16,256", help="comma-separated seed counts")
    parser.add_argument("--total-steps", type=int, default=500_000,
                        help="env steps per seed (capped at 32M / seeds so 256 seeds stay short)")
    parser.add_argument("--env", default=None, help="env of every case (default: each algorithm's "
                        "case env, CartPole-v1 or Pendulum-v1; CartPole-v1 for --env-only)")
    parser.add_argument("--env-only-envs", "--batch", default="1024",
                        help="envs in the env-only case, comma-separated for several (default %(default)s)")
    parser.add_argument("--vs", default=None, help="with --env-only: also run this env (e.g. "
                        "brax/walker2d) at each --batch, right after --env, and report "
                        "speed_vs = --env's env steps/s / its")
    parser.add_argument("--env-only", action="store_true", help="only the env-only case: random-"
                        "action rollouts of --env at --batch envs (for an MJX task family also "
                        "the bare mjx.step of the same model, raw_mjx_steps_per_second)")
    parser.add_argument("--env-steps", type=int, default=1000, help="steps per env in the env-only "
                        "case (default %(default)s)")
    parser.add_argument("--peer", default=None, help="python of a venv with rejax 0.1.3 installed")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if not all(b.strip().isdigit() and int(b) > 0 for b in args.env_only_envs.split(",")):
        parser.error(f"--batch: got {args.env_only_envs!r}, must be positive integers separated by commas")
    if args.worker:  # one measurement, in this process: no persistent cache, so compiles are cold
        kind, n = args.worker.rsplit(":", 1)
        result = (bench_env_only(int(n), args.env_steps, args.env) if kind == "env"
                  else bench_algo(kind, int(n), args.total_steps, args.env))
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    cases = []
    for algo in [] if args.env_only else [a.replace(";", ",") for a in args.algos.split(",")]:
        env, _, peer_args, cap = CASES.get(algo, (args.env, None, None, 32_000_000))
        env = args.env or env or "CartPole-v1"
        for n in [int(s) for s in args.seeds.split(",")]:
            steps = min(args.total_steps, cap // n)
            ours = in_subprocess([__file__, "--worker", f"{algo}:{n}", "--total-steps", str(steps),
                                  "--env", env])
            cases.append(ours)
            print(json.dumps(ours), file=sys.stderr, flush=True)  # partial results survive a kill
            if args.peer and peer_args is not None:
                peer = in_subprocess([PEER_SCRIPT, algo, env, str(n), str(steps), *peer_args],
                                     python=args.peer)
                ours["peer"] = peer
                if "env_steps_per_second" in peer and "env_steps_per_second" in ours:
                    ours["speedup_vs_peer"] = (ours["env_steps_per_second"]
                                               / peer["env_steps_per_second"])
                print(json.dumps(peer), file=sys.stderr, flush=True)
    for batch in [int(b) for b in args.env_only_envs.split(",")]:
        ours = in_subprocess([__file__, "--worker", f"env:{batch}", "--env", args.env or "CartPole-v1",
                              "--env-steps", str(args.env_steps)])
        cases.append(ours)
        print(json.dumps(ours), file=sys.stderr, flush=True)
        if args.vs:
            other = in_subprocess([__file__, "--worker", f"env:{batch}", "--env", args.vs,
                                   "--env-steps", str(args.env_steps)])
            ours["vs"] = other
            if "env_steps_per_second" in other and "env_steps_per_second" in ours:
                ours["speed_vs"] = ours["env_steps_per_second"] / other["env_steps_per_second"]
            print(json.dumps(other), file=sys.stderr, flush=True)
    print(json.dumps({"benchmark": args.algos, "cpu_count": os.cpu_count(), "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
