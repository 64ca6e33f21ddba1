"""Does training on many tasks help? Three experiments on one task family, as one command.

    python scripts/multitask.py CartPoleMorph-v0 --seeds 16 --out runs/multitask-cartpole

(a) Multi-task vs single-task. Each single-task network trains on one task for --steps steps with
    --envs-per-task envs; the multi-task network (one network, told the task by a one-hot id) gets
    envs-per-task envs on every task at once and is run twice: with K x --steps steps (the same
    samples per task as single-task: "equal per-task") and with --steps steps (the same samples per
    network: "equal total"). Scores: final return and area under the curve (mean return over the
    run) per task and seed, and the same of the success rate on a family that reports success
    (ReacherLinks-v0); differences from single-task per (seed, task), with 95% stratified
    bootstrap CIs (seeds resampled within each task).
(c) Task id shown vs hidden: the equal-per-task multi-task run again without the one-hot task id
    in the observation (`--hide-task-id`: the task is hidden context), minus the run with it.
(b) Leave-one-out transfer. For each task h: pretrain on the other K-1 tasks for --pretrain-steps,
    then fine-tune on h for --finetune-steps from the pretrained network, against training h from
    scratch for as long, on the same seeds. Scores on the family's criterion (the training
    episodes' return, or their success rate on a family that reports success): jumpstart (the
    mean over the first 10% of updates), area under the curve, and steps to reach --threshold (the
    first update whose value reaches it; runs that never do count as the whole budget, and the
    fraction that reach it is reported), as paired differences fine-tuned minus scratch with 95%
    CIs, over all held-out tasks and for each one.

Writes OUT/summary.json (every number above) and OUT/curves.csv (per-update returns of every run,
for the figures in notebooks/multitask.ipynb). OUT must not exist: results are never overwritten.
Each finished training run is kept in OUT.partial/cells/ until the study ends, and a run in
progress checkpoints each tenth of itself in OUT.partial/checkpoints/, so the same command resumes
a cut-off study run by run, and a cut-off run from its last checkpoint. `--only b --held-out 1,3`
runs leave-one-out for those held-out tasks only: the summary so far stays in OUT.partial, and a
later run for the rest (`--held-out 0,2`, or none) reads the finished ones back and lands the whole
study in OUT. --size sets the budgets: `tiny` (a smoke test), `cpu` (the default: the classic
families in minutes on a 2-core CPU; ReacherLinks-v0 at 3M steps per task, 6M of pretraining,
2M of fine-tuning: about an hour per held-out task at 16 seeds there), `full` (the issue's size,
for a GPU); explicit --steps/... override it."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import shutil
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jaxrl  # noqa: E402,F401  (XLA flags and the compile cache before jax)
import envs  # noqa: E402
from jaxrl import plots, stats  # noqa: E402
from jaxrl.agents import env_config  # noqa: E402
from jaxrl.agents.ppo import PPOConfig  # noqa: E402
from jaxrl.config import ConfigError  # noqa: E402
from jaxrl.runner import run  # noqa: E402

# Per family: envs per task and, per size, (steps per task, pretrain steps, fine-tune steps), plus
# the criterion (the training episodes' "return", or their "success" rate for an env that reports
# success) and its steps-to-threshold level. PPO's settings are the family's own
# (`envs.recommended`).
FAMILIES = {
    "CartPoleMorph-v0": dict(envs_per_task=4, threshold=300.0,
                             tiny=(4_096, 4_096, 2_048), cpu=(150_000, 300_000, 60_000),
                             full=(500_000, 1_000_000, 200_000)),
    "PendulumMorph-v0": dict(envs_per_task=4, threshold=-400.0, tiny=(4_096, 4_096, 2_048),
                             cpu=(300_000, 600_000, 150_000), full=(1_000_000, 2_000_000, 500_000)),
    "ReacherLinks-v0": dict(envs_per_task=16, threshold=0.8, criterion="success",
                            tiny=(2_048, 2_048, 2_048), cpu=(3_000_000, 6_000_000, 2_000_000),
                            full=(5_000_000, 10_000_000, 2_000_000)),
    "WalkerMorph-v0": dict(envs_per_task=16, threshold=1000.0,
                           tiny=(2_048, 2_048, 2_048), cpu=(100_000, 200_000, 50_000),
                           full=(10_000_000, 20_000_000, 5_000_000)),
    "WalkerSkills-v0": dict(envs_per_task=16, threshold=1000.0,
                            tiny=(2_048, 2_048, 2_048), cpu=(100_000, 200_000, 50_000),
                            full=(10_000_000, 20_000_000, 5_000_000)),
}
JUMPSTART_FRACTION = 0.1
SMOOTHING_FRACTION = 0.05  # steps to threshold: the episodes' mean over this much of a run, trailing


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split(
        "\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family", help=f"task family: {', '.join(FAMILIES)}")
    parser.add_argument("--out", required=True, help="output folder; must not exist yet")
    parser.add_argument("--seeds", type=int, default=16, help="seeds per setting (default 16)")
    parser.add_argument("--size", choices=("tiny", "cpu", "full"), default="cpu",
                        help="budget preset (default cpu)")
    parser.add_argument("--steps", type=int, help="(a) env steps per task of a single-task run")
    parser.add_argument("--pretrain-steps", type=int, help="(b) env steps of pretraining on K-1 tasks")
    parser.add_argument("--finetune-steps", type=int, help="(b) env steps on the held-out task")
    parser.add_argument("--threshold", type=float, help="(b) criterion level for steps-to-threshold "
                        "(a return, or a success rate on a family that reports success)")
    parser.add_argument("--envs-per-task", type=int, help="parallel envs per task")
    parser.add_argument("--only", choices=("a", "b"), help="run only experiment a or b")
    parser.add_argument("--held-out", help="(b) the held-out tasks to run, in this order, e.g. 1,3 "
                        "(default every task). With only some, the summary so far stays in "
                        "OUT.partial beside the finished runs, and a later run adds the rest")
    parser.add_argument("--reps", type=int, default=10_000, help="bootstrap replicates")
    args = parser.parse_args(argv)
    if args.family not in FAMILIES:
        raise ConfigError(f"family: got {args.family!r}; allowed: {', '.join(FAMILIES)}")
    if args.held_out is not None and args.only == "a":
        raise ConfigError("--held-out: picks experiment b's held-out tasks; it cannot go with "
                          "--only a")
    if os.path.exists(args.out):
        raise ConfigError(f"--out: {args.out} already exists; choose a new folder (an unfinished "
                          f"study resumes from {args.out}.partial)")
    spec = FAMILIES[args.family]
    defaults = dict(zip(("steps", "pretrain_steps", "finetune_steps"), spec[args.size]),
                    threshold=spec["threshold"], envs_per_task=spec["envs_per_task"])
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("seeds", "steps", "pretrain_steps", "finetune_steps", "envs_per_task", "reps"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: got {getattr(args, name)}, must be >= 1")
    return args


def held_out_tasks(text: str | None, num_tasks: int) -> list[int]:
    """--held-out as task indices, in the order given (default: every task)."""
    if text is None:
        return list(range(num_tasks))
    try:
        tasks = [int(x) for x in text.split(",")]
    except ValueError:
        tasks = []
    if not tasks or len(set(tasks)) < len(tasks) or not all(0 <= t < num_tasks for t in tasks):
        raise ConfigError(f"--held-out: got {text!r}; allowed: distinct task indices 0 to "
                          f"{num_tasks - 1}, comma-separated")
    return tasks


def ppo_config(args, num_tasks: int, steps: int) -> PPOConfig:
    return env_config("ppo", args.family, num_envs=args.envs_per_task * num_tasks, total_steps=steps)


def paired(diff: np.ndarray, reps: int) -> dict:
    """Mean of [seeds, tasks] paired differences with a 95% stratified bootstrap CI."""
    point, lo, hi = stats.bootstrap_ci(diff, stats.mean, reps=reps)
    return {"mean": float(point), "ci95": [float(lo), float(hi)]}


def curve_rows(results, label: str, per_task_steps: int, names: list[str]) -> list[dict]:
    """Per-update mean episode return (and success rate) of every (row, task, seed), for
    curves.csv."""
    rows = []
    for c in range(len(results.configs)):
        for k, task in enumerate(results.tasks[c]):
            columns = {name: results.metrics[f"task{k}_{name}_mean" if f"task{k}_{name}_mean" in
                                             results.metrics else f"episode_{name}_mean"][c]
                       for name in names}
            updates = columns["return"].shape[-1]
            steps = (np.arange(updates) + 1) * per_task_steps / updates
            for s, seed in enumerate(results.seeds):
                rows += [{"experiment": label, "task": task, "seed": seed, "task_steps": int(x),
                          **{name: float(v[s, i]) for name, v in columns.items()}}
                         for i, x in enumerate(steps)]
    return rows


def criterion(args) -> str:
    """The metric the study's steps-to-threshold reads: "return" or "success"."""
    return FAMILIES[args.family].get("criterion", "return")


