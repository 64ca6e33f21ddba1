"""Runs = configs x seeds, as few compiled programs as possible.

`run` flattens the (config, seed) grid into one batch axis, cuts it into equal chunks that fit in
memory (from the compiled program's own memory analysis, or `max_batch`), shards each chunk's batch
axis across all local devices, and gathers the per-update metrics into a `Results`, labelled by
(config, seed, update). The same numbers come out (to float tolerance) whatever the chunking or the
number of devices, because each run depends only on its own config and key."""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import envs
from jaxrl import stats
from jaxrl.agents import get_algo
from jaxrl.agents.base import nonfinite
from jaxrl.config import MAX_SEED, ConfigError, dynamic_fields, static_fields, to_dict

FINAL_FRACTION = stats.FINAL_FRACTION  # the final-return window's share of the updates


def episode_updates(env_params, steps_per_update: int, num_envs: int) -> int:
    """Updates spanned by an episode of the env's longest length (`envs.max_steps`): each env
    takes steps_per_update / num_envs steps per update."""
    return -(-envs.max_steps(env_params) * num_envs // steps_per_update)


def seed_key(seed: int) -> jax.Array:
    """The PRNG key of seed `seed`: run i of a vmapped batch equals a lone run with this key."""
    return jax.random.PRNGKey(seed)


@dataclasses.dataclass
class Results:
    """Per-update metrics of every (config, seed) run: `metrics[name]` is [configs, seeds, updates]."""

    algo: str
    env: str
    configs: list[Any]
    seeds: list[int]
    metrics: dict[str, np.ndarray]
    steps_per_update: int
    diverged: np.ndarray | None = None  # [configs, seeds]: some float in the final state is NaN/inf
    compile_seconds: float = 0.0
    compiles: int = 0  # training programs compiled (more than 1 when memory forced smaller chunks)
    run_seconds: float = 0.0
    devices: list[str] = dataclasses.field(default_factory=list)
    chunk_size: int = 0
    num_chunks: int = 0
    # Task families only: the family's task names, and the task ids each config row trained on
    # (every row all selected tasks at once; with single_task, one task per row, rows config-major).
    task_names: list[str] | None = None
    tasks: list[list[int]] | None = None
    single_task: bool = False
    final_params: Any = None  # with keep_params: the network params, leaves [configs, seeds, ...]
    # Updates that one episode of the env's longest length spans (0: unknown). The final-return
    # window is at least this wide: any stretch of that many env steps holds an episode end in
    # every env, so a run whose episodes all last long (a good CartPole policy) is not left with no
    # finished episode, hence a NaN final return, when 10% of the updates is shorter than one episode.
    episode_updates: int = 0

    @classmethod
    def load(cls, run_dir: str) -> "Results":
        """The Results of a finished `train` run, read back from its metrics.csv, summary.json
        and config.json (final_params are not read: see jaxrl.load)."""
        import pandas as pd

        from jaxrl.trained import config_from_record, read_record

        record = read_record(run_dir)
        with open(os.path.join(run_dir, "summary.json")) as f:
            summary = json.load(f)
        spec = get_algo(record["algo"])
        config = config_from_record(spec, record)
        frame = pd.read_csv(os.path.join(run_dir, "metrics.csv")).sort_values(
            ["config", "seed", "update"], kind="stable")
        index = {"config", "seed", "update", "env_steps", "task", *dynamic_fields(spec.Config)}
        shape = (frame["config"].nunique(), len(summary["seeds"]), summary["num_updates"])
        metrics = {name: frame[name].to_numpy().reshape(shape) for name in frame.columns
                   if name not in index}
        diverged = np.isin(np.asarray(summary["seeds"]), summary["diverged_seeds"])[None]
        tasks = summary.get("tasks")
        return cls(algo=record["algo"], env=record["env"], configs=[config] * shape[0],
                   seeds=list(summary["seeds"]), metrics=metrics,
                   steps_per_update=summary["total_steps"] // summary["num_updates"],
                   diverged=np.repeat(diverged, shape[0], axis=0),
                   compile_seconds=summary["compile_seconds"], compiles=summary["compiles"],
                   run_seconds=summary["run_seconds"], devices=summary["devices"],
                   chunk_size=summary["chunk_size"], num_chunks=summary["num_chunks"],
                   task_names=None if tasks is None else {t["task"]: t["name"] for t in summary["per_task"]},
                   tasks=None if tasks is None else ([[t] for t in tasks] if summary["single_task"]
                                                     else [tasks]),
                   single_task=bool(summary.get("single_task")),
                   episode_updates=summary["episode_updates"])

    @property
    def num_updates(self) -> int:
        return next(iter(self.metrics.values())).shape[-1]

    @property
    def total_steps(self) -> int:
        """Environment steps actually taken by one run."""
        return self.num_updates * self.steps_per_update

    def final_return(self, fraction: float = FINAL_FRACTION, prefix: str = "episode_return"
                     ) -> np.ndarray:
        """[configs, seeds] mean return of the episodes that finished in the last `fraction` of
        updates, or the last `episode_updates` if that is more (episode-count weighted); NaN for
        a run with no finished episode there (possible only with episode_updates unknown). For a
        multi-task row, the mean over its tasks of each task's final return (tasks weigh equally,
        however long their episodes)."""
        if prefix == "episode_return" and self.tasks and len(self.tasks[0]) > 1:
            return np.mean([self.final_return(fraction, f"task{k}_return")
                            for k in range(len(self.tasks[0]))], axis=0)
        last = self.final_window(fraction)
        return self.window_return(self.num_updates - last, self.num_updates, prefix)

    def final_window(self, fraction: float = FINAL_FRACTION) -> int:
        """Updates in the final-return window: `fraction` of them, at least episode_updates."""
        return int(stats.final_window(self.num_updates, self.episode_updates, fraction))

    def window_return(self, start: int, stop: int, prefix: str = "episode_return") -> np.ndarray:
        """[configs, seeds] mean return of the episodes that finished in updates start..stop-1
        (episode-count weighted); NaN for a run with no finished episode there."""
        return stats.count_weighted_mean(self.metrics[f"{prefix}_mean"][..., start:stop],
                                         self.metrics[f"{prefix}_count"][..., start:stop])

    def task_final_returns(self, config_index: int = 0) -> dict[int, np.ndarray]:
        """Task id -> [seeds] final return on that task, for config `config_index` (with
        single_task, gathered from that config's one-task rows)."""
        if self.single_task:
            rows = self._single_task_rows(config_index)
            finals = self.final_return()
            return {self.tasks[r][0]: finals[r] for r in rows}
        return {t: self.final_return(prefix=f"task{k}_return")[config_index]
                for k, t in enumerate(self.tasks[config_index])}

    def _single_task_rows(self, config_index: int) -> list[int]:
        per_config = len({tuple(t) for t in self.tasks})
        return list(range(config_index * per_config, (config_index + 1) * per_config))

    def summary(self, config_index: int = 0, reps: int = 10_000) -> dict[str, Any]:
        """The summary.json of one config: IQM final return with a 95% bootstrap CI over seeds.
        For a task family also `per_task` (each task's IQM and CI) and `tasks`; the overall final
        return is then each seed's mean over tasks. With single_task, `config_index` counts the
        configs before their expansion into one row per task."""
        per_task = self.task_final_returns(config_index) if self.tasks else None
        rows = self._single_task_rows(config_index) if self.single_task else [config_index]
        if self.single_task:
            per_seed = np.mean(list(per_task.values()), axis=0)
        else:
            per_seed = self.final_return()[config_index]
        final = iqm_summary(per_seed, reps)
        diverged = [] if self.diverged is None else [
            seed for s, seed in enumerate(self.seeds) if self.diverged[rows, s].any()]
        evals = self.final_eval_return()
        if evals is not None:
            final["eval"] = iqm_summary(evals[rows].mean(0), reps)
        summary = {"algo": self.algo, "env": self.env, "num_seeds": len(self.seeds),
                "seeds": list(self.seeds), "diverged_seeds": diverged, "total_steps": self.total_steps,
                "num_updates": self.num_updates, "episode_updates": self.episode_updates,
                "final_window_updates": self.final_window(), "compile_seconds": self.compile_seconds,
                "compiles": self.compiles, "run_seconds": self.run_seconds,
                "env_steps_per_second": len(self.configs) * len(self.seeds) * self.total_steps
                / max(self.run_seconds, 1e-9),
                "devices": self.devices, "chunk_size": self.chunk_size, "num_chunks": self.num_chunks,
                "config": to_dict(self.configs[rows[0]]), "final_return": final}
        if per_task is not None:
            summary.update(single_task=self.single_task, tasks=sorted(per_task), per_task=[
                {"task": t, "name": self.task_names[t], "final_return": iqm_summary(x, reps)}
                for t, x in sorted(per_task.items())])
        return summary

    def final_eval_return(self) -> np.ndarray | None:
        """[configs, seeds] greedy evaluation return at the last evaluation (None without eval)."""
        if "eval_return_mean" not in self.metrics:
            return None
        evals = self.metrics["eval_return_mean"]
        last = np.flatnonzero(np.isfinite(evals).any(axis=(0, 1)))
        return evals[..., last[-1]] if last.size else None

    def to_tensorboard(self, logdir: str) -> None:
        """One TensorBoard run per config: every metric's mean over seeds per update (x axis:
        env steps), plus the IQM over seeds of the training and evaluation returns."""
        from tensorboardX import SummaryWriter

        for c in range(len(self.configs)):
            with SummaryWriter(os.path.join(logdir, f"config_{c}")) as writer:
                for u in range(self.num_updates):
                    step = (u + 1) * self.steps_per_update
                    for name, values in sorted(self.metrics.items()):
                        column = values[c, :, u].astype(np.float64)
                        if np.isfinite(column).any():
                            writer.add_scalar(f"mean/{name}", np.nanmean(column), step)
                    for name in ("episode_return_mean", "eval_return_mean"):
                        if name not in self.metrics:
                            continue
                        column = self.metrics[name][c, :, u]
                        finite = column[np.isfinite(column)]
                        if finite.size:
                            writer.add_scalar(f"iqm/{name}", float(stats.iqm(finite)), step)

    def to_dataframe(self):
        """A tidy DataFrame: one row per (config, seed, update), the config's floats as columns."""
        import pandas as pd

        c, s, u = next(iter(self.metrics.values())).shape
        index = np.indices((c, s, u)).reshape(3, -1)
        frame = {"config": index[0], "seed": np.asarray(self.seeds)[index[1]], "update": index[2],
                 "env_steps": (index[2] + 1) * self.steps_per_update}
        for name in dynamic_fields(type(self.configs[0])):
            frame[name] = np.asarray([getattr(cfg, name) for cfg in self.configs])[index[0]]
        if self.single_task:
            frame["task"] = np.asarray([t[0] for t in self.tasks])[index[0]]
        frame.update({k: v.reshape(-1) for k, v in sorted(self.metrics.items())})
        return pd.DataFrame(frame)


def iqm_summary(per_seed: np.ndarray, reps: int) -> dict[str, Any]:
    """IQM over the finite per-seed values with a 95% bootstrap CI, and the values themselves."""
    finite = per_seed[np.isfinite(per_seed)]
    out = {"per_seed": [float(x) for x in per_seed], "num_finite": int(finite.size)}
    if finite.size:
        iqm, lo, hi = stats.bootstrap_ci(finite, stats.iqm, reps=reps, seed=0)
        out.update(iqm=float(iqm), ci95=[float(lo), float(hi)], mean=float(finite.mean()))
    else:
        out.update(iqm=None, ci95=[None, None], mean=None)
    return out


def task_plan(env_name: str, env_params, tasks: Sequence[int] | None,
              single_task: bool) -> list[list[int]] | None:
    """The task ids of each run row: None for an ordinary env; [[all selected]] for multi-task
    training; [[t] for each selected t] with single_task. Raises ConfigError on bad --tasks."""
    if not envs.is_table(env_params):
        if tasks is not None or single_task:
            families = ", ".join(envs.FAMILIES)
            raise ConfigError(f"--tasks/--single-task: {env_name} is not a task family; "
                              f"families: {families}")
        return None
    k = envs.num_tasks(env_params)
    ids = list(range(k)) if tasks is None else [int(t) for t in tasks]
    if not ids or len(set(ids)) != len(ids) or not all(0 <= t < k for t in ids):
        raise ConfigError(f"--tasks: got {ids}; give distinct task ids in 0..{k - 1} "
                          f"({env_name} has {k} tasks)")
    return [[t] for t in ids] if single_task else [ids]


def stack_configs(configs: Sequence[Any]) -> Any:
    """One config whose float leaves are [N] arrays; every config must share the static fields."""
    names = static_fields(type(configs[0]))
    for cfg in configs[1:]:
        for name in names:
            if getattr(cfg, name) != getattr(configs[0], name):
                raise ConfigError(f"--{name.replace('_', '-')}: a static field must be the same "
                                  "for every config of one run (sweep it as separate groups)")
    return jax.tree.map(lambda *xs: np.asarray(xs, np.float32), *configs)


def check_host_memory(one_run: Callable, args: tuple, n_runs: int) -> None:
    """Raise ConfigError, before anything is allocated, when the outputs of `n_runs` runs (each
    what `one_run(*args)` returns: metrics per update, kept params) exceed the host's budget."""
    out = jax.eval_shape(one_run, *args)
    per_run = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(out))
    budget = _host_budget()
    if n_runs * per_run > budget:
        raise ConfigError(f"--seeds: {n_runs:,} runs would return {n_runs * per_run / 2**30:,.1f} "
                          f"GiB of results, more than this host's {budget / 2**30:,.1f} GiB budget "
                          f"(half its memory); at most {budget // max(per_run, 1):,} runs fit")


