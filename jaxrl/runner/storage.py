"""What a run keeps on disk while it trains: verified orbax checkpoints of each chunk's batched
state, and each segment's metrics in a file of its own (so saving stays linear in the run's
length)."""
from __future__ import annotations

import json
import math
import os
import tempfile

import jax
import numpy as np

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
        with quiet_orbax():  # it reads every checkpoint's metadata, damaged ones too
            self.manager = ocp.CheckpointManager(
                os.path.abspath(directory),
                options=ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=False))

    def save(self, updates_done: int, item: dict) -> None:
        self.manager.save(updates_done, args=self.ocp.args.StandardSave(item), force=True)
        self.manager.wait_until_finished()
        if jax.process_index() != 0:  # orbax's primary process wrote the data; it writes the digest
            return
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
        as plain named arrays and comes back through its own treedef. Empty leaves (an MJX
        state's contact or constraint arrays when there are none) are left out: they hold no
        data, and orbax refuses to save them."""
        return {key: np.asarray(x) for key, x in Checkpoints._named(state)}

    @staticmethod
    def _named(state) -> list:
        return [(f"{i:05d}", x) for i, x in enumerate(jax.tree.leaves(state)) if np.size(x)]

    @staticmethod
    def fits(like, flat: dict, lead: tuple = ()) -> bool:
        """Whether `flat` holds exactly the arrays `flatten` writes for a pytree shaped as `like`
        (each leaf with the leading axes `lead` added): the same names, shapes and dtypes."""
        named = Checkpoints._named(like)
        return sorted(flat) == [key for key, _ in named] and all(
            np.shape(flat[key]) == lead + np.shape(x) and np.dtype(flat[key].dtype) == np.dtype(x.dtype)
            for key, x in named)

    @staticmethod
    def unflatten(like, flat: dict, lead: tuple = ()):
        """The pytree `flatten` made `flat` from, in the structure of `like` (which also gives
        the empty leaves, with the leading axes `lead` added); check `fits` first."""
        leaves = [flat[f"{i:05d}"] if np.size(x) else np.zeros(lead + np.shape(x), x.dtype)
                  for i, x in enumerate(jax.tree.leaves(like))]
        return jax.tree.unflatten(jax.tree.structure(like), leaves)

    def restore(self) -> tuple[int, dict] | None:
        """(updates done, item) of the newest checkpoint that reads back and verifies, or None
        (with a warning when there were checkpoints: the chunk restarts from update 0)."""
        import warnings

        with quiet_orbax():
            steps = sorted(self.manager.all_steps(), reverse=True)
        for i, step in enumerate(steps):
            older = f"update {steps[i + 1]}" if i + 1 < len(steps) else "update 0 (no usable checkpoint left)"
            try:
                with open(os.path.join(self._step_dir(step), self.DIGEST)) as f:
                    expected = f.read().strip()
                with quiet_orbax():
                    item = self.manager.restore(step, args=self.ocp.args.StandardRestore())
                item = jax.tree.map(np.asarray, item)
                problem = None if digest(item) == expected else "its digest does not match"
            except Exception as error:  # unreadable, or no digest (killed before it was written)
                problem = f"unreadable: {type(error).__name__}"
            if problem is None:
                return step, item
            warnings.warn(f"checkpoint at update {step} in {self.manager.directory} is damaged "
                          f"({problem}); restarting from {older}", stacklevel=2)
            with quiet_orbax():
                self.manager.delete(step)
        return None


def this_process_alone():
    """Orbax options for a file only this process reads or writes (trained params): in a
    multi-process job orbax would otherwise wait for every process at its barriers."""
    import orbax.checkpoint as ocp

    return ocp.options.MultiprocessingOptions(primary_host=jax.process_index(),
                                              active_processes={jax.process_index()})


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


class quiet_orbax:
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


def plain(x):
    """`x` with NumPy scalars and arrays as plain Python (non-finite floats as None): JSON-ready."""
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return plain(x.tolist())
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def write_json(path: str, obj, indent: int | None = None) -> None:
    """`plain(obj)` as JSON, written whole or not at all (a temporary file in the same folder,
    then a rename), so a crash never leaves half a file."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(plain(obj), f, indent=indent, separators=None if indent else (",", ":"))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)