def scored(args) -> list[str]:
    """The per-episode metrics scored: the return, and the success rate where the env reports it."""
    return ["return"] + (["success"] if criterion(args) == "success" else [])


def experiment_a(args, num_tasks: int, cell) -> tuple[dict, list]:
    seeds = range(args.seeds)
    total = num_tasks * args.steps
    runs = {  # label -> (config, run options)
        "single_task": (ppo_config(args, 1, args.steps), dict(single_task=True)),
        "multi_equal_per_task": (ppo_config(args, num_tasks, total), {}),
        "multi_equal_total": (ppo_config(args, num_tasks, args.steps), {}),
        "multi_hidden_task_id": (ppo_config(args, num_tasks, total), dict(env_kwargs={"one_hot": False})),
    }
    results = {label: cell(f"a-{label}", lambda checkpoints, c=config, o=options: run(
        "ppo", args.family, [c], seeds, progress=print, checkpoint_dir=checkpoints, **o))
        for label, (config, options) in runs.items()}
    tasks = list(range(num_tasks))

    def table(results, fraction, name):  # [seeds, tasks]
        if results.single_task:
            finals = results.final_return(fraction, f"episode_{name}")
            return np.stack([finals[t] for t in tasks], axis=1)
        return np.stack([results.final_return(fraction, f"task{k}_{name}")[0] for k in tasks], 1)

    out, curves = {}, []
    for label, res in results.items():
        entry = {"total_steps_per_network": res.total_steps, "run_seconds": res.run_seconds,
                 "compile_seconds": res.compile_seconds}
        for name in scored(args):
            for score, fraction in (("final", 0.1), ("auc", 1.0)):
                key = score if name == "return" else f"{score}_success"
                values = table(res, fraction, name)
                entry[key] = stats.aggregate(values, reps=args.reps)
                entry[f"{key}_per_task_iqm"] = [float(stats.iqm(values[:, t])) for t in tasks]
                base = {"multi_hidden_task_id": "multi_equal_per_task"}.get(label, "single_task")
                if label != "single_task":
                    entry[f"{key}_minus_{base}"] = paired(
                        values - table(results[base], fraction, name), args.reps)
        out[label] = entry
        per_task = res.total_steps // (1 if res.single_task else num_tasks)
        curves += curve_rows(res, f"a/{label}", per_task, scored(args))
    return out, curves


