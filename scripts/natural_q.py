"""Is natural Q-learning better than regular Q-learning, and when? (issue 3)

DQN (Adam) and PQN (RAdam; second edition) against natural DQN with each Fisher solver (gram,
cg, kfac) on CartPole-v1, Acrobot-v1 and Breakout-MinAtar, the replay methods each with and without
a target network (PQN has none: target-off cells only). Every method gets the same tuning budget:
an 8-point step-size grid (DQN and PQN: lr 6.25e-5 .. 8e-3; natural DQN: the trust-region step's
eta_max 2^-7 .. 1; both factor-2 grids spanning 128x, both traced floats, so a grid is one
compiled program) on tuning seeds 0..T-1, then the best setting (IQM final return,
`jaxrl.sweep.sweep`) re-run on fresh test seeds from jaxrl.sweep.TEST_SEED_OFFSET. Everything else
is the library's defaults (jaxrl/agents/*/config.py; natural DQN's per-solver SOLVER_DEFAULTS),
the same for every method of a family.

One cell = (env, target network on/off, method). Each finished cell is written to
OUT/cells/CELL.json as soon as it completes (atomically), and OUT/summary.json is rebuilt after
every cell, so a cut-off run keeps what it finished; running the same command again resumes and
skips finished cells. An existing OUT made with different settings is refused (exit 2).

Before the study, a short back-to-back timing pass (OUT/timing.json) runs every method a few
hundred gradient updates per env, alternating methods, several rounds, with the study's batch of
runs: its median ms per update gives the cost estimate printed before launching (--plan stops
there) and the wall time per update reported (in-run timings of the study itself are also saved,
but other work on a shared machine makes them noisy).

Reported per cell (test seeds; summary.json, read by notebooks/natural_q.ipynb): final return
(mean return of the episodes of the last 10% of updates, at least one longest episode's worth:
`Results.final_window`; a diverged run scores the env's floor), normalised area under the learning curve,
collapse (the curve reaches the env's threshold, then falls below half of it, on the normalised
scale), the worst-10% tail (CVaR), step-size sensitivity (fraction of the grid whose tuning IQM
is within 90% of the best, normalised scores) and the time-matched return (each method's curve
read at the wall time DQN needs for its whole run, from the timing pass).

Sizes (env steps per run; tuning seeds per grid point; test seeds):
  tiny  1.6k steps, 4 envs, batch 16, 16x16 net; 1; 8. A smoke test (tests/test_natural_q.py).
  cpu   CartPole-v1 and Acrobot-v1 50k, Breakout-MinAtar 100k (buffer 20k); learning starts at 5k;
        1; 8. What a shared 2-core CPU finishes in about an hour (~17 min per classic env).
  cpu500k  500k, 500k, 1M at the library defaults; 2; 64. The second edition (issue 14) on a CPU:
        DQN's own budget (CleanRL's DQN reaches 498 and -89 on CartPole and Acrobot there).
  full  500k, 500k, 2M at the library defaults; 8; 64. The issue's size, for a GPU.
--steps, --tune-seeds and --test-seeds override a size (a different study: new --out).

    .venv/bin/python scripts/natural_q.py --size cpu --out runs/natural_q-cpu
    .venv/bin/python scripts/natural_q.py --size cpu500k --envs CartPole-v1 --out runs/natural_q-500k
    .venv/bin/python scripts/natural_q.py --size cpu --out runs/natural_q-cpu --plan
    .venv/bin/python scripts/natural_q.py --size tiny --envs CartPole-v1 --methods dqn,kfac
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

from jaxrl.runner.storage import plain, write_json

# In the order cells run: the cheap solvers land first, gram (a B x B solve per step) last.
METHODS = {"dqn": ("dqn", None), "pqn": ("pqn", None), "kfac": ("natural_dqn", "kfac"),
           "natural_pqn": ("natural_pqn", "kfac"), "cg": ("natural_dqn", "cg"),
           "gram": ("natural_dqn", "gram")}
# PQN learns from its own rollouts (no replay buffer, no target network): its cells are target-off
# only, and an update is a whole rollout (num_envs x num_steps env steps, epochs of minibatches).
ROLLOUT_ALGOS = ("pqn", "natural_pqn")
# Normalisation (lo, hi) and collapse threshold per env. MinAtar's is our choice: a score of 10
# is far above random play (~0.5) and reachable by a 64x64 MLP DQN in a few 100k steps.
ENVS = {"CartPole-v1": dict(lo=0.0, hi=500.0, threshold=475.0),
        "Acrobot-v1": dict(lo=-500.0, hi=0.0, threshold=-100.0),
        "Breakout-MinAtar": dict(lo=0.0, hi=20.0, threshold=10.0)}
TARGETS = {"on": 100, "off": 0}  # target_network_frequency (iterations; 0 = no target network)
GRIDS = {"dqn": [6.25e-5 * 2 ** k for k in range(8)],  # Adam (PQN: RAdam) lr, 6.25e-5 .. 8e-3
         "natural": [2.0 ** (k - 7) for k in range(8)]}  # eta_max, 1/128 .. 1
BINS = 100  # learning curves are stored as count-weighted means over this many update bins
ORDER = ["CartPole-v1", "Acrobot-v1", "Breakout-MinAtar"]

# Per size: env steps per run, tuning/test seeds, config overrides (same for every method).
SIZES = {
    "tiny": dict(steps={e: 1600 for e in ENVS}, tune_seeds={e: 1 for e in ENVS},
                 test_seeds={e: 8 for e in ENVS}, timing_updates=None, timing_rounds=1,
                 overrides=dict(num_envs=4, learning_starts=200, buffer_size=2000, batch_size=16,
                                hidden_sizes=(16, 16)),
                 rollout_overrides=dict(num_envs=4, num_steps=8, num_minibatches=2,
                                        hidden_sizes=(16, 16))),
    "cpu": dict(steps={"CartPole-v1": 50_000, "Acrobot-v1": 50_000, "Breakout-MinAtar": 100_000},
                tune_seeds={"CartPole-v1": 1, "Acrobot-v1": 1, "Breakout-MinAtar": 1},
                test_seeds={"CartPole-v1": 8, "Acrobot-v1": 8, "Breakout-MinAtar": 8},
                timing_updates=100, timing_rounds=2, overrides=dict(learning_starts=5000),
                env_overrides={"Breakout-MinAtar": dict(buffer_size=20_000)},
                # the first edition's natural DQN: the field defaults of its day (damping 0.1,
                # before SOLVER_DEFAULTS) and the exact K-FAC (statistics every update, J x)
                natural_overrides=dict(damping=0.1, delta=0.1, kfac_stats_every=1,
                                       kfac_trust_region="exact")),
    # The second edition (issue 14) at a CPU size: the library defaults, DQN's 500k-step budget
    # (CleanRL's DQN reaches 498 on CartPole-v1 and -89 on Acrobot-v1 there), 2 tuning seeds per
    # grid point, 64 test seeds.
    "cpu500k": dict(steps={"CartPole-v1": 500_000, "Acrobot-v1": 500_000,
                           "Breakout-MinAtar": 1_000_000},
                    tune_seeds={e: 2 for e in ENVS}, test_seeds={e: 64 for e in ENVS},
                    timing_updates=100, timing_rounds=2, overrides={}),
    "full": dict(steps={"CartPole-v1": 500_000, "Acrobot-v1": 500_000, "Breakout-MinAtar": 2_000_000},
                 tune_seeds={e: 8 for e in ENVS}, test_seeds={e: 64 for e in ENVS},
                 timing_updates=500, timing_rounds=3, overrides={}),
}


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def parse(argv):
    p = Parser(prog="natural_q.py", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="cpu", choices=list(SIZES),
                   help="preset: tiny (smoke test), cpu (~1 h on 2 CPU cores), cpu500k (the second "
                        "edition: 500k steps, hours per env here), full (the issue's size, for a "
                        "GPU). Default cpu.")
    p.add_argument("--out", help="study folder (default runs/natural_q-SIZE); an existing one made "
                                 "with the same settings is resumed (finished cells skipped)")
    p.add_argument("--envs", default=",".join(ORDER),
                   help=f"comma-separated subset of {', '.join(ORDER)}")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma-separated subset of {', '.join(METHODS)} (kfac, cg, gram: natural "
                        "DQN's solvers)")
    p.add_argument("--targets", default="on,off",
                   help="target network settings to run: on (every 100 iterations), off (none)")
    p.add_argument("--tune-seeds", type=int, help="tuning seeds per grid point (overrides the size)")
    p.add_argument("--test-seeds", type=int, help="test seeds for the chosen setting (overrides the size)")
    p.add_argument("--steps", type=int, help="env steps per run for every env (overrides the size)")
    p.add_argument("--plan", action="store_true",
                   help="run the timing pass, print the cost estimate per cell, and stop")
    p.add_argument("--export", help="when done, also store the summary in this JSON file under the key "
                                    "basename(OUT), next to other studies' (a derived copy of "
                                    "OUT/summary.json; notebooks/natural_q_cpu.json is read by the notebook)")
    args = p.parse_args(argv)

    def subset(flag, text, allowed):
        items = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in items if x not in allowed]
        if not items or bad:
            raise UsageError(f"{flag}: got {text!r}, allowed: {', '.join(allowed)}")
        return [x for x in allowed if x in items]  # canonical order

    args.envs = subset("--envs", args.envs, ORDER)
    args.methods = subset("--methods", args.methods, list(METHODS))
    args.targets = subset("--targets", args.targets, list(TARGETS))
    for flag in ("tune_seeds", "test_seeds", "steps"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')}: got {value}, must be >= 1")
    args.out = args.out or os.path.join("runs", f"natural_q-{args.size}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out: {args.out} exists and is not a folder")
    if args.export and os.path.isdir(args.export):
        raise UsageError(f"--export: {args.export} is a folder; give a file path")
    if args.export and os.path.exists(args.export):
        try:
            assert isinstance(json.load(open(args.export))["studies"], dict)
        except Exception:
            raise UsageError(f"--export: {args.export} exists and is not a studies file written by "
                             "this script; give another path") from None
    return args


def settings_of(args) -> dict:
    size = SIZES[args.size]
    per_env = {}
    for env in ORDER:
        per_env[env] = dict(steps=args.steps or size["steps"][env],
                            tune_seeds=args.tune_seeds or size["tune_seeds"][env],
                            test_seeds=args.test_seeds or size["test_seeds"][env])
    return {"size": args.size, "envs": per_env, "grids": GRIDS, "targets": TARGETS,
            "overrides": {k: list(v) if isinstance(v, tuple) else v
                          for k, v in size["overrides"].items()},
            "rollout_overrides": {k: list(v) if isinstance(v, tuple) else v
                                  for k, v in size.get("rollout_overrides", {}).items()},
            "natural_overrides": size.get("natural_overrides", {}),
            "env_overrides": size.get("env_overrides", {}),
            "timing_updates": size["timing_updates"], "timing_rounds": size["timing_rounds"],
            "env_info": ENVS, "bins": BINS}


def config_for(method, env, target, settings, **extra):
    """The method's config: library defaults, the size's overrides, the env's steps."""
    from jaxrl.agents import get_algo
    from jaxrl.config import make_config

    algo, solver = METHODS[method]
    steps = {"total_steps": settings["envs"][env]["steps"]}
    if algo in ROLLOUT_ALGOS:
        fields = {**steps, **settings["rollout_overrides"], **extra}
    else:  # log_every=1: the study's rows, curves and timings are per gradient step
        fields = {**steps, "log_every": 1, **settings["overrides"],
                  **settings["env_overrides"].get(env, {}),
                  "target_network_frequency": TARGETS[target], **extra}
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    if solver:  # the size's natural_overrides, else the solver's defaults; lr is the grid's
        fields = {**settings["natural_overrides"], **fields, "preconditioner": solver}
    return algo, make_config(get_algo(algo).Config, fields)


