"""Parallel TRPO (Requests for Research): wall-clock time to a return threshold for jaxrl's TRPO,
every seed in one compiled program, against sb3-contrib's single-threaded TRPO on the same MDP
(Gymnasium's Pendulum-v1, whose dynamics gymnax implements: `--check-dynamics` steps both from the
same states by the same actions), run one seed after another and two at a time on the 2 cores.

Both train with the same settings (`jaxrl.claims`' "trpo/Pendulum-v1": the RL zoo's Pendulum
TRPO without gSDE) and the same criterion: the mean return of the last `--window` finished
training episodes reaches `--threshold`. sb3 checks it at every step and stops there; ours runs
its whole budget in one program, and a seed's time to threshold is read off its per-update
metrics (start-up and compile, plus the run time up to the end of that update; the updates are
alike, so run time is linear in updates). Every time counts from process start, imports and
compiles included. Prints one JSON object; `--out FILE` also writes it.

    scripts/setup_peers.sh sb3
    .venv/bin/python scripts/parallel_trpo.py --check-dynamics --peer ~/.cache/sb3-peer/bin/python
    .venv/bin/python scripts/parallel_trpo.py --seeds 16 --peer ~/.cache/sb3-peer/bin/python \\
        --out docs/data/parallel_trpo.json
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_SCRIPT = os.path.join(ROOT, "scripts", "sb3_trpo.py")
CLAIM = "trpo/Pendulum-v1"


def sb3_hyper(config) -> dict:
    """sb3-contrib's TRPO keyword arguments for our TRPO config, field by field (the network is
    64x64 tanh, separate actor and critic, in both)."""
    batch = config.num_envs * config.num_steps
    return {"n_envs": config.num_envs, "n_steps": config.num_steps, "gamma": config.gamma,
            "gae_lambda": config.gae_lambda, "learning_rate": config.lr,
            "n_critic_updates": config.critic_epochs, "batch_size": batch // config.num_minibatches,
            "target_kl": config.max_kl, "cg_damping": config.cg_damping,
            "cg_max_steps": config.cg_iters, "line_search_max_iter": config.backtrack_iters,
            "line_search_shrinking_factor": config.backtrack_coef}


def first_reached(returns: np.ndarray, counts: np.ndarray, threshold: float, window: int) -> int:
    """The first update (index) at which the last >= `window` finished episodes (the fewest
    trailing updates holding that many) average at least `threshold`; -1 if none does."""
    for k in range(len(returns)):
        total = n = 0.0
        for j in range(k, -1, -1):
            if counts[j] > 0:
                total, n = total + returns[j] * counts[j], n + counts[j]
            if n >= window:
                break
        if n >= window and total / n >= threshold:
            return k
    return -1


def our_config(num_envs: int | None):
    """The claim's TRPO config; with `num_envs`, that many envs per seed with the same batch
    (num_steps = batch / num_envs): shorter rollouts, the same samples per update."""
    from jaxrl.claims import CLAIMS

    config = CLAIMS[CLAIM].make_config()
    if num_envs is None:
        return config
    batch = config.num_envs * config.num_steps
    return config.replace(num_envs=num_envs, num_steps=batch // num_envs)


def ours(seeds: int, threshold: float, window: int, num_envs: int | None) -> dict:
    """Runs in a fresh process (`--worker`): our TRPO on `seeds` seeds in one program."""
    start = time.time()
    from jaxrl.runner import run

    config = our_config(num_envs)
    results = run("trpo", "Pendulum-v1", [config], range(seeds), progress=None)
    wall = time.time() - start
    before_run = wall - results.run_seconds  # start-up, compile, set-up
    per_update = results.run_seconds / results.num_updates
    reached = [first_reached(r, c, threshold, window) for r, c in zip(
        results.metrics["episode_return_mean"][0], results.metrics["episode_return_count"][0])]
    return {"who": f"jaxrl TRPO, {config.num_envs} envs x {config.num_steps} steps", "seeds": seeds,
            "wall_seconds": wall,
            "compile_seconds": results.compile_seconds, "run_seconds": results.run_seconds,
            "total_steps": results.total_steps,
            "steps_to_threshold": [(k + 1) * results.steps_per_update if k >= 0 else None
                                   for k in reached],
            "seconds_to_threshold": [before_run + (k + 1) * per_update if k >= 0 else None
                                     for k in reached],
            "final_return": results.final_return()[0].tolist()}


def peer_seed(python: str, seed: int, threshold: float, window: int, max_steps: int,
              hyper: dict) -> dict:
    t0 = time.time()
    out = subprocess.run([python, PEER_SCRIPT, "--env", "Pendulum-v1", "--seed", str(seed),
                          "--threshold", str(threshold), "--window", str(window),
                          "--max-steps", str(max_steps), "--hyper", json.dumps(hyper)],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode:
        raise RuntimeError(f"sb3 peer failed on seed {seed}: {out.stderr.strip()[-500:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {**result, "process_seconds": time.time() - t0}


def peer(python: str, seeds: int, threshold: float, window: int, max_steps: int, hyper: dict,
         parallel: int) -> dict:
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        runs = list(pool.map(lambda s: peer_seed(python, s, threshold, window, max_steps, hyper),
                             range(seeds)))
    return {"who": f"sb3-contrib TRPO, {parallel} at a time", "seeds": seeds,
            "wall_seconds": time.time() - t0,
            "seconds_to_threshold": [r["process_seconds"] if r["reached"] else None for r in runs],
            "steps_to_threshold": [r["steps_to_threshold"] for r in runs]}


def check_dynamics(python: str, steps: int = 200, cases: int = 5) -> dict:
    """Steps gymnax's Pendulum-v1 and Gymnasium's from the same states by the same random torques;
    returns the largest differences of observation and reward (float32 against float64: the
    gap grows along a trajectory; in the first 10 steps it is float32 rounding)."""
    import gymnax
    import jax
    import jax.numpy as jnp

    env, params = gymnax.make("Pendulum-v1")
    rng = np.random.default_rng(0)
    worst_obs = worst_reward = worst_early = 0.0
    for _ in range(cases):
        state0 = [rng.uniform(-np.pi, np.pi), rng.uniform(-1, 1)]
        actions = rng.uniform(-2, 2, size=(steps, 1)).round(6).tolist()
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"state": state0, "actions": actions}, f)
        out = subprocess.run([python, PEER_SCRIPT, "--env", "Pendulum-v1", "--trajectory", f.name],
                             capture_output=True, text=True, check=True)
        os.unlink(f.name)
        theirs = json.loads(out.stdout.strip().splitlines()[-1])
        state = env.reset(jax.random.PRNGKey(0), params)[1].replace(
            theta=jnp.float32(state0[0]), theta_dot=jnp.float32(state0[1]))
        step = jax.jit(lambda s, a: env.step_env(jax.random.PRNGKey(0), s, a, params))
        for t, (action, obs_t, reward_t) in enumerate(zip(actions, theirs["obs"],
                                                          theirs["reward"])):
            obs, state, reward, _, _ = step(state, jnp.asarray(action, jnp.float32))
            gap = float(np.max(np.abs(np.asarray(obs) - obs_t)))
            worst_obs = max(worst_obs, gap)
            worst_early = max(worst_early, gap) if t < 10 else worst_early
            worst_reward = max(worst_reward, abs(float(reward) - reward_t))
    return {"check": "gymnax vs Gymnasium Pendulum-v1", "cases": cases, "steps": steps,
            "max_abs_obs_difference": worst_obs, "max_abs_obs_difference_first_10_steps": worst_early,
            "max_abs_reward_difference": worst_reward}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--threshold", type=float, default=-200.0,
                        help="return the last --window training episodes must average")
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--peer", default=None, help="python of the sb3 peer venv "
                        "(scripts/setup_peers.sh sb3)")
    parser.add_argument("--ours-envs", default="2", help="comma-separated envs per seed of our "
                        "runs, the batch kept at the claim's 2 x 1024 (2 = the claim's setting)")
    parser.add_argument("--check-dynamics", action="store_true")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(ours(args.seeds, args.threshold, args.window,
                              int(args.ours_envs) if args.ours_envs else None)))
        return
    if not args.peer:
        parser.error("--peer: the sb3 peer's python is needed (scripts/setup_peers.sh sb3)")
    if args.check_dynamics:
        result = check_dynamics(args.peer)
    else:
        from jaxrl.claims import CLAIMS

        config = CLAIMS[CLAIM].make_config()
        hyper = sb3_hyper(config)
        runs = {}
        for num_envs in args.ours_envs.split(","):
            t0 = time.time()
            out = subprocess.run([sys.executable, __file__, "--worker", "--seeds", str(args.seeds),
                                  "--threshold", str(args.threshold), "--window", str(args.window),
                                  "--ours-envs", num_envs], capture_output=True, text=True,
                                 cwd=ROOT, check=True,
                                 env={**os.environ, "JAXRL_CACHE_DIR": "off"})  # cold compiles
            runs[f"ours_{num_envs}_envs"] = {**json.loads(out.stdout.strip().splitlines()[-1]),
                                             "process_seconds": time.time() - t0}
            print(json.dumps(runs[f"ours_{num_envs}_envs"]), file=sys.stderr, flush=True)
        for parallel in (1, 2):
            runs[f"sb3_{parallel}_at_a_time"] = peer(args.peer, args.seeds, args.threshold,
                                                    args.window, config.total_steps, hyper, parallel)
            print(json.dumps(runs[f"sb3_{parallel}_at_a_time"]), file=sys.stderr, flush=True)
        result = {"benchmark": "parallel TRPO", "env": "Pendulum-v1", "claim": CLAIM,
                  "threshold": args.threshold, "window": args.window, "sb3_hyper": hyper,
                  "cpu_count": os.cpu_count(), **runs,
                  "speedup_all_seeds": {f"{peer} / {mine}": runs[peer]["wall_seconds"]
                                        / runs[mine]["process_seconds"]
                                        for peer in runs if peer.startswith("sb3")
                                        for mine in runs if mine.startswith("ours")}}
    print(json.dumps(result, indent=1))
    if args.out:
        from jaxrl.runner.storage import write_json

        write_json(args.out, result)


if __name__ == "__main__":
    main()
