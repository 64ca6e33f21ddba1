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


# The per-step info of `envs.EpisodeStats` that episode statistics read (episode_success only
# for envs that report a `success` in info).
EPISODE_INFO = ("episode_return", "episode_length", "episode_done", "episode_success")


def episode_info(info: dict) -> dict:
    """The EPISODE_INFO entries of a step's info (what a rollout keeps for `episode_metrics`)."""
    return {k: info[k] for k in EPISODE_INFO if k in info}


def episode_metrics(info, task_index=None, num_tasks: int = 1) -> dict:
    """Statistics of the episodes that finished in a rollout, from `EpisodeStats` info ([T, E]).

    With `task_index` ([E], the task row each env runs), also the mean return and count of each
    task's episodes, as `task{k}_return_mean` / `task{k}_return_count` (k the row in the table).
    For an env that reports success, `episode_success_mean` (the fraction of finished episodes
    that ended in success) and `_count`, and per task `task{k}_success_mean` / `_count`."""
    done = info["episode_done"]
    metrics = {**masked_stats(info["episode_return"], done, "episode_return"),
               **masked_stats(info["episode_length"].astype(jnp.float32), done, "episode_length")}
    per_task = ["return"]
    if "episode_success" in info:
        stats = masked_stats(info["episode_success"].astype(jnp.float32), done, "episode_success")
        metrics.update({k: stats[k] for k in ("episode_success_mean", "episode_success_count")})
        per_task.append("success")
    if task_index is not None:
        for k in range(num_tasks):
            for name in per_task:
                stats = masked_stats(info[f"episode_{name}"].astype(jnp.float32),
                                     done & (task_index == k), f"task{k}_{name}")
                metrics.update({m: stats[m] for m in (f"task{k}_{name}_mean", f"task{k}_{name}_count")})
    return metrics


def reduce_rows(rows: dict) -> dict:
    """One metrics row from K rows ([K] each, e.g. an off-policy agent's K gradient steps), as if
    the K were one: for episode statistics `X_mean/_std/_min/_max/_count`, the count summed and
    the others pooled over all K rows' episodes (count-weighted; NaN when none finished); every
    other metric (losses, epsilon, flags) its mean over the rows where it is finite (NaN when
    none is: a row of warm-up steps has no loss)."""
    counted = {name[:-len("_count")] for name in rows if name.endswith("_count")}
    out = {}
    for prefix in counted:
        count = rows[f"{prefix}_count"]
        total = count.sum()
        weight = count / jnp.maximum(total, 1)
        some = total > 0
        nan = jnp.float32(jnp.nan)
        out[f"{prefix}_count"] = total
        if f"{prefix}_mean" in rows:
            means = jnp.where(count > 0, rows[f"{prefix}_mean"], 0.0)
            mean = (weight * means).sum()
            out[f"{prefix}_mean"] = jnp.where(some, mean, nan)
            if f"{prefix}_std" in rows:
                stds = jnp.where(count > 0, rows[f"{prefix}_std"], 0.0)
                var = (weight * (stds ** 2 + (means - mean) ** 2)).sum()
                out[f"{prefix}_std"] = jnp.where(some, jnp.sqrt(var), nan)
        for name, pick in ((f"{prefix}_min", jnp.nanmin), (f"{prefix}_max", jnp.nanmax)):
            if name in rows:
                out[name] = jnp.where(some, pick(jnp.where(count > 0, rows[name], jnp.nan)), nan)
    for name, value in rows.items():
        if name not in out:
            finite = jnp.isfinite(value)
            n = finite.sum()
            mean = jnp.where(finite, value, 0).sum() / jnp.maximum(n, 1)
            out[name] = jnp.where(n > 0, mean, jnp.nan).astype(jnp.result_type(value, jnp.float32))
    return out
