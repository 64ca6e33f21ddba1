"""How long does it take to achieve perfect performance on CartPole-v1? (issue 11, item 1: the
Requests for Research item "Cartpole: for newcomers")

Random search, hill climbing and linear_pg (REINFORCE with a baseline) on a sign policy, linear
(4 weights, no bias) and then a 2 x 128 tanh MLP (17k parameters), each cell one compiled
program over its seeds (and, for hill climbing and the MLP policy gradient, its float
hyperparameter rows). Per seed, measured in training episodes and env steps (episodes counted in
order: updates in order, within an update in batch order, `jaxrl.agents.episodes`):

- first perfect: up to and including the first training episode with return 500;
- robust: until the agent's deterministic policy is perfect on 100 fresh evaluation episodes.
  linear_pg evaluates every `eval_every` updates (resolution: that many updates). Random search
  and hill climbing keep an incumbent that changes only on a strictly higher score, so it never
  changes after a 500; their final incumbent is evaluated once, at the end, and if it is perfect
  there the seed is robust from the episode that adopted it (the first update where the
  incumbent's score reached its final value). An earlier incumbent that failed its one scoring
  episode but would have passed 100 others is not looked for.

Seeds that never get there within the budget are counted apart (the fraction never, with a
bootstrap CI); the median, IQM and their 95% stratified bootstrap CIs (`jaxrl.stats`) are over
the seeds that got there.

Each cell is written to OUT/cells/CELL.json as it finishes (atomically) and OUT/summary.json is
rebuilt after every cell; the same command resumes, skipping finished cells (and runs cells added
since). An OUT made with other settings, or holding a cell defined otherwise, is refused (exit 2).

Sizes: tiny (a smoke test: 8 seeds, small budgets, used by the notebook's small run); cpu (1000
seeds per linear cell, 16 per MLP cell, the budgets below; ~35 min on a 2-core CPU shared
with two other jobs).

    .venv/bin/python scripts/newcomer.py --size cpu --out runs/newcomer-cpu \
        --export notebooks/newcomer_cpu.json
    .venv/bin/python scripts/newcomer.py --size tiny --cells rs-gaussian,pg --out /tmp/newcomer
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also when loaded from a notebook
from natural_q import Parser, UsageError, floats, load_cells, log  # noqa: E402  the study helpers

from jaxrl.runner.storage import plain, write_json  # noqa: E402

ENV = "CartPole-v1"
PERFECT = 500.0  # CartPole-v1's best return: 500 steps of reward 1
EVAL_EPISODES = 100
MLP = (128, 128)

# cell -> (algo, policy, fixed config fields, the float rows swept in its one program)
CELLS = {
    "rs-uniform": ("random_search", "linear", dict(distribution="uniform"), None),
    "rs-gaussian": ("random_search", "linear", dict(distribution="gaussian"), None),
    "hc": ("hill_climbing", "linear", {}, ("noise_scale", [0.3, 1.0])),
    "pg": ("linear_pg", "linear", {}, None),
    # scored by the mean of 5 episodes: the same budget of episodes buys a fifth of the candidates
    "hc-5ep": ("hill_climbing", "linear", dict(num_envs=5, num_candidates=100, noise_scale=1.0),
               None),
    "rs-gaussian-mlp": ("random_search", "mlp", dict(distribution="gaussian"), None),
    "hc-mlp": ("hill_climbing", "mlp", {}, ("noise_scale", [0.3, 1.0])),
    "pg-mlp": ("linear_pg", "mlp", {}, ("lr", [0.1, 0.01])),
}

# Per size: seeds per policy, and each algorithm's budget fields (episodes = budget).
SIZES = {
    "tiny": dict(seeds={"linear": 8, "mlp": 4}, eval_every=5, budgets={
        "random_search": dict(num_candidates=200, num_envs=50),
        "hill_climbing": dict(num_candidates=50),
        "linear_pg": dict(num_updates=20, num_envs=4)}),
    "cpu": dict(seeds={"linear": 1000, "mlp": 16}, eval_every=10, budgets={
        "random_search": dict(num_candidates=200, num_envs=100),
        "hill_climbing": dict(num_candidates=200),
        "linear_pg": dict(num_updates=60, num_envs=8)}),
}


def parse(argv):
    p = Parser(prog="newcomer.py", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="cpu", choices=list(SIZES), help="preset (default cpu)")
    p.add_argument("--out", help="study folder (default runs/newcomer-SIZE); an existing one made "
                                 "with the same settings is resumed (finished cells skipped)")
    p.add_argument("--cells", default=",".join(CELLS),
                   help=f"comma-separated subset of {', '.join(CELLS)}")
    p.add_argument("--export", help="when done, also write the summary to this JSON file (read "
                                    "by notebooks/newcomer.ipynb)")
    args = p.parse_args(argv)
    cells = [x.strip() for x in args.cells.split(",") if x.strip()]
    bad = [x for x in cells if x not in CELLS]
    if not cells or bad:
        raise UsageError(f"--cells: got {args.cells!r}, allowed: {', '.join(CELLS)}")
    args.cells = [c for c in CELLS if c in cells]
    args.out = args.out or os.path.join("runs", f"newcomer-{args.size}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out: {args.out} exists and is not a folder")
    if args.export and os.path.isdir(args.export):
        raise UsageError(f"--export: {args.export} is a folder; give a file path")
    return args


def settings_of(size: str) -> dict:
    s = SIZES[size]
    return {"size": size, "env": ENV, "perfect": PERFECT, "eval_episodes": EVAL_EPISODES,
            "mlp": list(MLP), **s}


def definition(cell: str) -> list:
    """A cell's definition as its JSON records it (a finished cell made otherwise is refused)."""
    return plain(list(CELLS[cell]))