def steps_to_threshold(curve: np.ndarray, counts: np.ndarray, threshold: float,
                       steps_per_update: int) -> np.ndarray:
    """[seeds] env steps of the first update at which the per-update mean (of the return or the
    success rate; `counts` its finished episodes), averaged over the episodes of the last
    SMOOTHING_FRACTION of the run's updates, reaches `threshold` (the whole budget when it never
    does), and whether it did. The average keeps one lucky update (a handful of episodes) from
    counting as reaching it."""
    width = max(1, int(round(curve.shape[-1] * SMOOTHING_FRACTION)))
    smoothed = plots.smooth(curve, counts, width, trailing=True)
    reached = np.nan_to_num(smoothed, nan=-np.inf) >= threshold
    first = np.where(reached.any(-1), reached.argmax(-1) + 1, curve.shape[-1])
    return first * steps_per_update, reached.any(-1)


def experiment_b(args, num_tasks: int, cell) -> tuple[dict, list]:
    seeds = list(range(args.seeds))
    finetune_seeds = [1000 + s for s in seeds]  # fresh env streams; seed i fine-tunes pretrain i
    metric = criterion(args)

    def held_out_runs(held_out: int):
        """(fine-tuned and scratch scores, the held-out task's summary entry, curve rows)."""
        others = [t for t in range(num_tasks) if t != held_out]
        pretrain = cell(f"b-pretrain-{held_out}", lambda checkpoints: run(
            "ppo", args.family, [ppo_config(args, num_tasks - 1, args.pretrain_steps)], seeds,
            tasks=others, keep_params=True, progress=print, checkpoint_dir=checkpoints))
        init = jax.tree.map(lambda x: x[0], pretrain.final_params)  # [seeds, ...] of config 0
        config = ppo_config(args, 1, args.finetune_steps)
        tuned = cell(f"b-finetuned-{held_out}", lambda checkpoints: run(
            "ppo", args.family, [config], finetune_seeds, tasks=[held_out], init_params=init,
            progress=print, checkpoint_dir=checkpoints))
        scratch = cell(f"b-scratch-{held_out}", lambda checkpoints: run(
            "ppo", args.family, [config], finetune_seeds, tasks=[held_out], progress=print,
            checkpoint_dir=checkpoints))
        pair, curves = {}, []
        for name, res in (("finetuned", tuned), ("scratch", scratch)):
            prefix = f"episode_{metric}"
            steps, reached = steps_to_threshold(res.metrics[f"{prefix}_mean"][0],
                                                res.metrics[f"{prefix}_count"][0], args.threshold,
                                                res.steps_per_update)
            first = max(1, int(round(res.num_updates * JUMPSTART_FRACTION)))
            pair[name] = {"jumpstart": res.window_return(0, first, prefix)[0],
                          "auc": res.final_return(1.0, prefix)[0],
                          "final": res.final_return(prefix=prefix)[0], "steps": steps.astype(float),
                          "reached": reached.astype(float)}
            curves += curve_rows(res, f"b/{name}", args.finetune_steps, scored(args))
        pretrained = pretrain.summary()
        entry = {"held_out": held_out, "pretrain_final": pretrained["final_return"]["iqm"],
                 **({"pretrain_final_success": pretrained["final_success"]["iqm"]}
                    if "final_success" in pretrained else {}),
                 **{f"{k}_finetuned_iqm": float(stats.iqm(pair["finetuned"][k])) for k in
                    ("jumpstart", "auc", "final", "steps")},
                 **{f"{k}_scratch_iqm": float(stats.iqm(pair["scratch"][k])) for k in
                    ("jumpstart", "auc", "final", "steps")},
                 **{f"{k}_finetuned_minus_scratch": paired(
                     (pair["finetuned"][k] - pair["scratch"][k])[:, None], args.reps)
                    for k in ("jumpstart", "auc", "final", "steps")},
                 **{f"reached_{name}": float(pair[name]["reached"].mean())
                    for name in ("finetuned", "scratch")}}
        return pair, entry, curves

    # The tasks asked for run first, in their order; tasks an earlier run of the study finished
    # are read back; every score is then aggregated in task order.
    asked = args.held_out
    finished = [t for t in range(num_tasks) if t not in asked and all(
        cell.finished(f"b-{kind}-{t}") for kind in ("pretrain", "finetuned", "scratch"))]
    results = {t: held_out_runs(t) for t in asked + finished}
    tasks = sorted(results)
    curves = [row for t in tasks for row in results[t][2]]
    scores_by = {key: [(results[t][0]["finetuned"][key], results[t][0]["scratch"][key])
                       for t in tasks] for key in ("jumpstart", "auc", "final", "steps", "reached")}
    out = {"per_held_out_task": [results[t][1] for t in tasks], "metric": metric,
           "threshold": args.threshold, "held_out_tasks": tasks,
           "missing_held_out_tasks": [t for t in range(num_tasks) if t not in results]}
    for key, pairs in scores_by.items():
        tuned = np.stack([p[0] for p in pairs], axis=1)  # [seeds, tasks]
        scratch = np.stack([p[1] for p in pairs], axis=1)
        aggregate = (lambda x: float(x.mean())) if key == "reached" else (
            lambda x: stats.aggregate(x, reps=args.reps))
        out[key] = {"finetuned": aggregate(tuned), "scratch": aggregate(scratch),
                    "finetuned_minus_scratch": paired(tuned - scratch, args.reps)}
    return out, curves