def steps_per_update(algo, cfg) -> int:
    """Env steps per metrics row: the algorithm's own rule (replay methods: one gradient step
    per row here, log_every=1; rollout methods: one rollout)."""
    from jaxrl.agents import get_algo

    return get_algo(algo).steps_per_update(cfg)


def warmup_updates(algo, cfg) -> int:
    """Updates before the first gradient step (replay: the learning_starts fill; rollouts: none)."""
    if algo in ROLLOUT_ALGOS:
        return 0
    return max(0, -(-cfg.learning_starts // steps_per_update(algo, cfg)) - 1)


def cells_of(args):
    """(target, method) pairs to run: every target setting for the replay methods, target-off
    only for the rollout ones (they have no target network)."""
    return [(t, m) for t in args.targets for m in args.methods
            if not (METHODS[m][0] in ROLLOUT_ALGOS and t == "on")]


def grid_of(method):
    return GRIDS["natural" if METHODS[method][0].startswith("natural") else "dqn"]


def cell_name(env, target, method):
    return f"{env}__target-{target}__{method}"


def floats(x):
    return np.asarray([np.nan if v is None else v for v in np.ravel(x)], float).reshape(np.shape(x))


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


# ---------------------------------------------------------------------------------------------
# timing pass

def batch_size_of(settings, env):
    e = settings["envs"][env]
    return max(len(GRIDS["dqn"]) * e["tune_seeds"], e["test_seeds"])


def timing_pass(args, settings, path, envs):
    """ms per update (for the study's batch of runs) per env and method, measured back to back:
    rounds x methods, alternating, target network on (rollout methods: none); median over rounds.
    An update is one gradient step for the replay methods, one rollout and its epochs for PQN."""
    from jaxrl.runner import run

    timing = json.load(open(path)) if os.path.exists(path) else {}
    for env in envs:
        todo = [m for m in args.methods if m not in timing.get(env, {})]
        if not todo:
            continue
        batch = batch_size_of(settings, env)
        raw = {m: [] for m in todo}
        for rnd in range(settings["timing_rounds"]):
            for method in todo:
                extra = {}
                target = "off" if METHODS[method][0] in ROLLOUT_ALGOS else "on"
                if settings["timing_updates"]:
                    algo, base = config_for(method, env, target, settings)
                    spu = steps_per_update(algo, base)
                    extra = dict(total_steps=spu * (settings["timing_updates"] + 1))
                    if algo not in ROLLOUT_ALGOS:
                        extra["learning_starts"] = spu
                algo, cfg = config_for(method, env, target, settings, **extra)
                grid = grid_of(method)
                cfg = cfg.replace(lr=grid[len(grid) // 2])
                r = run(algo, env, [cfg], range(batch), progress=None)
                grad_updates = r.num_updates - warmup_updates(algo, cfg)
                raw[method].append(dict(run_seconds=r.run_seconds, compile_seconds=r.compile_seconds,
                                        updates=r.num_updates, grad_updates=grad_updates))
                log(f"timing {env} {method} round {rnd + 1}: "
                    f"{1e3 * r.run_seconds / grad_updates:.2f} ms/update ({batch} runs), "
                    f"compile {r.compile_seconds:.1f}s")
        for method in todo:
            ms = [1e3 * x["run_seconds"] / x["grad_updates"] for x in raw[method]]
            timing.setdefault(env, {})[method] = dict(
                ms_per_update=float(np.median(ms)), ms_rounds=ms, runs=batch,
                compile_seconds=float(max(x["compile_seconds"] for x in raw[method])))
        write_json(path, timing)
    return timing


def plan(args, settings, timing, done, envs):
    """Estimated seconds per cell: compile (from the timing pass) + runs x updates x ms/update."""
    rows = []
    for env in envs:
        e = settings["envs"][env]
        for target, method in cells_of(args):
            name = cell_name(env, target, method)
            algo, cfg = config_for(method, env, target, settings)
            updates = cfg.total_steps // steps_per_update(algo, cfg)
            t = timing[env][method]
            batches = 2 if e["test_seeds"] else 1  # tuning batch + test batch
            seconds = t["compile_seconds"] * 1.2 + batches * updates * t["ms_per_update"] / 1e3
            rows.append((name, seconds, name in done, (env, target, method)))
    return rows


# ---------------------------------------------------------------------------------------------
# one cell

def bin_curves(results, bins=BINS):
    """[seeds, bins] count-weighted mean return per bin of updates (NaN: no episode ended)."""
    mean = results.metrics["episode_return_mean"][0].astype(np.float64)
    count = results.metrics["episode_return_count"][0].astype(np.float64)
    u = mean.shape[-1]
    edges = np.linspace(0, u, min(bins, u) + 1).round().astype(int)
    total = np.where(count > 0, mean * count, 0.0)
    sums = np.add.reduceat(total, edges[:-1], axis=-1)
    counts = np.add.reduceat(count, edges[:-1], axis=-1)
    return edges, np.where(counts > 0, sums / np.maximum(counts, 1), np.nan), counts


def run_cell(env, target, method, settings, path):
    from jaxrl.config import to_dict
    from jaxrl.sweep import grid_configs, sweep

    e = settings["envs"][env]
    algo, base = config_for(method, env, target, settings)
    grid = grid_of(method)
    configs = grid_configs(base, {"lr": grid})
    t0 = time.perf_counter()
    result = sweep(algo, env, configs, seeds=e["tune_seeds"], test_seeds=e["test_seeds"],
                   progress=None)
    wall = time.perf_counter() - t0
    tune, test = result.tuning[0], result.test
    edges, curve, counts = bin_curves(test)
    spu = steps_per_update(algo, base)
    cell = dict(env=env, target=target, method=method, algo=algo,
                target_network_frequency=TARGETS[target], grid=grid,
                best_lr=float(result.best.lr), config=to_dict(result.best),
                total_steps=test.total_steps, num_updates=test.num_updates, steps_per_update=spu,
                warmup_updates=warmup_updates(algo, base),
                final_window=test.final_window(),
                tuning_seeds=list(tune.seeds), tuning_final=tune.final_return(),
                tuning_diverged=tune.diverged, test_seeds=list(test.seeds),
                test_final=test.final_return()[0], test_diverged=test.diverged[0],
                bin_edges=edges, bin_mean=np.round(curve, 3), bin_count=counts.astype(int),
                compile_seconds=tune.compile_seconds + test.compile_seconds,
                run_seconds_tune=tune.run_seconds, run_seconds_test=test.run_seconds,
                wall_seconds=wall, runs_per_batch=[len(tune.configs) * len(tune.seeds), len(test.seeds)])
    write_json(path, cell)
    return cell


# ---------------------------------------------------------------------------------------------
# analysis (also imported by notebooks/natural_q.ipynb)

def normalise(x, env):
    info = ENVS[env]
    return (np.asarray(x, float) - info["lo"]) / (info["hi"] - info["lo"])


def filled(curve):
    """Forward-fill NaN bins (no episode ended) along the last axis; leading NaN stay NaN."""
    out = np.array(curve, float)
    for i in range(1, out.shape[-1]):
        out[..., i] = np.where(np.isnan(out[..., i]), out[..., i - 1], out[..., i])
    return out


def dqn_run_seconds(settings, timing, env):
    """Seconds DQN's gradient updates take over a whole run of `env` (from the timing pass): the
    wall-time budget of the time-matched return. None before DQN's timing."""
    ms = timing.get(env, {}).get("dqn", {}).get("ms_per_update")
    if not ms:
        return None
    algo, cfg = config_for("dqn", env, "on", settings)
    return ms / 1e3 * (cfg.total_steps // steps_per_update(algo, cfg) - warmup_updates(algo, cfg))


def cost_vs_dqn(cell, ms_per_update, dqn_seconds):
    """Wall time of the cell's updates over a run / DQN's: per update for the replay methods (the
    same number of updates), per run for PQN (its update is a whole rollout)."""
    if not (ms_per_update and dqn_seconds):
        return None
    return (cell["num_updates"] - cell["warmup_updates"]) * ms_per_update / 1e3 / dqn_seconds


def seed_metrics(cell, ms_per_update=None, dqn_seconds=None):
    """Per test seed: final return, normalised AUC, reached/collapsed, time-matched return."""
    env = cell["env"]
    curve = floats(cell["bin_mean"])
    counts = floats(cell["bin_count"])
    edges = np.asarray(cell["bin_edges"])
    norm = filled(normalise(curve, env))
    auc = np.nanmean(np.where(np.isnan(norm), 0.0, norm), axis=-1)  # before any episode: 0
    thr = float(normalise(ENVS[env]["threshold"], env))
    reached, collapsed = [], []
    for row in normalise(curve, env):
        valid = np.flatnonzero(np.isfinite(row))
        hit = valid[row[valid] >= thr]
        reached.append(hit.size > 0)
        collapsed.append(bool(hit.size and np.any(row[valid[valid > hit[0]]] < thr / 2)))
    final = floats(cell["test_final"])  # NaN only for a diverged run: it scores the env's floor
    out = dict(final=np.where(np.isfinite(final), final, ENVS[env]["lo"]), auc=auc,
               reached=np.array(reached),
               collapsed=np.array(collapsed))
    if ms_per_update and dqn_seconds:
        warm, u = cell["warmup_updates"], cell["num_updates"]
        updates = dqn_seconds / (ms_per_update / 1e3)  # in DQN's time (capped at its own run)
        stop = min(u, warm + updates)
        out["time_matched"] = window_return(curve, counts, edges, stop, cell["final_window"])
        out["time_matched_fraction"] = min(1.0, updates / (u - warm))
    return out


def window_return(curve, counts, edges, stop, width):
    """Per seed, the count-weighted mean return of the bins overlapping the window of updates
    [stop - width, stop): the final-return window (`width`, the cell's final_window: the last 10%
    of updates, at least one longest episode), moved back to end at `stop`. Of equal width, so a
    run read early averages as many updates."""
    from jaxrl import stats

    lo = stop - width
    inside = (edges[1:] > lo) & (edges[:-1] < stop)
    return stats.count_weighted_mean(curve, counts * inside)


def cvar10(scores, axis=None):
    """Mean of the worst 10% of the pooled scores (at least one)."""
    from jaxrl.stats import pool

    x = np.sort(pool(scores, axis), axis=-1)
    k = max(1, int(math.ceil(0.1 * x.shape[-1])))
    return x[..., :k].mean(axis=-1)


def frac_true(scores, axis=None):
    from jaxrl.stats import pool

    return pool(scores, axis).mean(axis=-1)


def sensitivity(cell):
    """Fraction of the grid whose tuning IQM (normalised final return) is within 90% of the best,
    with a 95% bootstrap CI over tuning seeds (resampled per grid point)."""
    from jaxrl import stats

    scores = normalise(floats(cell["tuning_final"]), cell["env"]).T  # [seeds, grid]
    scores = np.where(np.isfinite(scores), scores, 0.0)  # a NaN run (no episode ended) scores 0

    def stat(s, axis=(-2, -1)):
        per = stats.iqm(s, axis=-2)  # [..., grid]
        best = per.max(-1, keepdims=True)
        return (per >= 0.9 * best).mean(-1)

    return stats.bootstrap_ci(scores, stat, reps=2000, seed=0)


def ci(x, statistic, reps=5000):
    from jaxrl import stats

    x = np.asarray(x, float)
    x = x[np.isfinite(x)] if x.ndim == 1 else x
    if x.size == 0:
        return (float("nan"),) * 3
    return tuple(float(v) for v in stats.bootstrap_ci(x, statistic, reps=reps, seed=0))


def summarise(settings, timing, cells) -> dict:
    """The study summary: per-cell statistics with 95% bootstrap CIs, per-seed metrics, IQM
    curves, timing, and the cross-env aggregate (stratified bootstrap, normalised scores)."""
    from jaxrl import stats

    table, per_seed, curves = [], {}, {}
    for name, cell in sorted(cells.items(), key=lambda kv: _order_key(kv[1])):
        env, method = cell["env"], cell["method"]
        t = timing.get(env, {})
        ms = t.get(method, {}).get("ms_per_update")
        dqn_seconds = dqn_run_seconds(settings, timing, env)
        m = seed_metrics(cell, ms, dqn_seconds)
        per_seed[name] = {k: np.round(v, 4) if np.ndim(v) and v.dtype != bool else v
                          for k, v in m.items()}
        sens = sensitivity(cell)
        row = dict(cell=name, env=env, target=cell["target"], method=method,
                   best_lr=cell["best_lr"], test_seeds=len(cell["test_seeds"]),
                   tune_seeds=len(cell["tuning_seeds"]), total_steps=cell["total_steps"],
                   final_iqm=ci(m["final"], stats.iqm), auc_iqm=ci(m["auc"], stats.iqm),
                   collapse_frac=ci(m["collapsed"].astype(float), frac_true),
                   reached_frac=float(m["reached"].mean()),
                   cvar10=ci(m["final"], cvar10), sensitivity=tuple(float(v) for v in sens),
                   ms_per_update=ms, cost_vs_dqn=cost_vs_dqn(cell, ms, dqn_seconds),
                   diverged=int(np.sum(cell["test_diverged"])),
                   in_run_seconds=cell["run_seconds_tune"] + cell["run_seconds_test"])
        if "time_matched" in m:
            row["time_matched_iqm"] = ci(m["time_matched"], stats.iqm)
            row["time_matched_fraction"] = m["time_matched_fraction"]
        dqn_name = cell_name(env, cell["target"], "dqn")
        if method != "dqn" and dqn_name in cells:
            x, y = m["final"], seed_metrics(cells[dqn_name])["final"]
            row["p_improve_vs_dqn"] = tuple(float(v) for v in stats.probability_of_improvement_ci(
                x, y, reps=2000, seed=0))
        table.append(row)
        curve = floats(cell["bin_mean"])
        fill = filled(curve)
        iqm_curve = [float(stats.iqm(c[np.isfinite(c)])) if np.isfinite(c).any() else None
                     for c in fill.T]
        curves[name] = dict(env_steps=(np.asarray(cell["bin_edges"][1:]) * cell["steps_per_update"]).tolist(),
                            iqm=iqm_curve, q25=np.nanpercentile(fill, 25, axis=0).round(2),
                            q75=np.nanpercentile(fill, 75, axis=0).round(2),
                            updates=cell["bin_edges"][1:], warmup_updates=cell["warmup_updates"])
    aggregate = aggregate_over_envs(cells, per_seed)
    return dict(settings=settings, timing=timing, table=table, per_seed=per_seed, curves=curves,
                aggregate=aggregate,
                cells={n: dict(best_lr=c["best_lr"], grid=c["grid"],
                               tuning_final=np.round(floats(c["tuning_final"]), 3),
                               compile_seconds=c["compile_seconds"], wall_seconds=c["wall_seconds"])
                       for n, c in cells.items()})


def _order_key(cell):
    return (ORDER.index(cell["env"]), list(TARGETS).index(cell["target"]),
            list(METHODS).index(cell["method"]))


def aggregate_over_envs(cells, per_seed):
    """Per (target, method) over the envs that every method finished: IQM of normalised final
    return and AUC with 95% stratified bootstrap CIs (envs = tasks), using the first n test seeds
    of each env, n the smallest count."""
    from jaxrl import stats

    out = []
    for target in TARGETS:
        methods = sorted({c["method"] for c in cells.values() if c["target"] == target},
                         key=list(METHODS).index)
        envs = [e for e in ORDER if all(cell_name(e, target, m) in cells for m in methods)]
        if not envs or not methods:
            continue
        n = min(len(per_seed[cell_name(e, target, m)]["final"]) for e in envs for m in methods)
        for method in methods:
            final = np.stack([normalise(per_seed[cell_name(e, target, method)]["final"][:n], e)
                              for e in envs], axis=1)
            auc = np.stack([np.asarray(per_seed[cell_name(e, target, method)]["auc"][:n])
                            for e in envs], axis=1)
            final = np.where(np.isfinite(final), final, 0.0)
            row = dict(target=target, method=method, envs=envs, seeds_per_env=n,
                       final_norm_iqm=tuple(float(v) for v in stats.bootstrap_ci(final, stats.iqm, reps=5000)),
                       auc_norm_iqm=tuple(float(v) for v in stats.bootstrap_ci(auc, stats.iqm, reps=5000)))
            if method != "dqn":
                base = np.stack([normalise(per_seed[cell_name(e, target, "dqn")]["final"][:n], e)
                                 for e in envs], axis=1) if "dqn" in methods else None
                if base is not None:
                    base = np.where(np.isfinite(base), base, 0.0)
                    row["p_improve_vs_dqn"] = tuple(float(v) for v in
                                                    stats.probability_of_improvement_ci(final, base, reps=2000))
            out.append(row)
    return out


def _iqm(x):
    from jaxrl import stats

    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return float(stats.iqm(x)) if x.size else float("nan")


def load_cells(folder):
    cells = {}
    if os.path.isdir(folder):
        for f in sorted(os.listdir(folder)):
            if f.endswith(".json"):
                cells[f[:-5]] = json.load(open(os.path.join(folder, f)))
    return cells


# ---------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
        settings = settings_of(args)
        study_path = os.path.join(args.out, "study.json")
        if os.path.isdir(args.out):
            if not os.path.exists(study_path):
                if os.listdir(args.out):
                    raise UsageError(f"--out: {args.out} exists and holds no study; choose a new folder")
            elif json.load(open(study_path)) != plain(settings):
                raise UsageError(f"--out: {args.out} holds a study with different settings; "
                                 "choose a new folder (results are never overwritten)")
    except UsageError as error:
        print(f"natural_q.py: error: {error}", file=sys.stderr)
        return 2

    os.makedirs(os.path.join(args.out, "cells"), exist_ok=True)
    if not os.path.exists(study_path):
        write_json(study_path, settings)
    cells_dir = os.path.join(args.out, "cells")
    done = set(load_cells(cells_dir))
    start = time.perf_counter()
    log(f"study {args.out}: size {args.size}, envs {args.envs}, methods {args.methods}, "
        f"targets {args.targets}; {len(done)} cells already finished")

    # Env by env (CartPole first): its timing pass, the cost estimate of its cells, its cells.
    timing_path = os.path.join(args.out, "timing.json")
    envs_todo = args.envs if not args.plan else [args.envs]
    timing = {}
    for env in envs_todo:
        group = env if isinstance(env, list) else [env]
        timing = timing_pass(args, settings, timing_path, group)
        rows = plan(args, settings, timing, done, group)
        left = [r for r in rows if not r[2]]
        log("plan (estimated seconds per cell, from the timing pass):")
        for name, seconds, finished, _ in rows:
            print(f"    {name:45s} {'done' if finished else f'{seconds:8.0f} s'}", flush=True)
        log(f"estimated total for the {len(left)} cells left: {sum(r[1] for r in left) / 60:.1f} min")
        if args.plan:
            return 0
        for name, _, _, (cell_env, target, method) in left:
            log(f"cell {name}: start")
            cell = run_cell(cell_env, target, method, settings, os.path.join(cells_dir, name + ".json"))
            final = floats(cell["test_final"])
            log(f"cell {name}: done in {cell['wall_seconds']:.0f}s (compile {cell['compile_seconds']:.0f}s); "
                f"best lr {cell['best_lr']:.3g}; test IQM final {_iqm(final):.1f} over "
                f"{np.isfinite(final).sum()} seeds")
            summary = summarise(settings, timing, load_cells(cells_dir))
            write_json(os.path.join(args.out, "summary.json"), summary)

    timing = json.load(open(timing_path)) if os.path.exists(timing_path) else {}
    summary = summarise(settings, timing, load_cells(cells_dir))
    write_json(os.path.join(args.out, "summary.json"), summary)
    if args.export:
        studies = json.load(open(args.export))["studies"] if os.path.exists(args.export) else {}
        studies[os.path.basename(os.path.normpath(args.out))] = summary
        write_json(args.export, {"studies": dict(sorted(studies.items()))})
    log(f"study finished in {(time.perf_counter() - start) / 60:.1f} min; summary {args.out}/summary.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