def _host_budget() -> int:
    return int(0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _memory_budget(device) -> int:
    try:
        return int(0.8 * device.memory_stats()["bytes_limit"])
    except Exception:  # the CPU reports no memory stats: use half the host's RAM
        return _host_budget()


def compiled_bytes(compiled) -> int:
    m = compiled.memory_analysis()
    if m is None:
        return 0
    return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes)


def _diverged(state) -> jax.Array:
    """True when any float leaf of a run's final state (params, optimizer state, ...) is NaN or
    inf. vmapped runs share no arithmetic, so a diverged seed never affects the others."""
    return nonfinite(state)


# A run is (config, key, env params, initial network params); env params are None (the trainer's
# own) or, for a task family, the run's task table: `trainer_for(params)` builds the trainer on the
# traced table, so one compiled program serves every task selection of the same size. Initial
# params are None (the agent's random init) or the params to fine-tune (`Trainer.params` of a
# finished run), put into the fresh state by the agent's own `with_params`, which rebuilds
# everything derived from them (target networks, optimizer state).
def _init_run(trainer_for) -> Callable:
    def init(config, key, env_params, init_params):
        trainer = trainer_for(env_params)
        state = trainer.init(config, key)
        return state if init_params is None else trainer.with_params(config, state, init_params)

    return init