def iqm_curves(curves, names: list[str]):
    """Per (experiment, task, task_steps): the IQM over seeds of the per-update mean return (and
    success rate), and its quartiles (NaN updates, with no finished episode, left out): small
    enough to commit."""
    import pandas as pd

    def summarise(group):
        out = {}
        for name in names:
            values = group[name].to_numpy()
            values = values[np.isfinite(values)]
            prefix = "" if name == "return" else f"{name}_"
            out.update({f"{prefix}iqm": float(stats.iqm(values)) if values.size else np.nan,
                        f"{prefix}q25": np.percentile(values, 25) if values.size else np.nan,
                        f"{prefix}q75": np.percentile(values, 75) if values.size else np.nan})
        out["seeds"] = int(np.isfinite(group["return"].to_numpy()).sum())
        return pd.Series(out)

    keys = ["experiment", "task", "task_steps"]
    return curves.groupby(keys)[names].apply(summarise).reset_index()


def cells(partial: str, settings: dict):
    """`cell(label, train)`: the Results of `train(checkpoints)`, kept in PARTIAL/cells/LABEL.pkl
    as each finishes, so that the same command resumes a cut-off study cell by cell; within a
    cell, the run checkpoints each segment in `checkpoints` (PARTIAL/checkpoints/LABEL), so a run
    cut off midway resumes from its last segment. A partial folder made with other settings is
    refused."""
    os.makedirs(os.path.join(partial, "cells"), exist_ok=True)
    path = os.path.join(partial, "settings.json")
    settings = json.loads(json.dumps(settings))  # tuples as lists, as read back
    if os.path.exists(path):
        with open(path) as f:
            if json.load(f) != settings:
                raise ConfigError(f"--out: {partial} holds a study with other settings; delete it "
                                  "or choose another --out")
    else:
        with open(path, "w") as f:
            json.dump(settings, f, indent=2)

    def cell(label: str, train):
        file = os.path.join(partial, "cells", label + ".pkl")
        if os.path.exists(file):
            with open(file, "rb") as f:
                return pickle.load(f)
        checkpoints = os.path.join(partial, "checkpoints", label)
        results = train(checkpoints)
        results = dataclasses.replace(results, final_params=jax.device_get(results.final_params))
        with open(file + ".tmp", "wb") as f:
            pickle.dump(results, f)
        os.replace(file + ".tmp", file)
        shutil.rmtree(checkpoints, ignore_errors=True)  # the cell's Results replace them
        return results

    cell.finished = lambda label: os.path.exists(os.path.join(partial, "cells", label + ".pkl"))
    return cell


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        env, table = envs.make(args.family)
        args.held_out = held_out_tasks(args.held_out, envs.num_tasks(table))  # now indices
    except (ConfigError, ValueError) as error:
        print(f"multitask.py: error: {error}", file=sys.stderr)
        return 2
    num_tasks = envs.num_tasks(table)
    partial = args.out.rstrip("/") + ".partial"
    t0 = time.time()
    summary = {"family": args.family, "task_names": env.task_names, "seeds": args.seeds,
               "size": args.size, "steps_per_task": args.steps, "pretrain_steps": args.pretrain_steps,
               "finetune_steps": args.finetune_steps, "envs_per_task": args.envs_per_task,
               "ppo": {k: list(v) if isinstance(v, tuple) else v for k, v in
                       dataclasses.asdict(ppo_config(args, 1, args.steps)).items()
                       if k != "total_steps"}}
    try:
        cell = cells(partial, {**summary, "threshold": args.threshold})
    except ConfigError as error:
        print(f"multitask.py: error: {error}", file=sys.stderr)
        return 2
    curves = []
    try:
        if args.only in (None, "a"):
            summary["multi_vs_single"], rows = experiment_a(args, num_tasks, cell)
            curves += rows
        if args.only in (None, "b"):
            summary["leave_one_out"], rows = experiment_b(args, num_tasks, cell)
            curves += rows
    except ConfigError as error:  # e.g. a run's checkpoints that no longer fit: one line
        print(f"multitask.py: error: {error}", file=sys.stderr)
        return 2
    summary["wall_seconds"] = time.time() - t0
    import pandas as pd

    curves = pd.DataFrame(curves)
    curves.to_csv(os.path.join(partial, "curves.csv"), index=False)
    iqm_curves(curves, scored(args)).round(3).to_csv(os.path.join(partial, "curves_iqm.csv"), index=False)
    with open(os.path.join(partial, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))
    missing = summary.get("leave_one_out", {}).get("missing_held_out_tasks")
    if missing:
        print(f"held-out tasks {','.join(map(str, missing))} not run yet: the summary so far is "
              f"in {partial}; the same command with --held-out {','.join(map(str, missing))} "
              f"(or without --held-out) adds them, and the whole study then lands in {args.out}")
        return 0
    for folder in ("cells", "checkpoints"):  # the trained runs; summary and curves stay
        shutil.rmtree(os.path.join(partial, folder), ignore_errors=True)
    os.replace(partial, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
