"""Executing a plan: the batch of runs cut into equal chunks that fit in memory, each chunk
sharded over the local devices and run segment by segment (checkpointed after each when asked),
the metrics gathered into a `Results`."""
from __future__ import annotations

import json
import os
import time
import warnings
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxrl import distributed
from jaxrl.config import ConfigError
from jaxrl.runner.plan import Plan, make_plan, seed_key, stack_configs
from jaxrl.runner.program import (Programs, check_host_memory, compiled_bytes, memory_budget,
                                  one_run_outputs, rows_of)
from jaxrl.runner.results import Results, episode_updates
from jaxrl.runner.storage import Checkpoints, read_history, write_history


def run(algo: str, env_name: str, configs: Sequence[Any], seeds: Sequence[int], *,
        env_kwargs: dict | None = None, tasks: Sequence[int] | None = None,
        single_task: bool = False, init_params: Any = None, **options) -> Results | dict:
    """Train every (config, seed) pair: `execute(make_plan(...), **options)`.

    Configs must share their static fields. For a task family (`envs.FAMILIES`), every run
    trains one network on the tasks `tasks` (default all) at once, its envs spread evenly over
    them; with `single_task`, each task is trained on its own instead, the config rows becoming
    (config, task) pairs, all in one vmapped program. `init_params` (leaves [seeds, ...], e.g. a
    finished run's params of one config) is what seed i starts from, put in by the agent's
    `with_params` (targets and optimizer state rebuilt from them). See `execute` for the rest."""
    plan = make_plan(algo, env_name, configs, seeds, env_kwargs=env_kwargs, tasks=tasks,
                     single_task=single_task, init_params=init_params)
    return execute(plan, **options)


class Progress:
    """Prints `chunk C/K: update U/N (P%), S steps/s, ETA` after a segment, at most every few
    seconds (and always at a chunk's end)."""

    def __init__(self, write: Callable[[str], None], num_updates: int, steps_per_update: int,
                 runs: int, seconds: float = 5.0):
        self.write, self.num_updates, self.seconds = write, num_updates, seconds
        self.steps_per_update, self.runs = steps_per_update, runs
        self.start(0, 1)

    def start(self, chunk: int, num_chunks: int, done: int = 0) -> None:
        self.chunk, self.num_chunks = chunk, num_chunks
        self.t0 = self.last_print = time.perf_counter()
        self.first = done

    def __call__(self, done: int) -> None:
        now = time.perf_counter()
        if now - self.last_print < self.seconds and done < self.num_updates:
            return
        self.last_print = now
        rate = (done - self.first) / max(now - self.t0, 1e-9)
        eta = (self.num_updates - done) / max(rate, 1e-9)
        self.write(f"chunk {self.chunk + 1}/{self.num_chunks}: update {done}/{self.num_updates} "
                   f"({done / self.num_updates:.0%}), "
                   f"{rate * self.steps_per_update * self.runs:,.0f} steps/s, ETA {eta:.0f}s")


SEGMENTS = 10  # a run without checkpoints is cut into about this many segments