def _whole_run(trainer_for, num_updates: int, keep_params: bool, **segment_options) -> Callable:
    def whole(config, key, env_params, init_params):
        state = _init_run(trainer_for)(config, key, env_params, init_params)
        trainer = trainer_for(env_params)
        state, metrics = trainer.segment(num_updates, **segment_options)(config, state)
        return metrics, _diverged(state), trainer.params(state) if keep_params else None

    return whole


def _segment(trainer_for, num_updates: int, **segment_options) -> Callable:
    def segment(config, state, env_params, start):
        state, metrics = trainer_for(env_params).segment(num_updates, **segment_options)(
            config, state, start)
        return state, metrics, _diverged(state)

    return segment


class Progress:
    """Prints `update U/N (P%), S steps/s, ETA` at most every few seconds, from a host callback
    that the compiled program calls every ~1% of updates (once per device: repeats are dropped)."""

    def __init__(self, write: Callable[[str], None], num_updates: int, steps_per_update: int,
                 runs: int, seconds: float = 5.0):
        self.write, self.num_updates, self.seconds = write, num_updates, seconds
        self.steps_per_update, self.runs = steps_per_update, runs
        self.start(0, 1)

    def start(self, chunk: int, num_chunks: int, done: int = 0) -> None:
        self.chunk, self.num_chunks = chunk, num_chunks
        self.t0 = self.last_print = time.perf_counter()
        self.first = self.last = done

    def __call__(self, done) -> None:
        done, now = int(done), time.perf_counter()
        if done <= self.last:
            return
        self.last = done
        if now - self.last_print < self.seconds and done < self.num_updates:
            return
        self.last_print = now
        rate = (done - self.first) / max(now - self.t0, 1e-9)
        eta = (self.num_updates - done) / max(rate, 1e-9)
        self.write(f"chunk {self.chunk + 1}/{self.num_chunks}: update {done}/{self.num_updates} "
                   f"({done / self.num_updates:.0%}), "
                   f"{rate * self.steps_per_update * self.runs:,.0f} steps/s, ETA {eta:.0f}s")


