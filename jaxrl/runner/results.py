"""What a run returns: `Results`, the per-update metrics of every (config, seed) run with the
rules that read them (final return, windows, per-task returns, summary.json), and
`Results.load(RUN)` to read a finished run back."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

import envs
from jaxrl import stats
from jaxrl.agents import get_algo
from jaxrl.config import dynamic_fields, to_dict

FINAL_FRACTION = stats.FINAL_FRACTION  # the final-return window's share of the updates


def episode_updates(env_params, steps_per_update: int, num_envs: int) -> int:
    """Updates spanned by an episode of the env's longest length (`envs.max_steps`): each env
    takes steps_per_update / num_envs steps per update."""
    return -(-envs.max_steps(env_params) * num_envs // steps_per_update)


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
        if prefix.startswith("episode_") and self.tasks and len(self.tasks[0]) > 1:
            name = prefix[len("episode_"):]
            return np.mean([self.final_return(fraction, f"task{k}_{name}")
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

    def task_final_returns(self, config_index: int = 0, name: str = "return") -> dict[int, np.ndarray]:
        """Task id -> [seeds] final return on that task (`name="success"`: final success rate),
        for config `config_index` (with single_task, gathered from that config's one-task rows)."""
        if self.single_task:
            rows = self._single_task_rows(config_index)
            finals = self.final_return(prefix=f"episode_{name}")
            return {self.tasks[r][0]: finals[r] for r in rows}
        return {t: self.final_return(prefix=f"task{k}_{name}")[config_index]
                for k, t in enumerate(self.tasks[config_index])}

    @property
    def has_success(self) -> bool:
        """Whether the env reported success (episode_success_* metrics exist)."""
        return "episode_success_mean" in self.metrics

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
        success = per_task_success = None
        if self.has_success:  # the same windows and rules as the final return
            per_task_success = self.task_final_returns(config_index, "success") if self.tasks else None
            success = iqm_summary(np.mean(list(per_task_success.values()), axis=0) if self.single_task
                                  else self.final_return(prefix="episode_success")[config_index], reps)
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
        if success is not None:
            summary["final_success"] = success
        if per_task is not None:
            summary.update(single_task=self.single_task, tasks=sorted(per_task), per_task=[
                {"task": t, "name": self.task_names[t], "final_return": iqm_summary(x, reps),
                 **({} if success is None else {"final_success": iqm_summary(per_task_success[t], reps)})}
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
        env steps), plus the IQM over seeds of the training and evaluation returns (the
        scalars `--tensorboard` writes while a run trains: `jaxrl.live`)."""
        from jaxrl.live import LiveTensorBoard

        frame = self.to_dataframe().drop(columns=dynamic_fields(type(self.configs[0])))
        sink = LiveTensorBoard(logdir)
        sink({name: frame[name].to_numpy() for name in frame.columns})
        sink.close()

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