def configs_of(cell: str, settings: dict) -> tuple[str, list]:
    """The algorithm and the config rows of a cell: library defaults, the size's budget, the
    cell's fields, one row per swept float."""
    from jaxrl.agents import get_algo

    algo, policy, fields, rows = CELLS[cell]
    spec = get_algo(algo)
    hidden = tuple(settings["mlp"]) if policy == "mlp" else ()
    base = spec.Config(**{**settings["budgets"][algo], **fields}, hidden_sizes=hidden)
    if rows is None:
        return algo, [base]
    name, values = rows
    return algo, [base.replace(**{name: v}) for v in values]


# ---------------------------------------------------------------------------------------------
# per seed: episodes and env steps until perfect

def times_to_perfect(algo: str, metrics: dict) -> dict:
    """Per run ([runs, updates] metrics of one config row): episodes and env steps until the
    first perfect training episode and until the policy is perfect on the evaluation episodes
    (NaN: never within the budget). See the module docstring for the rules."""
    count = metrics["episode_return_count"].astype(float)
    steps = metrics["episode_length_mean"] * count
    prior_episodes = np.cumsum(count, -1) - count  # before each update
    prior_steps = np.cumsum(steps, -1) - steps
    runs = np.arange(count.shape[0])

    def at(hit, episodes_in, steps_in):
        """Totals at the first update where `hit` ([runs, updates]), NaN where none."""
        u = np.argmax(hit, -1)
        got = hit[runs, u]
        return (np.where(got, prior_episodes[runs, u] + episodes_in[runs, u], np.nan),
                np.where(got, prior_steps[runs, u] + steps_in[runs, u], np.nan))

    first = at(metrics["episode_return_max"] >= PERFECT, metrics["first_best"],
               metrics["first_best_steps"])
    evals = metrics["eval_return_mean"]
    if algo == "linear_pg":  # the first evaluation that is perfect, after all of its update
        robust = at(evals >= PERFECT, count, steps)
    else:  # the final incumbent, if perfect at the final evaluation, from its adoption on
        best = metrics["best_return"]
        adopted = best >= best[:, -1:]
        if algo == "random_search":  # the update's first best became the incumbent
            inside = metrics["first_best"], metrics["first_best_steps"]
        else:  # every episode of the update scored the candidate
            inside = count, steps
        robust = at(adopted & (evals[:, -1:] >= PERFECT), *inside)
    return {"first_episodes": first[0], "first_steps": first[1],
            "robust_episodes": robust[0], "robust_steps": robust[1]}


def run_cell(cell: str, settings: dict, path: str) -> dict:
    from jaxrl.config import to_dict
    from jaxrl.runner import execute, make_plan

    algo, configs = configs_of(cell, settings)
    seeds = settings["seeds"][CELLS[cell][1]]
    t0 = time.perf_counter()
    plan = make_plan(algo, ENV, configs, range(seeds))
    num_updates = plan.trainer.num_updates
    eval_every = settings["eval_every"] if algo == "linear_pg" else num_updates
    results = execute(plan, progress=None, eval_every=eval_every, eval_episodes=EVAL_EPISODES)
    rows = []
    for i, config in enumerate(configs):
        metrics = {k: v[i] for k, v in results.metrics.items()}
        times = times_to_perfect(algo, metrics)
        rows.append(dict(config=to_dict(config), **times,
                         budget_episodes=float(metrics["episode_return_count"].sum(-1)[0]),
                         final_eval=metrics["eval_return_mean"][:, -1],
                         diverged=results.diverged[i]))
    cell_out = dict(cell=cell, definition=definition(cell), algo=algo, policy=CELLS[cell][1],
                    seeds=seeds,
                    eval_every=eval_every, num_updates=num_updates, rows=rows,
                    compile_seconds=results.compile_seconds, run_seconds=results.run_seconds,
                    wall_seconds=time.perf_counter() - t0)
    write_json(path, cell_out)
    return cell_out


# ---------------------------------------------------------------------------------------------
# analysis (also imported by notebooks/newcomer.ipynb)