class Checkpoints:
    """Orbax checkpoints of one chunk's batched state, saved atomically (orbax writes to a
    temporary folder and renames it), as arrays (no pickle), two kept. Each is verified: a SHA-256
    digest of every array is written beside it once the data is complete, and checked after every
    restore, so a damaged checkpoint (a truncated file, a bit flip) is never used. `restore`
    falls back to the previous checkpoint, with a warning that names the update it restarts from,
    when the latest is unreadable or fails verification."""

    DIGEST = "jaxrl.sha256"

    def __init__(self, directory: str):
        import orbax.checkpoint as ocp

        self.ocp = ocp
        with _quiet_orbax():  # it reads every checkpoint's metadata, damaged ones too
            self.manager = ocp.CheckpointManager(
                os.path.abspath(directory),
                options=ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=False))

    def save(self, updates_done: int, item: dict) -> None:
        self.manager.save(updates_done, args=self.ocp.args.StandardSave(item), force=True)
        self.manager.wait_until_finished()
        path = os.path.join(self._step_dir(updates_done), self.DIGEST)
        with open(path + ".tmp", "w") as f:  # written after the data; renamed into place whole
            f.write(digest(item))
            f.flush()
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)

    def _step_dir(self, step: int) -> str:
        return os.path.join(str(self.manager.directory), str(step))

    @staticmethod
    def flatten(state) -> dict:
        """A state's leaves keyed by position, so any pytree (flax structs, optax tuples) saves
        as plain named arrays and comes back through its own treedef."""
        return {f"{i:05d}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(state))}

    @staticmethod
    def unflatten(like, flat: dict):
        return jax.tree.unflatten(jax.tree.structure(like), [flat[k] for k in sorted(flat)])

    def restore(self) -> tuple[int, dict] | None:
        """(updates done, item) of the newest checkpoint that reads back and verifies, or None
        (with a warning when there were checkpoints: the chunk restarts from update 0)."""
        import warnings

        with _quiet_orbax():
            steps = sorted(self.manager.all_steps(), reverse=True)
        for i, step in enumerate(steps):
            older = f"update {steps[i + 1]}" if i + 1 < len(steps) else "update 0 (no usable checkpoint left)"
            try:
                with open(os.path.join(self._step_dir(step), self.DIGEST)) as f:
                    expected = f.read().strip()
                with _quiet_orbax():
                    item = self.manager.restore(step, args=self.ocp.args.StandardRestore())
                item = jax.tree.map(np.asarray, item)
                problem = None if digest(item) == expected else "its digest does not match"
            except Exception as error:  # unreadable, or no digest (killed before it was written)
                problem = f"unreadable: {type(error).__name__}"
            if problem is None:
                return step, item
            warnings.warn(f"checkpoint at update {step} in {self.manager.directory} is damaged "
                          f"({problem}); restarting from {older}", stacklevel=2)
            with _quiet_orbax():
                self.manager.delete(step)
        return None


def write_history(directory: str, start: int, stop: int, metrics: dict) -> None:
    """One segment's metrics (updates start..stop-1) as an .npz of arrays (no pickle), written
    whole or not at all (a temporary name, then a rename)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{start:09d}-{stop:09d}.npz")
    with open(path + ".tmp", "wb") as f:
        np.savez(f, **metrics)
    os.replace(path + ".tmp", path)


def read_history(directory: str, stop: int) -> list[dict] | None:
    """The segments' metrics covering updates 0..stop-1 in order, or None when they do not (a
    file missing or damaged: zip's CRC catches flipped bits). Segments past `stop` (written after
    the checkpoint that a resume falls back from) are ignored."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".npz"))
    except OSError:
        return None if stop else []
    pieces, at = [], 0
    for name in names:
        start, end = (int(x) for x in name[:-4].split("-"))
        if end > stop or start != at:
            continue
        try:
            with np.load(os.path.join(directory, name), allow_pickle=False) as data:
                pieces.append({k: data[k] for k in data.files})
        except Exception:
            return None
        at = end
    return pieces if at == stop else None


