"""Watching a run while it trains: sinks for `execute(..., on_segment=)`, each called with every
finished segment's rows (flat columns `config`, `seed`, `update`, `env_steps` and every metric,
one entry per (run, update)). The CLI's `--tensorboard` and `--wandb` use them;
`Results.to_tensorboard` writes a finished run's rows through the same `per_config_scalars`.

With several chunks (more runs than fit at once) a config's seeds arrive chunk by chunk, so a
logger shows each chunk's seeds in turn at the same env steps; metrics.csv and `Results` hold
every seed."""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from jaxrl import stats

IQM_METRICS = ("episode_return_mean", "eval_return_mean")


def per_config_scalars(rows: dict) -> Iterator[tuple[int, int, dict[str, float]]]:
    """(config, env steps, {tag: value}) for each (config, update) in `rows`: every metric's
    mean over the seeds (`mean/NAME`) and the IQM over seeds of the training and evaluation
    returns (`iqm/NAME`), finite values only."""
    config, update = np.asarray(rows["config"]), np.asarray(rows["update"])
    order = np.lexsort((update, config))  # one pass over groups of (config, update)
    key = np.stack([config[order], update[order]])
    starts = np.flatnonzero(np.r_[True, np.any(key[:, 1:] != key[:, :-1], axis=0)])
    names = sorted(k for k in rows if k not in ("config", "seed", "update", "env_steps", "task"))
    columns = {name: np.asarray(rows[name])[order].astype(np.float64) for name in names}
    steps = np.asarray(rows["env_steps"])[order]
    for start, stop in zip(starts, np.r_[starts[1:], order.size]):
        scalars = {}
        for name in names:
            column = columns[name][start:stop]
            finite = column[np.isfinite(column)]
            if finite.size:
                scalars[f"mean/{name}"] = float(finite.mean())
                if name in IQM_METRICS:
                    scalars[f"iqm/{name}"] = float(stats.iqm(finite))
        yield int(key[0, start]), int(steps[start]), scalars


class LiveTable:
    """metrics.csv while a run trains: each finished segment's rows appended (a session starts
    the file anew; a resumed run's earlier segments are replayed first), so a long run can be
    watched. The finished run's metrics.csv replaces it, sorted and with the config's floats."""

    def __init__(self, path: str):
        self.path, self.header = path, True
        if os.path.exists(path):
            os.remove(path)

    def __call__(self, rows: dict) -> None:
        import pandas as pd

        pd.DataFrame(rows).to_csv(self.path, mode="a", header=self.header, index=False)
        self.header = False


class LiveTensorBoard:
    """TensorBoard event files under `logdir/config_C` (x axis: env steps), written as each
    segment finishes. A resumed run starts new event files (earlier segments replayed)."""

    def __init__(self, logdir: str):
        self.logdir, self.writers = logdir, {}

    def __call__(self, rows: dict) -> None:
        from tensorboardX import SummaryWriter

        for c, step, scalars in per_config_scalars(rows):
            if c not in self.writers:
                self.writers[c] = SummaryWriter(os.path.join(self.logdir, f"config_{c}"))
            for tag, value in scalars.items():
                self.writers[c].add_scalar(tag, value, step)
        for writer in self.writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


class LiveWandb:
    """A Weights & Biases run (the `wandb` extra) fed each segment's per-config scalars, tagged
    `config_C/mean/NAME` and `config_C/iqm/NAME` against `env_steps`. Offline unless the user's
    WANDB_MODE says otherwise (`wandb sync DIR` uploads later); files under `directory`."""

    def __init__(self, directory: str, name: str, record: dict):
        import wandb

        os.makedirs(directory, exist_ok=True)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "jaxrl"), name=name,
                              dir=directory, config=record,
                              mode=os.environ.get("WANDB_MODE", "offline"))
        self.run.define_metric("env_steps")
        self.run.define_metric("*", step_metric="env_steps")

    def __call__(self, rows: dict) -> None:
        for c, step, scalars in per_config_scalars(rows):
            self.run.log({"env_steps": step, **{f"config_{c}/{k}": v for k, v in scalars.items()}})

    def close(self) -> None:
        self.run.finish()