def describe(x, reps: int = 2000) -> dict:
    """Median and IQM with 95% bootstrap CIs over the seeds that got there, and the fraction
    that never did (with its CI)."""
    from jaxrl import stats

    x = floats(x)
    got = x[np.isfinite(x)]
    never = (~np.isfinite(x)).astype(float)
    out = {"seeds": int(x.size), "reached": int(got.size),
           "never": [float(v) for v in stats.bootstrap_ci(never, stats.mean, reps=reps, seed=0)]}
    for name, statistic in (("median", stats.median), ("iqm", stats.iqm)):
        out[name] = ([float(v) for v in stats.bootstrap_ci(got, statistic, reps=reps, seed=0)]
                     if got.size else [None] * 3)
    return out


def row_label(cell: str, row: dict) -> str:
    swept = CELLS[cell][3]
    return cell if swept is None else f"{cell} {swept[0]}={row['config'][swept[0]]:g}"


def summarise(settings: dict, cells: dict) -> dict:
    table = []
    for cell in (c for c in CELLS if c in cells):
        out = cells[cell]
        for row in out["rows"]:
            entry = dict(label=row_label(cell, row), cell=cell, algo=out["algo"],
                         policy=out["policy"], seeds=out["seeds"],
                         budget_episodes=row["budget_episodes"],
                         eval_every=out["eval_every"], wall_seconds=out["wall_seconds"],
                         compile_seconds=out["compile_seconds"])
            for what in ("first_episodes", "first_steps", "robust_episodes", "robust_steps"):
                entry[what] = describe(row[what])
            table.append(entry)
    return {"settings": settings, "table": table,
            "per_seed": {row_label(c, r): {k: r[k] for k in ("first_episodes", "first_steps",
                                                            "robust_episodes", "robust_steps")}
                         for c in CELLS if c in cells for r in cells[c]["rows"]}}


def markdown(summary: dict) -> str:
    """The tables of docs/newcomer.md: one line per method row."""
    def fmt(d):
        if d["median"][0] is None:
            return "never"
        return (f"{d['median'][0]:,.0f} ({d['median'][1]:,.0f}-{d['median'][2]:,.0f}) | "
                f"{d['iqm'][0]:,.0f} ({d['iqm'][1]:,.0f}-{d['iqm'][2]:,.0f}) | "
                f"{100 * d['never'][0]:.1f}% ({100 * d['never'][1]:.1f}-{100 * d['never'][2]:.1f})")

    lines = []
    for what, title in (("first_episodes", "episodes to the first perfect episode"),
                        ("first_steps", "env steps to the first perfect episode"),
                        ("robust_episodes", "episodes until perfect on 100 fresh episodes"),
                        ("robust_steps", "env steps until perfect on 100 fresh episodes")):
        lines += [f"\n{title}:\n", "| method | seeds | budget (episodes) | median (95% CI) | "
                  "IQM (95% CI) | never (95% CI) |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['label']} | {r['seeds']} | {r['budget_episodes']:,.0f} | {fmt(r[what])} |"
                  for r in summary["table"]]
    return "\n".join(lines)


def main(argv=None) -> int:
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
        settings = settings_of(args.size)
        study_path = os.path.join(args.out, "study.json")
        if os.path.isdir(args.out):
            if not os.path.exists(study_path):
                if os.listdir(args.out):
                    raise UsageError(f"--out: {args.out} exists and holds no study; "
                                     "choose a new folder")
            elif json.load(open(study_path)) != plain(settings):
                raise UsageError(f"--out: {args.out} holds a study with different settings; "
                                 "choose a new folder (results are never overwritten)")
            for name, cell in load_cells(os.path.join(args.out, "cells")).items():
                if name not in CELLS or cell["definition"] != definition(name):
                    raise UsageError(f"--out: cell {name} in {args.out} was made with another "
                                     "definition; choose a new folder")
    except UsageError as error:
        print(f"newcomer.py: error: {error}", file=sys.stderr)
        return 2

    cells_dir = os.path.join(args.out, "cells")
    os.makedirs(cells_dir, exist_ok=True)
    if not os.path.exists(study_path):
        write_json(study_path, settings)
    done = set(load_cells(cells_dir))
    log(f"study {args.out}: size {args.size}, cells {args.cells}; {len(done & set(args.cells))} "
        "already finished")
    for cell in args.cells:
        if cell in done:
            continue
        log(f"cell {cell}: start")
        out = run_cell(cell, settings, os.path.join(cells_dir, cell + ".json"))
        log(f"cell {cell}: done in {out['wall_seconds']:.0f}s "
            f"(compile {out['compile_seconds']:.0f}s)")
        write_json(os.path.join(args.out, "summary.json"),
                   summarise(settings, load_cells(cells_dir)))
    summary = summarise(settings, load_cells(cells_dir))
    write_json(os.path.join(args.out, "summary.json"), summary)
    print(markdown(summary))
    if args.export:
        write_json(args.export, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