def digest(tree) -> str:
    """SHA-256 over a pytree of arrays: each leaf's path, dtype, shape and bytes, in order."""
    import hashlib

    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        leaf = np.ascontiguousarray(leaf)
        h.update(f"{jax.tree_util.keystr(path)}|{leaf.dtype.str}|{leaf.shape}|".encode())
        h.update(leaf.tobytes())
    return h.hexdigest()


class _quiet_orbax:
    """Silences orbax's and absl's logging while a possibly damaged checkpoint is read, so the
    normal fallback path prints one warning, not pages of library tracebacks."""

    def __enter__(self):
        import logging
        import sys

        self.loggers = [logging.getLogger(name) for name in ("absl", "orbax", "jax", "asyncio")]
        self.levels = [logger.level for logger in self.loggers]
        for logger in self.loggers:
            logger.setLevel(logging.CRITICAL + 1)
        self.hook, sys.unraisablehook = sys.unraisablehook, lambda unraisable: None

    def __exit__(self, *exc):
        import gc
        import sys

        gc.collect()  # failed reads leave futures whose collection logs "Event loop is closed"
        sys.unraisablehook = self.hook
        for logger, level in zip(self.loggers, self.levels):
            logger.setLevel(level)


def run(algo: str, env_name: str, configs: Sequence[Any], seeds: Sequence[int], *,
        max_batch: int | None = None, progress: Callable[[str], None] | None = print,
        env_kwargs: dict | None = None, dry_run: bool = False,
        tasks: Sequence[int] | None = None, single_task: bool = False,
        init_params: Any = None, keep_params: bool = False,
        checkpoint_dir: str | None = None, checkpoint_every: int | None = None,
        eval_every: int = 0, eval_episodes: int = 10,
        on_segment: Callable[[dict], None] | None = None) -> Results | dict:
    """Train every (config, seed) pair; configs must share their static fields.

    With `checkpoint_every` (updates) and `checkpoint_dir`, each chunk runs in segments of that many
    updates and saves its whole batched state after each; calling `run` again with the same
    arguments resumes from the last checkpoint and ends bit-identical to an uninterrupted run.
    `on_segment(rows)` is called as each segment of each chunk finishes (and, on a resume, for
    the segments earlier sessions ran), for watching a long run: `rows` holds flat columns
    `config`, `seed`, `update`, `env_steps` and every metric, one entry per (run, update).
    With `eval_every`, greedy evaluation episodes (`eval_episodes` fresh envs) run after every
    eval_every-th update, reported as `eval_return_mean` etc., apart from training returns.
    With `dry_run`, compile only and return the plan: chunk size and count, the compiled
    program's memory per chunk, compiles and compile seconds.

    For a task family (`envs.FAMILIES`), every run trains one network on the tasks `tasks`
    (default all) at once, its envs spread evenly over them; with `single_task`, each task is
    trained on its own instead, the config rows becoming (config, task) pairs, all in one
    vmapped program.

    For fine-tuning, `init_params` (leaves [seeds, ...], e.g. a pretraining run's `final_params`
    of one config) replaces seed i's freshly initialised network params (the optimizer state
    stays fresh); `keep_params` returns every run's final params in `Results.final_params`."""
    spec = get_algo(algo)
    env, env_params = envs.make(env_name, **(env_kwargs or {}))
    configs = list(configs)
    if len(seeds) and not 0 <= min(seeds) <= max(seeds) <= MAX_SEED:
        raise ConfigError(f"--seeds: seeds must be in 0..{MAX_SEED} (32-bit), got "
                          f"{min(seeds)}..{max(seeds)}")
    row_tasks = task_plan(env_name, env_params, tasks, single_task)
    if row_tasks is not None:  # one row per (config, task selection)
        configs = [cfg for cfg in configs for _ in row_tasks]
        row_tasks = row_tasks * (len(configs) // len(row_tasks))
        tables = [envs.select_tasks(env_params, ids) for ids in row_tasks]
        env_params = tables[0]
    for cfg in configs:
        spec.validate(cfg, env, env_params)
    stacked = stack_configs(configs)
    n_runs = len(configs) * len(seeds)
    trainer = spec.make_trainer(configs[0], env, env_params)
    tracker = Progress(progress, trainer.num_updates, spec.steps_per_update(configs[0]),
                       n_runs) if progress else None
    options = dict(eval_every=eval_every, eval_episodes=eval_episodes, on_progress=tracker,
                   progress_every=max(1, trainer.num_updates // 100) if tracker else 0)

    def trainer_for(params):
        return trainer if params is None else spec.make_trainer(configs[0], env, params)

    check_host_memory(_whole_run(trainer_for, trainer.num_updates, keep_params, **options),
                      (jax.tree.map(lambda x: x[0], stacked), seed_key(0),
                       None if row_tasks is None else tables[0],
                       None if init_params is None else jax.tree.map(lambda x: x[0], init_params)),
                      n_runs)
    seeds = [int(s) for s in seeds]
    config_index = np.repeat(np.arange(len(configs)), len(seeds))
    keys = np.asarray(jax.vmap(seed_key)(jnp.asarray(np.tile(seeds, len(configs)), jnp.uint32)))
    all_configs = jax.tree.map(lambda x: x[config_index], stacked)
    all_params = None
    if row_tasks is not None:
        stacked_tables = jax.tree.map(lambda *xs: np.stack(xs), *tables)
        all_params = jax.tree.map(lambda x: x[config_index], stacked_tables)

    all_init = None
    if init_params is not None:  # seed i's params for every config row
        seed_index = np.tile(np.arange(len(seeds)), len(configs))
        all_init = jax.tree.map(lambda x: np.asarray(x)[seed_index], init_params)

    every = min(checkpoint_every or trainer.num_updates, trainer.num_updates)
    segmented = checkpoint_every is not None

    devices = jax.local_devices()
    n_dev = len(devices)
    sharding = NamedSharding(Mesh(np.array(devices), ("batch",)), PartitionSpec("batch"))

    def batched(tree, size):
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct((size,) + x.shape[1:], x.dtype,
                                                           sharding=sharding), tree)

    init_run = _init_run(trainer_for)

    def compile_for(size):
        shapes = (batched(all_configs, size), batched(keys, size), batched(all_params, size),
                  batched(all_init, size))
        if not segmented:
            return None, jax.jit(jax.vmap(_whole_run(trainer_for, trainer.num_updates, keep_params,
                                                     **options)),
                                 out_shardings=sharding).lower(*shapes).compile()
        init = jax.jit(jax.vmap(init_run), out_shardings=sharding).lower(*shapes).compile()
        state_shapes = jax.eval_shape(jax.vmap(init_run), *shapes)
        return init, jax.jit(jax.vmap(_segment(trainer_for, every, **options),
                                      in_axes=(0, 0, 0, None)), out_shardings=sharding).lower(
            shapes[0], batched(state_shapes, size), shapes[2], 0).compile()

    def round_up(n: int) -> int:
        return -(-n // n_dev) * n_dev

    # A resumed run keeps the chunking its checkpoints were saved with (plan.json beside them).
    plan_path = os.path.join(checkpoint_dir, "plan.json") if checkpoint_dir else None
    saved_plan = None
    if plan_path and os.path.exists(plan_path):
        with open(plan_path) as f:
            saved_plan = json.load(f)
        if saved_plan["num_devices"] != n_dev:
            raise ConfigError(f"--resume: the checkpoints were saved with {saved_plan['num_devices']} "
                              f"devices and this process has {n_dev}; resume with the same count "
                              "(JAXRL_CPU_DEVICES on the CPU)")
        chunk = saved_plan["chunk_size"]
    elif max_batch:  # at most max_batch runs, but a whole number per device
        chunk = max(n_dev, min(n_runs, max_batch) // n_dev * n_dev)
    else:
        chunk = round_up(n_runs)
    budget = _memory_budget(devices[0])
    compile_seconds, compiles = 0.0, 0
    while True:
        t0 = time.perf_counter()
        init_program, program = compile_for(chunk)
        compile_seconds += time.perf_counter() - t0
        compiles += 1
        chunk_bytes = compiled_bytes(program)
        if saved_plan or max_batch or chunk <= n_dev or chunk_bytes <= budget:
            break
        chunk = round_up(chunk // 2)
    if chunk_bytes > budget:
        hint = "lower --max-batch" if chunk > n_dev else "use a smaller config"
        raise ConfigError(f"--max-batch: one chunk of {chunk} runs needs {chunk_bytes / 2**30:.1f} "
                          f"GiB, more than the {budget / 2**30:.1f} GiB this device can give; {hint}")

    num_chunks = -(-n_runs // chunk)
    if dry_run:
        extra = int(segmented and trainer.num_updates % every != 0)  # a shorter last segment
        return {"algo": algo, "env": env_name, "runs": n_runs, "configs": len(configs),
                "seeds": len(seeds), "devices": [str(d) for d in devices], "chunk_size": chunk,
                "num_chunks": num_chunks, "bytes_per_chunk": chunk_bytes,
                "memory_budget_bytes": budget, "compiles": compiles + extra,
                "compile_seconds": compile_seconds}
    if plan_path and not saved_plan:
        os.makedirs(checkpoint_dir, exist_ok=True)
        with open(plan_path, "w") as f:
            json.dump({"chunk_size": chunk, "num_devices": n_dev}, f)

    def emit(i, start, stop, metrics):
        """on_segment's rows: updates start..stop-1 of chunk i's real runs, labelled."""
        if on_segment is None:
            return
        runs = np.arange(i * chunk, min((i + 1) * chunk, n_runs))
        updates = np.tile(np.arange(start, stop), len(runs))
        rows = {"config": np.repeat(runs // len(seeds), stop - start),
                "seed": np.repeat(np.asarray(seeds)[runs % len(seeds)], stop - start),
                "update": updates, "env_steps": (updates + 1) * spec.steps_per_update(configs[0])}
        on_segment({**rows, **{k: np.asarray(v)[:len(runs)].reshape(-1) for k, v in metrics.items()}})

    def run_segments(i, chunk_configs, chunk_params, state):
        """Runs one chunk segment by segment from its last checkpoint, saving after each: the
        state in the checkpoint, each segment's metrics in its own file of the chunk's history
        (never rewritten, so saving stays linear in the run's length). Returns (metrics,
        diverged, params, seconds this chunk ran in earlier sessions)."""
        nonlocal compile_seconds, compiles
        t_start = time.perf_counter()
        store = Checkpoints(os.path.join(checkpoint_dir, f"chunk-{i:04d}")) if checkpoint_dir else None
        history_dir = os.path.join(checkpoint_dir, f"chunk-{i:04d}-history") if checkpoint_dir else None
        done, history, diverged, earlier = 0, [], np.zeros(chunk, bool), 0.0
        restored = store.restore() if store else None
        if restored:
            history = read_history(history_dir, restored[0])
            if history is None:
                import warnings

                warnings.warn(f"the metric history in {history_dir} does not reach update "
                              f"{restored[0]}; restarting chunk {i + 1} from update 0", stacklevel=2)
                history = []
            else:
                done, item = restored
                state = jax.device_put(Checkpoints.unflatten(state, item["state"]), sharding)
                diverged, earlier = np.asarray(item["diverged"]), float(item["seconds"])
        start = 0
        for piece in history:  # what earlier sessions ran, shown again
            stop = start + next(iter(piece.values())).shape[1]
            emit(i, start, stop, piece)
            start = stop
        if tracker:
            tracker.start(i, num_chunks, done)
        while done < trainer.num_updates:
            n = min(every, trainer.num_updates - done)
            step = program
            if n != every:
                if n not in last_segment:
                    t0 = time.perf_counter()
                    last_segment[n] = jax.jit(
                        jax.vmap(_segment(trainer_for, n, **options), in_axes=(0, 0, 0, None)),
                        out_shardings=sharding).lower(
                        batched(all_configs, chunk), batched(state, chunk),
                        batched(all_params, chunk), 0).compile()
                    compile_seconds += time.perf_counter() - t0
                    compiles += 1
                step = last_segment[n]
            state, metrics, diverged = step(chunk_configs, state, chunk_params, done)
            metrics, diverged = jax.device_get(metrics), np.asarray(diverged)
            history.append(metrics)
            emit(i, done, done + n, metrics)
            done += n
            if store:
                write_history(history_dir, done - n, done, metrics)  # before the state it matches
                seconds = earlier + time.perf_counter() - t_start
                store.save(done, {"state": Checkpoints.flatten(jax.device_get(state)),
                                  "diverged": diverged, "seconds": np.asarray(seconds, np.float64)})
                if progress:
                    progress(f"checkpoint: chunk {i + 1}/{num_chunks}, update {done}/{trainer.num_updates}")
        params = jax.device_get(jax.vmap(trainer.params)(state)) if keep_params else None
        metrics = {k: np.concatenate([h[k] for h in history], axis=1) for k in history[-1]}
        return metrics, diverged, params, earlier

    last_segment = {}
    outputs, flags, kept, run_seconds = [], [], [], 0.0
    for i in range(num_chunks):
        index = np.arange(i * chunk, (i + 1) * chunk)
        index = np.minimum(index, n_runs - 1)  # pad the last chunk by repeating its last run
        chunk_configs, chunk_keys, chunk_params, chunk_init = jax.device_put(
            jax.tree.map(lambda x: x[index], (all_configs, keys, all_params, all_init)), sharding)
        t0 = time.perf_counter()
        if tracker:
            tracker.start(i, num_chunks)
        earlier = 0.0  # a resumed chunk's time in earlier sessions: steps/s over the whole run
        if not segmented:
            metrics, diverged, params = jax.device_get(
                program(chunk_configs, chunk_keys, chunk_params, chunk_init))
            emit(i, 0, trainer.num_updates, metrics)
        else:
            metrics, diverged, params, earlier = run_segments(
                i, chunk_configs, chunk_params,
                init_program(chunk_configs, chunk_keys, chunk_params, chunk_init))
        run_seconds += earlier + time.perf_counter() - t0
        valid = min(chunk, n_runs - i * chunk)
        outputs.append({k: v[:valid] for k, v in metrics.items()})
        flags.append(diverged[:valid])
        kept.append(jax.tree.map(lambda x: x[:valid], params))
        if progress:
            done = min((i + 1) * chunk, n_runs)
            progress(f"chunk {i + 1}/{num_chunks}: runs {done}/{n_runs}, "
                     f"compile {compile_seconds:.1f}s, run {run_seconds:.1f}s"
                     + (f", {int(np.sum(flags[-1]))} diverged" if np.any(flags[-1]) else ""))

    shape = (len(configs), len(seeds))
    metrics = {k: np.concatenate([o[k] for o in outputs]).reshape(shape + (-1,)) for k in outputs[0]}
    final_params = jax.tree.map(lambda *xs: np.concatenate(xs).reshape(shape + xs[0].shape[1:]),
                                *kept) if keep_params else None
    return Results(algo=algo, env=env_name, configs=configs, seeds=seeds, metrics=metrics,
                   steps_per_update=spec.steps_per_update(configs[0]),
                   episode_updates=episode_updates(env_params, spec.steps_per_update(configs[0]),
                                                   configs[0].num_envs),
                   diverged=np.concatenate(flags).reshape(shape),
                   compile_seconds=compile_seconds, compiles=compiles, run_seconds=run_seconds,
                   devices=[str(d) for d in devices], chunk_size=chunk, num_chunks=num_chunks,
                   task_names=getattr(env, "task_names", None), tasks=row_tasks,
                   single_task=bool(single_task and row_tasks is not None), final_params=final_params)