def segment_updates(num_updates: int, checkpoint_every: int | None) -> int:
    """Updates per segment: `checkpoint_every` (a last segment may be shorter), else the
    divisor of num_updates that gives closest to SEGMENTS segments (4 to 40), so that progress,
    live metrics and loggers see a run as it goes while every segment is one compiled program;
    one segment when num_updates has no such divisor (a prime, say)."""
    if checkpoint_every:
        return min(checkpoint_every, num_updates)
    fits = [d for d in range(1, num_updates + 1)
            if num_updates % d == 0 and 4 <= num_updates // d <= 40]
    return min(fits, key=lambda d: abs(num_updates // d - SEGMENTS), default=num_updates)


def one_run_example(plan: Plan) -> tuple:
    """Run 0's (config, key, env params, initial params), as `run_inputs` has it."""
    return (rows_of(stack_configs(plan.configs[:1]), 0), seed_key(plan.seeds[0]),
            None if plan.row_tasks is None else plan.row_params(0),
            None if plan.init_params is None else rows_of(plan.init_params, 0))


def run_inputs(plan: Plan) -> tuple:
    """Every run's (config, key, env params, initial params), leaves [runs, ...]: run r is
    (config row r // seeds, seed r % seeds); env params None unless a task family, initial
    params None unless fine-tuning."""
    configs, seeds = plan.configs, plan.seeds
    config_index = np.repeat(np.arange(len(configs)), len(seeds))
    seed_index = np.tile(np.arange(len(seeds)), len(configs))
    keys = np.asarray(jax.vmap(seed_key)(jnp.asarray(np.asarray(seeds)[seed_index], jnp.uint32)))
    tables = None
    if plan.row_tasks is not None:
        tables = jax.tree.map(lambda *xs: np.stack(xs),
                              *[plan.row_params(r) for r in range(len(configs))])
    return (rows_of(stack_configs(configs), config_index), keys,
            None if tables is None else rows_of(tables, config_index),
            None if plan.init_params is None else rows_of(plan.init_params, seed_index))


def saved_chunking(checkpoint_dir: str | None, n_dev: int) -> int | None:
    """The chunk size a resumed run's checkpoints were saved with (plan.json beside them)."""
    path = os.path.join(checkpoint_dir, "plan.json") if checkpoint_dir else None
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        saved = json.load(f)
    if saved["num_devices"] != n_dev:
        raise ConfigError(f"--resume: the checkpoints were saved with {saved['num_devices']} "
                          f"devices and this process has {n_dev}; resume with the same count "
                          "(JAXRL_CPU_DEVICES on the CPU)")
    return saved["chunk_size"]


def fit_programs(plan: Plan, inputs: tuple, options: dict, every: int, sharding,
                 max_batch: int | None, saved_chunk: int | None) -> tuple[Programs, int, int]:
    """The programs for the largest chunk that fits the device: all runs (or `max_batch`, or a
    resumed run's saved chunk), halved until the compiled segment program's memory fits.
    Returns (programs, bytes per chunk, budget); ConfigError when one run per device is too big."""
    n_dev = sharding.mesh.size

    def round_up(n: int) -> int:  # a whole number of runs per device
        return -(-n // n_dev) * n_dev

    if saved_chunk:
        chunk = saved_chunk
    elif max_batch:
        chunk = max(n_dev, min(plan.n_runs, max_batch) // n_dev * n_dev)
    else:
        chunk = round_up(plan.n_runs)
    budget = distributed.agree_min(memory_budget(jax.local_devices()[0]))
    seconds, compiles = 0.0, 0
    while True:
        programs = Programs(plan, chunk, sharding, inputs, options)
        chunk_bytes = compiled_bytes(programs.segment(every))
        seconds, compiles = seconds + programs.compile_seconds, compiles + programs.compiles
        if saved_chunk or max_batch or chunk <= n_dev or chunk_bytes <= budget:
            break
        chunk = round_up(chunk // 2)
    if chunk_bytes > budget:
        hint = "lower --max-batch" if chunk > n_dev else "use a smaller config"
        raise ConfigError(f"--max-batch: one chunk of {chunk} runs needs {chunk_bytes / 2**30:.1f} "
                          f"GiB, more than the {budget / 2**30:.1f} GiB this device can give; {hint}")
    programs.compile_seconds, programs.compiles = seconds, compiles
    programs.init  # compiled now, so that compile_seconds counts it before anything runs
    return programs, chunk_bytes, budget


def run_chunk(i: int, num_chunks: int, programs: Programs, chunk_inputs: tuple, *,
              checkpoint_dir: str | None, every: int, keep_params: bool, emit: Callable,
              tracker: Progress | None, progress: Callable | None) -> tuple:
    """Runs chunk i segment by segment from its last checkpoint (if any), saving after each:
    the state in the checkpoint, each segment's metrics in its own file of the chunk's history
    (never rewritten, so saving stays linear in the run's length). `emit(start, stop, metrics)`
    gets every segment's metrics (earlier sessions' first). Returns (metrics, diverged, params,
    seconds this chunk ran in earlier sessions)."""
    t_start = time.perf_counter()
    num_updates = programs.plan.trainer.num_updates
    store = Checkpoints(os.path.join(checkpoint_dir, f"chunk-{i:04d}")) if checkpoint_dir else None
    history_dir = os.path.join(checkpoint_dir, f"chunk-{i:04d}-history") if checkpoint_dir else None
    done, history, diverged, earlier = 0, [], np.zeros(programs.chunk, bool), 0.0
    state = programs.init(*chunk_inputs)
    restored = store.restore() if store else None
    if restored:
        history = read_history(history_dir, restored[0])
        if history is None:
            warnings.warn(f"the metric history in {history_dir} does not reach update "
                          f"{restored[0]}; restarting chunk {i + 1} from update 0", stacklevel=2)
            history = []
        else:
            done, item = restored
            if not Checkpoints.fits(state, item["state"]):
                raise ConfigError(f"--resume: the checkpoints in {store.manager.directory} hold "
                                  "another state layout (written by another jaxrl version or "
                                  f"config); delete {checkpoint_dir} and start the run again")
            state = distributed.put(Checkpoints.unflatten(state, item["state"]), programs.sharding)
            diverged, earlier = np.asarray(item["diverged"]), float(item["seconds"])
    start = 0
    for piece in history:  # what earlier sessions ran, shown again
        stop = start + next(iter(piece.values())).shape[1]
        emit(start, stop, piece)
        start = stop
    if tracker:
        tracker.start(i, num_chunks, done)
    chunk_configs, _, chunk_env_params, _ = chunk_inputs
    while done < num_updates:
        n = min(every, num_updates - done)
        state, metrics, diverged = programs.segment(n)(chunk_configs, state, chunk_env_params, done)
        metrics, diverged = distributed.fetch((metrics, diverged))
        history.append(metrics)
        emit(done, done + n, metrics)
        done += n
        if tracker:
            tracker(done)
        if store:
            if distributed.is_main():  # one writer; every process joins orbax's save below
                write_history(history_dir, done - n, done, metrics)  # before its state
            seconds = earlier + time.perf_counter() - t_start
            store.save(done, {"state": Checkpoints.flatten(distributed.fetch(state)),
                              "diverged": diverged, "seconds": np.asarray(seconds, np.float64)})
            if progress:
                progress(f"checkpoint: chunk {i + 1}/{num_chunks}, update {done}/{num_updates}")
    params = (distributed.fetch(jax.vmap(programs.plan.trainer.params)(state)) if keep_params
              else None)
    metrics = {k: np.concatenate([h[k] for h in history], axis=1) for k in history[-1]}
    return metrics, diverged, params, earlier


def execute(plan: Plan, *, max_batch: int | None = None,
            progress: Callable[[str], None] | None = print, dry_run: bool = False,
            keep_params: bool = False, checkpoint_dir: str | None = None,
            checkpoint_every: int | None = None, eval_every: int = 0, eval_episodes: int = 10,
            on_segment: Callable[[dict], None] | None = None) -> Results | dict:
    """Run a plan's every (config row, seed) pair.

    Each chunk runs in segments of `checkpoint_every` updates (default: `segment_updates`,
    about ten equal segments; progress is printed between them); with
    `checkpoint_dir` its whole batched state is saved after each, and calling `execute` again
    with the same plan and options resumes from the last checkpoint, ending bit-identical to an
    uninterrupted run. `on_segment(rows)` is called as each segment of each chunk finishes (and,
    on a resume, for the segments earlier sessions ran), for watching a long run: `rows` holds
    flat columns `config`, `seed`, `update`, `env_steps` and every metric, one entry per (run,
    update). With `eval_every`, greedy evaluation episodes (`eval_episodes` fresh envs) run after
    every eval_every-th update, reported as `eval_return_mean` etc., apart from training returns.
    With `dry_run`, compile only and return the plan: chunk size and count, the compiled
    program's memory per chunk, compiles and compile seconds. `keep_params` returns every run's
    final params in `Results.final_params`."""
    configs, seeds, n_runs = plan.configs, plan.seeds, plan.n_runs
    num_updates, steps_per_update = plan.trainer.num_updates, plan.spec.steps_per_update(configs[0])
    tracker = Progress(progress, num_updates, steps_per_update, n_runs) if progress else None
    options = dict(eval_every=eval_every, eval_episodes=eval_episodes)
    check_host_memory(one_run_outputs(plan, keep_params, **options), one_run_example(plan),
                      n_runs)  # before any [runs, ...] input is built
    inputs = run_inputs(plan)

    every = segment_updates(num_updates, checkpoint_every)
    devices = jax.devices()  # every process's: one global mesh (jaxrl.distributed)
    sharding = NamedSharding(Mesh(np.array(devices), ("batch",)), PartitionSpec("batch"))
    saved_chunk = saved_chunking(checkpoint_dir, len(devices))
    programs, chunk_bytes, budget = fit_programs(plan, inputs, options, every, sharding,
                                                 max_batch, saved_chunk)
    chunk = programs.chunk
    num_chunks = -(-n_runs // chunk)
    if dry_run:
        extra = int(num_updates % every != 0)  # a shorter last segment
        return {"algo": plan.algo, "env": plan.env_name, "runs": n_runs, "configs": len(configs),
                "seeds": len(seeds), "devices": [str(d) for d in devices], "chunk_size": chunk,
                "num_chunks": num_chunks, "bytes_per_chunk": chunk_bytes,
                "memory_budget_bytes": budget, "compiles": programs.compiles + extra,
                "compile_seconds": programs.compile_seconds}
    if checkpoint_dir and not saved_chunk and distributed.is_main():
        os.makedirs(checkpoint_dir, exist_ok=True)
        with open(os.path.join(checkpoint_dir, "plan.json"), "w") as f:
            json.dump({"chunk_size": chunk, "num_devices": len(devices)}, f)

    def emitter(i):
        """on_segment's rows: updates start..stop-1 of chunk i's real runs, labelled."""
        def emit(start, stop, metrics):
            if on_segment is None:
                return
            runs = np.arange(i * chunk, min((i + 1) * chunk, n_runs))
            updates = np.tile(np.arange(start, stop), len(runs))
            rows = {"config": np.repeat(runs // len(seeds), stop - start),
                    "seed": np.repeat(np.asarray(seeds)[runs % len(seeds)], stop - start),
                    "update": updates, "env_steps": (updates + 1) * steps_per_update}
            on_segment({**rows, **{k: np.asarray(v)[:len(runs)].reshape(-1)
                                   for k, v in metrics.items()}})
        return emit

    outputs, flags, kept, run_seconds = [], [], [], 0.0
    for i in range(num_chunks):
        index = np.minimum(np.arange(i * chunk, (i + 1) * chunk), n_runs - 1)  # pad the last chunk
        chunk_inputs = distributed.put(rows_of(inputs, index), sharding)  # by repeating its last run
        t0 = time.perf_counter()
        # earlier: a resumed chunk's time in earlier sessions, so steps/s is over the whole run
        metrics, diverged, params, earlier = run_chunk(
            i, num_chunks, programs, chunk_inputs, checkpoint_dir=checkpoint_dir, every=every,
            keep_params=keep_params, emit=emitter(i), tracker=tracker, progress=progress)
        run_seconds += earlier + time.perf_counter() - t0
        valid = min(chunk, n_runs - i * chunk)
        outputs.append({k: v[:valid] for k, v in metrics.items()})
        flags.append(diverged[:valid])
        kept.append(jax.tree.map(lambda x: x[:valid], params))
        if progress:
            done = min((i + 1) * chunk, n_runs)
            progress(f"chunk {i + 1}/{num_chunks}: runs {done}/{n_runs}, "
                     f"compile {programs.compile_seconds:.1f}s, run {run_seconds:.1f}s"
                     + (f", {int(np.sum(flags[-1]))} diverged" if np.any(flags[-1]) else ""))

    shape = (len(configs), len(seeds))
    metrics = {k: np.concatenate([o[k] for o in outputs]).reshape(shape + (-1,)) for k in outputs[0]}
    final_params = jax.tree.map(lambda *xs: np.concatenate(xs).reshape(shape + xs[0].shape[1:]),
                                *kept) if keep_params else None
    return Results(algo=plan.algo, env=plan.env_name, configs=configs, seeds=list(seeds),
                   metrics=metrics, steps_per_update=steps_per_update,
                   episode_updates=episode_updates(plan.env_params, steps_per_update,
                                                   configs[0].num_envs),
                   diverged=np.concatenate(flags).reshape(shape),
                   compile_seconds=programs.compile_seconds, compiles=programs.compiles,
                   run_seconds=run_seconds, devices=[str(d) for d in devices], chunk_size=chunk,
                   num_chunks=num_chunks, task_names=getattr(plan.env, "task_names", None),
                   tasks=plan.row_tasks, single_task=plan.single_task, final_params=final_params)
