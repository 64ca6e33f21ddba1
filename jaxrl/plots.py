"""Figures of a run or sweep folder (`metrics.csv`, plus `config.json` / `summary.json` for the
title): learning curves and training diagnostics as the IQM over seeds with 95% bootstrap bands,
the performance profile of final returns, and the hyperparameter sweep (a heatmap over two varying
hyperparameters, a line over one). This module owns reading the tidy metrics table back, the
final-return definition on it (the same as `Results.final_return`) and the look of the figures;
the statistics come from `jaxrl.stats`. It draws on `matplotlib.figure.Figure`, saved through the
Agg canvas, so it never opens a window and never touches pyplot's global state or the user's
chosen backend."""
from __future__ import annotations

import json
import math
import os
from typing import Any, Sequence

import numpy as np

from jaxrl import stats

FINAL_FRACTION = stats.FINAL_FRACTION
RETURN, COUNT = "episode_return_mean", "episode_return_count"
INDEX_COLUMNS = ("config", "seed", "update", "env_steps", "diverged")
SMOOTH_FRACTION = 0.05  # smoothing window, as a fraction of a run's updates
CURVE_POINTS = 80  # x points at which curve IQMs and CIs are evaluated
CURVE_REPS = 500  # bootstrap replicates per curve (all x points at once)
PROFILE_REPS = 1000
SWEEP_REPS = 2000
DIAGNOSTICS = ("entropy", "approx_kl", "clip_fraction", "value_loss", "policy_loss", "grad_norm",
               "value_mean", "advantage_std", "episode_length_mean")
_STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 9,
          "xtick.labelsize": 10, "ytick.labelsize": 10, "axes.spines.top": False,
          "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 100}


# ------------------------------------------------------------------------------------- reading


def load_run(run_dir: str) -> tuple[Any, dict[str, Any]]:
    """(metrics DataFrame, metadata) of a run or sweep folder. Metadata merges `summary.json` and
    `config.json` (the latter wins); both are optional. Raises a one-line ValueError naming the
    folder when it holds no readable `metrics.csv` or the table lacks the columns plots need."""
    import pandas as pd

    path = os.path.join(run_dir, "metrics.csv")
    if not os.path.isfile(path):
        what = ("is a file, not a run folder" if os.path.isfile(run_dir) else "does not exist"
                if not os.path.isdir(run_dir) else "has no metrics.csv")
        raise ValueError(f"{run_dir}: {what}; expected a run folder written by `python -m jaxrl "
                         "train --out DIR` (config.json, metrics.csv, summary.json)")
    try:
        df = pd.read_csv(path)
    except Exception as e:  # empty or malformed file
        message = str(e).splitlines()[0] if str(e) else ""
        raise ValueError(f"{path}: cannot be read as a CSV table ({type(e).__name__}: "
                         f"{message})") from None
    missing = [c for c in ("config", "seed", "update", "env_steps", RETURN) if c not in df.columns]
    if missing or df.empty:
        raise ValueError(f"{path}: " + (f"missing column(s) {', '.join(missing)}" if missing
                                        else "has no rows"))
    meta: dict[str, Any] = {}
    for name in ("summary.json", "config.json"):
        try:
            with open(os.path.join(run_dir, name)) as f:
                loaded = json.load(f)
            meta.update(loaded if isinstance(loaded, dict) else {})
        except (OSError, ValueError):
            pass
    df = df.sort_values(["config", "seed", "update"], kind="stable").reset_index(drop=True)
    df.attrs["episode_updates"] = int(meta.get("episode_updates") or 0)  # see final_returns
    return df, meta


def config_field_names(meta: dict[str, Any]) -> set[str]:
    """Config field names that a run's metadata mentions: config.json's top-level keys,
    summary.json's `config`, and the keys of any `configs` list (a sweep's)."""
    names = set(meta)
    if isinstance(meta.get("config"), dict):
        names |= set(meta["config"])
    for cfg in meta.get("configs") or []:
        names |= set(cfg) if isinstance(cfg, dict) else set()
    return names


def hyperparameter_columns(df, meta: dict[str, Any] | None = None) -> list[str]:
    """The config's float hyperparameters among the columns: numeric, not an index column, not an
    episode statistic, and constant within every config (metrics vary over updates). When the
    metadata names config fields, only those count (a metric can be constant in a tiny run)."""
    grouped = df.groupby("config", sort=True)
    columns = []
    for c in df.columns:
        if c in INDEX_COLUMNS or c.startswith("episode_") or df[c].dtype.kind not in "fiu":
            continue
        if (grouped[c].nunique(dropna=False) <= 1).all():
            columns.append(c)
    known = config_field_names(meta or {})
    return [c for c in columns if c in known] if known & set(columns) else columns


