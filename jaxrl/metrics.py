"""Per-update metric reductions done inside the compiled program, so a run never stores per-step,
per-env arrays: only a few scalars per update leave the device."""
from __future__ import annotations

import jax.numpy as jnp


def masked_stats(x, mask, prefix: str) -> dict:
    """mean/std/min/max of `x` where `mask` is true, plus the count; NaN where nothing is masked in
    (no finished episode is not a return of 0)."""
    mask = mask.astype(bool)
    count = mask.sum()
    n = jnp.maximum(count, 1)
    mean = jnp.where(mask, x, 0.0).sum() / n
    var = jnp.where(mask, (x - mean) ** 2, 0.0).sum() / n
    nan = jnp.float32(jnp.nan)
    any_ = count > 0
    return {f"{prefix}_mean": jnp.where(any_, mean, nan),
            f"{prefix}_std": jnp.where(any_, jnp.sqrt(var), nan),
            f"{prefix}_min": jnp.where(any_, jnp.where(mask, x, jnp.inf).min(), nan),
            f"{prefix}_max": jnp.where(any_, jnp.where(mask, x, -jnp.inf).max(), nan),
            f"{prefix}_count": count}


def episode_metrics(info, task_index=None, num_tasks: int = 1) -> dict:
    """Statistics of the episodes that finished in a rollout, from `EpisodeStats` info ([T, E]).

    With `task_index` ([E], the task row each env runs), also the mean return and count of each
    task's episodes, as `task{k}_return_mean` / `task{k}_return_count` (k the row in the table)."""
    done = info["episode_done"]
    metrics = {**masked_stats(info["episode_return"], done, "episode_return"),
               **masked_stats(info["episode_length"].astype(jnp.float32), done, "episode_length")}
    if task_index is not None:
        for k in range(num_tasks):
            stats = masked_stats(info["episode_return"], done & (task_index == k), f"task{k}_return")
            metrics.update({name: stats[name] for name in (f"task{k}_return_mean",
                                                           f"task{k}_return_count")})
    return metrics