def varying_hyperparameters(df, meta: dict[str, Any] | None = None) -> list[str]:
    """The hyperparameter columns that take more than one value across configs."""
    return [c for c in hyperparameter_columns(df, meta) if df[c].nunique(dropna=False) > 1]


def config_table(df, meta: dict[str, Any] | None = None):
    """One row per config (its index), the varying hyperparameters as columns."""
    return df.groupby("config", sort=True)[varying_hyperparameters(df, meta)].first()


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, (float, np.floating)) else str(value)


def config_labels(df, meta: dict[str, Any] | None = None) -> dict[int, str]:
    """Legend label per config: its varying hyperparameters ("lr=0.001, ent_coef=0.01"), or
    "algo on env" when nothing varies."""
    table = config_table(df, meta)
    if table.shape[1] == 0:
        name = _run_name(meta or {}) or "run"
        return {int(c): name for c in table.index}
    return {int(c): ", ".join(f"{k}={_fmt(v)}" for k, v in row.items())
            for c, row in table.iterrows()}


def _decimals(values: np.ndarray) -> int:
    """Decimals that show about three significant digits of the largest of `values`."""
    values = np.abs(np.asarray(values, dtype=float))
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return 1
    return int(np.clip(2 - math.floor(math.log10(values.max())), 0, 4))


def _run_name(meta: dict[str, Any]) -> str:
    algo, env = meta.get("algo"), meta.get("env")
    if algo and env:
        return f"{str(algo).upper()} on {env}"
    return str(algo or env or "")


# -------------------------------------------------------------------------------- final return


def final_returns(df, fraction: float = FINAL_FRACTION):
    """Series indexed by (config, seed): the mean return of the episodes that finished in the last
    `fraction` of each run's updates, or in the last `df.attrs["episode_updates"]` if more (set by
    `load_run` from summary.json), weighted by `episode_return_count`: the same definition as
    `Results.final_return`. NaN for a run with no finished episode there. Without a count
    column, every update with a finite mean counts as one episode."""
    updates = df.groupby(["config", "seed"])["update"].transform("max") + 1
    last = stats.final_window(updates.to_numpy(), df.attrs.get("episode_updates", 0), fraction)
    tail = df["update"].to_numpy() >= updates.to_numpy() - last
    mean = df[RETURN].to_numpy(dtype=float)
    count = (df[COUNT].to_numpy(dtype=float) if COUNT in df.columns
             else np.isfinite(mean).astype(float))
    weight = np.where(tail, stats.episode_weights(mean, count), 0.0)
    frame = df[["config", "seed"]].assign(_total=np.where(weight > 0, mean * weight, 0.0),
                                          _n=weight)
    sums = frame.groupby(["config", "seed"], sort=True)[["_total", "_n"]].sum()
    out = sums["_total"] / sums["_n"].where(sums["_n"] > 0)
    return out.rename("final_return")


# ----------------------------------------------------------------------------- curve statistics


def smooth(values: np.ndarray, weights: np.ndarray, window: int,
           trailing: bool = False) -> np.ndarray:
    """Running weighted mean over `window` updates along the last axis, ignoring NaN values and
    zero weights; NaN where the window holds no weight. Centred (cut at the ends), or `trailing`:
    each update's mean over itself and the `window - 1` before it, NaN until the window is full.
    values, weights: [..., updates]."""
    w = np.where(np.isfinite(values) & (weights > 0), weights, 0.0).astype(float)
    vw = np.where(w > 0, values * w, 0.0)
    if window <= 1:
        return np.where(w > 0, vw / np.where(w > 0, w, 1.0), np.nan)

    def cumsum0(a: np.ndarray) -> np.ndarray:  # [..., n + 1], starting at 0
        return np.concatenate([np.zeros(a.shape[:-1] + (1,)), np.cumsum(a, -1)], -1)

    cv, cw = cumsum0(vw), cumsum0(w)
    n = values.shape[-1]
    start = np.arange(n) - (window - 1 if trailing else window // 2)
    lo, hi = np.clip(start, 0, n), np.clip(start + window, 0, n)
    total, weight = cv[..., hi] - cv[..., lo], cw[..., hi] - cw[..., lo]
    out = np.where(weight > 0, total / np.where(weight > 0, weight, 1.0), np.nan)
    return np.where(start >= 0, out, np.nan) if trailing else out


def iqm_band(curves: np.ndarray, reps: int = CURVE_REPS, seed: int = 0,
             min_finite: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointwise IQM over runs with a 95% percentile-bootstrap CI: curves [runs, points] ->
    (iqm, lo, hi), each [points]. Each point resamples runs on its own (a pointwise band). Points
    where fewer than `min_finite` runs (default: half, rounded up) are finite are NaN; the others
    use their finite runs only; all points sharing a pattern of finite runs are bootstrapped in
    one vectorised call."""
    curves = np.asarray(curves, dtype=float)
    runs, points = curves.shape
    min_finite = max(1, math.ceil(runs / 2) if min_finite is None else min_finite)
    out = np.full((3, points), np.nan)
    finite = np.isfinite(curves)
    patterns, inverse = np.unique(finite.T, axis=0, return_inverse=True)
    for p, pattern in enumerate(patterns):
        if pattern.sum() < min_finite:
            continue
        cols = np.flatnonzero(inverse.reshape(-1) == p)
        block = curves[np.ix_(pattern, cols)]
        point, lo, hi = stats.bootstrap_ci(block, lambda s, axis: stats.iqm(s, axis=-2),
                                           reps=reps, seed=seed)
        out[:, cols] = point, lo, hi
    return out[0], out[1], out[2]


def curve(df, config: int, column: str, weight_column: str | None = None,
          points: int = CURVE_POINTS, reps: int = CURVE_REPS) -> dict[str, np.ndarray]:
    """IQM over seeds of one metric of one config against env steps: each seed's curve smoothed
    (window `SMOOTH_FRACTION` of the updates, weighted by `weight_column` when given), then
    evaluated at about `points` evenly spaced updates. Returns dict(x, iqm, lo, hi)."""
    sub = df[df["config"] == config]
    values = sub.pivot(index="seed", columns="update", values=column).to_numpy(dtype=float)
    weights = (sub.pivot(index="seed", columns="update", values=weight_column).to_numpy(dtype=float)
               if weight_column else np.ones_like(values))
    steps = sub.groupby("update")["env_steps"].first().to_numpy()
    n = values.shape[1]
    smoothed = smooth(values, np.nan_to_num(weights), max(1, round(SMOOTH_FRACTION * n)))
    idx = np.unique(np.linspace(0, n - 1, min(points, n)).round().astype(int))
    mid, lo, hi = iqm_band(smoothed[:, idx], reps=reps)
    return {"x": steps[idx], "iqm": mid, "lo": lo, "hi": hi}


# ---------------------------------------------------------------------------------- drawing


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _colors(n: int) -> list:
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    return [colormaps["viridis"](i / max(n - 1, 1)) for i in range(n)]


LINESTYLES = ("-", "--", ":", "-.")


def config_styles(df, meta: dict[str, Any] | None = None) -> dict[int, dict[str, Any]]:
    """Line colour and style per config. With two varying hyperparameters, the one with more values
    picks the colour and the other the dash pattern, so related configs read as pairs."""
    table = config_table(df, meta)
    configs = [int(c) for c in table.index]
    if table.shape[1] == 2:
        a, b = sorted(table.columns, key=lambda c: -table[c].nunique())
        xs, ys = np.sort(table[a].unique()), np.sort(table[b].unique())
        if len(xs) <= 10 and len(ys) <= len(LINESTYLES):
            colors = _colors(len(xs))
            return {c: {"color": colors[np.searchsorted(xs, table.at[c, a])],
                        "linestyle": LINESTYLES[np.searchsorted(ys, table.at[c, b])]}
                    for c in configs}
    colors = _colors(len(configs))
    return {c: {"color": color, "linestyle": "-"} for c, color in zip(configs, colors)}


def _steps_axis(ax) -> None:
    from matplotlib.ticker import EngFormatter

    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_xlabel("environment steps")
    ax.set_xlim(left=0)


def _save(fig, path: str) -> str:
    fig.savefig(path, dpi=130, facecolor="white")
    return path


def _seed_note(df) -> str:
    n = df.groupby("config")["seed"].nunique()
    return f"{n.iloc[0]} seeds" if n.nunique() == 1 else f"{n.min()}-{n.max()} seeds per config"


def _legend(fig, ax, n: int) -> None:
    if n <= 1 or not ax.get_legend_handles_labels()[0]:
        return
    if n <= 3:
        ax.legend(loc="best", frameon=False)
    else:
        fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", frameon=False)


def _width(n_configs: int) -> float:
    return 8.5 if n_configs <= 3 else 11.0


def _no_episodes(ax, where: str = f"in the last {FINAL_FRACTION:.0%} of updates") -> None:
    ax.text(0.5, 0.5, "no run finished an episode" + (f" {where}" if where else ""),
            ha="center", va="center", transform=ax.transAxes, color="0.3")


def plot_learning_curves(df, meta: dict[str, Any], path: str) -> str:
    configs = sorted(df["config"].unique())
    labels = config_labels(df, meta)
    styles = config_styles(df, meta)
    fig = _figure(_width(len(configs)), 5)
    ax = fig.add_subplot()
    weight = COUNT if COUNT in df.columns else None
    for c in configs:
        cur = curve(df, int(c), RETURN, weight)
        style = styles[int(c)]
        ax.plot(cur["x"], cur["iqm"], lw=2, label=labels[int(c)], **style)
        ax.fill_between(cur["x"], cur["lo"], cur["hi"], color=style["color"], alpha=0.15, lw=0)
    if not np.isfinite(df[RETURN].to_numpy(dtype=float)).any():
        _no_episodes(ax, "")
    _steps_axis(ax)
    ax.set_ylabel("episode return")
    name = _run_name(meta)
    ax.set_title(f"{name + ': ' if name else ''}learning curves\n"
                 f"IQM over {_seed_note(df)}, 95% bootstrap CI; each seed smoothed over "
                 f"{SMOOTH_FRACTION:.0%} of updates", fontsize=11)
    _legend(fig, ax, len(configs))
    return _save(fig, path)


def plot_diagnostics(df, meta: dict[str, Any], path: str, columns: Sequence[str]) -> str:
    configs = sorted(df["config"].unique())
    labels = config_labels(df, meta)
    ncols = min(3, len(columns))
    nrows = math.ceil(len(columns) / ncols)
    fig = _figure(4.2 * ncols + (2.5 if len(configs) > 1 else 0), 3.2 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
    styles = config_styles(df, meta)
    for ax, column in zip(axes, columns):
        weight = column[: -len("_mean")] + "_count" if column.endswith("_mean") else None
        for c in configs:
            cur = curve(df, int(c), column, weight if weight in df.columns else None, reps=200)
            style = styles[int(c)]
            ax.plot(cur["x"], cur["iqm"], lw=1.6, label=labels[int(c)], **style)
            ax.fill_between(cur["x"], cur["lo"], cur["hi"], color=style["color"], alpha=0.15, lw=0)
        values = df[column].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if values.size and values.min() > 0 and values.max() / values.min() > 100:
            ax.set_yscale("log")
        _steps_axis(ax)
        ax.set_title(column.replace("_", " "))
    for ax in axes[len(columns):]:
        ax.set_visible(False)
    name = _run_name(meta)
    fig.suptitle(f"{name + ': ' if name else ''}training diagnostics "
                 f"(IQM over {_seed_note(df)}, 95% bootstrap CI)")
    if len(configs) > 1:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", frameon=False)
    return _save(fig, path)


def plot_performance_profile(df, meta: dict[str, Any], path: str,
                             finals=None) -> str:
    finals = final_returns(df) if finals is None else finals
    labels = config_labels(df, meta)
    configs = sorted(df["config"].unique())
    styles = config_styles(df, meta)
    fig = _figure(_width(len(configs)), 5)
    ax = fig.add_subplot()
    finite = finals[np.isfinite(finals)]
    if finite.empty:
        _no_episodes(ax)
    else:
        lo_t, hi_t = float(finite.min()), float(finite.max())
        margin = 0.05 * (hi_t - lo_t) if hi_t > lo_t else 0.05 * max(abs(hi_t), 1.0)
        taus = np.linspace(lo_t - margin, hi_t + margin, 201)
        for c in configs:
            style = styles[int(c)]
            scores = finals.loc[c].to_numpy(dtype=float)
            scores = scores[np.isfinite(scores)]
            if scores.size == 0:
                continue
            prof, lo, hi = stats.performance_profile_ci(scores, taus, reps=PROFILE_REPS)
            label = labels[int(c)] + (f" ({scores.size} runs)" if scores.size < len(finals.loc[c])
                                      else "")
            ax.step(taus, prof, where="post", lw=2, label=label, **style)
            ax.fill_between(taus, lo, hi, step="post", color=style["color"],
                            alpha=0.15 if len(configs) <= 3 else 0.08, lw=0)
        ax.set_xlim(taus[0], taus[-1])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(r"final return threshold $\tau$")
    ax.set_ylabel(r"fraction of runs with final return $> \tau$")
    name = _run_name(meta)
    ax.set_title(f"{name + ': ' if name else ''}performance profile\n"
                 f"final return = mean return over the last {FINAL_FRACTION:.0%} of updates; "
                 "95% bootstrap CI", fontsize=11)
    _legend(fig, ax, len(configs))
    return _save(fig, path)


def _sweep_stats(df, finals, meta: dict[str, Any]) -> Any:
    """Per config: its varying hyperparameters, IQM final return and its 95% CI, finite runs."""
    table = config_table(df, meta).copy()
    rows = []
    for c in table.index:
        scores = finals.loc[c].to_numpy(dtype=float)
        scores = scores[np.isfinite(scores)]
        if scores.size:
            point, lo, hi = stats.bootstrap_ci(scores, stats.iqm, reps=SWEEP_REPS, seed=0)
            rows.append((point, lo, hi, scores.size))
        else:
            rows.append((np.nan, np.nan, np.nan, 0))
    table[["iqm", "lo", "hi", "runs"]] = np.array(rows, dtype=float)
    return table


def _log_scale(values: np.ndarray) -> bool:
    values = np.asarray(values, dtype=float)
    return bool(values.min() > 0 and values.max() / values.min() >= 10)


def plot_sweep_line(df, meta: dict[str, Any], path: str, finals=None) -> str:
    finals = final_returns(df) if finals is None else finals
    table = _sweep_stats(df, finals, meta)
    (name,) = [c for c in table.columns if c not in ("iqm", "lo", "hi", "runs")]
    table = table.sort_values(name)
    fig = _figure(7.5, 5)
    ax = fig.add_subplot()
    x = table[name].to_numpy(dtype=float)
    log = _log_scale(x)
    # every seed, just right of its IQM so that the error bar does not hide it
    span = np.ptp(np.log(x) if log else x) if len(x) > 1 else 1.0
    shift = 0.025 * (span or 1.0)
    for c, xv in zip(table.index, x):
        seeds = finals.loc[c].to_numpy(dtype=float)
        xs = np.full(seeds.shape, np.exp(np.log(xv) + shift) if log else xv + shift)
        ax.scatter(xs, seeds, s=24, color="0.45", alpha=0.7, lw=0, zorder=1,
                   label="one seed" if c == table.index[0] else None)
    yerr = np.abs(np.stack([table["iqm"] - table["lo"], table["hi"] - table["iqm"]]))
    ax.errorbar(x, table["iqm"], yerr=yerr, color="C0", lw=2, marker="o", ms=6, capsize=4,
                zorder=2, label="IQM, 95% bootstrap CI")
    if log:
        ax.set_xscale("log")
        ax.set_xlim(x.min() / 1.25, x.max() * 1.25)
    elif len(x) > 1:
        pad = 0.08 * np.ptp(x)
        ax.set_xlim(x.min() - pad, x.max() + pad)
    if not np.isfinite(table["iqm"]).any():
        _no_episodes(ax)
    ax.set_xticks(x, [_fmt(v) for v in table[name]])
    ax.minorticks_off()
    ax.set_xlabel(name)
    ax.set_ylabel("final return")
    run = _run_name(meta)
    ax.set_title(f"{run + ': ' if run else ''}final return vs {name}\n"
                 f"{_seed_note(df)}; mean return over the last {FINAL_FRACTION:.0%} of updates",
                 fontsize=11)
    ax.legend(loc="best", frameon=False)
    return _save(fig, path)


def plot_sweep_heatmap(df, meta: dict[str, Any], path: str, finals=None) -> str:
    finals = final_returns(df) if finals is None else finals
    table = _sweep_stats(df, finals, meta)
    a, b = [c for c in table.columns if c not in ("iqm", "lo", "hi", "runs")]
    if table[a].nunique() < table[b].nunique():  # more values along x
        a, b = b, a
    xs, ys = np.sort(table[a].unique()), np.sort(table[b].unique())
    grid = np.full((3, len(ys), len(xs)), np.nan)
    for _, row in table.iterrows():
        i, j = np.searchsorted(ys, row[b]), np.searchsorted(xs, row[a])
        grid[:, i, j] = row["iqm"], row["lo"], row["hi"]
    fig = _figure(max(6.0, 1.5 * len(xs) + 3), max(4.2, 1.0 * len(ys) + 2.2))
    ax = fig.add_subplot()
    from matplotlib import colormaps

    cmap = colormaps["viridis"].with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(grid[0]), cmap=cmap, origin="lower", aspect="auto")
    if np.isfinite(grid[0]).any():
        fig.colorbar(image, ax=ax, label="IQM final return")
    norm = image.norm
    d = _decimals(grid)
    for i in range(len(ys)):
        for j in range(len(xs)):
            mid, lo, hi = grid[:, i, j]
            if not np.isfinite(mid):
                ax.text(j, i, "no data", ha="center", va="center", fontsize=9, color="0.3")
                continue
            r, g, bl, _ = cmap(norm(mid))
            color = "black" if 0.299 * r + 0.587 * g + 0.114 * bl > 0.5 else "white"
            ax.text(j, i, f"{mid:.{d}f}", ha="center", va="center", fontsize=12, color=color,
                    fontweight="bold")
            ax.text(j, i - 0.22, f"[{lo:.{d}f}, {hi:.{d}f}]", ha="center", va="center",
                    fontsize=8.5, color=color)
    ax.set_xticks(range(len(xs)), [_fmt(v) for v in xs])
    ax.set_yticks(range(len(ys)), [_fmt(v) for v in ys])
    ax.set_xlabel(a)
    ax.set_ylabel(b)
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    run = _run_name(meta)
    ax.set_title(f"{run + ': ' if run else ''}IQM final return [95% CI]\n{_seed_note(df)}; "
                 f"mean return over the last {FINAL_FRACTION:.0%} of updates", fontsize=11)
    return _save(fig, path)


# ---------------------------------------------------------------------------------- command


def diagnostic_columns(df, meta: dict[str, Any] | None = None) -> list[str]:
    """The training-diagnostic metrics present: the known ones first, then any other per-update
    numeric metric (not a hyperparameter, not an episode statistic) with a finite value."""
    hparams = set(hyperparameter_columns(df, meta))
    known = [c for c in DIAGNOSTICS if c in df.columns]
    other = [c for c in df.columns if c not in INDEX_COLUMNS and c not in hparams and c not in known
             and not c.startswith("episode_") and df[c].dtype.kind in "fiu"]
    return [c for c in known + other if np.isfinite(df[c].to_numpy(dtype=float)).any()]


def plot_run(run_dir: str, out_dir: str | None = None) -> list[str]:
    """Write the figures of a run or sweep folder to `out_dir` (default `run_dir/plots`); returns
    the PNG paths written:

    - learning_curves.png: IQM episode return over seeds vs env steps, 95% bootstrap band, a line
      per config labelled by its varying hyperparameters;
    - performance_profile.png: fraction of runs whose final return exceeds tau, with CI bands;
    - sweep_heatmap.png (exactly two hyperparameters vary across configs) or sweep.png (exactly
      one): IQM final return with its 95% CI over the hyperparameter(s);
    - diagnostics.png: entropy, approx_kl, losses, ... when such columns exist.

    Raises ValueError (one line, naming the folder) when `run_dir` holds no usable metrics.csv."""
    from matplotlib import rc_context

    df, meta = load_run(run_dir)
    out_dir = os.path.join(run_dir, "plots") if out_dir is None else out_dir
    os.makedirs(out_dir, exist_ok=True)
    finals = final_returns(df)
    varying = varying_hyperparameters(df, meta)
    paths = []
    with rc_context(_STYLE):
        def out(name: str) -> str:
            return os.path.join(out_dir, name)

        paths.append(plot_learning_curves(df, meta, out("learning_curves.png")))
        paths.append(plot_performance_profile(df, meta, out("performance_profile.png"), finals))
        if len(varying) == 2:
            paths.append(plot_sweep_heatmap(df, meta, out("sweep_heatmap.png"), finals))
        elif len(varying) == 1:
            paths.append(plot_sweep_line(df, meta, out("sweep.png"), finals))
        columns = diagnostic_columns(df, meta)
        if columns:
            paths.append(plot_diagnostics(df, meta, out("diagnostics.png"), columns))
    return paths
