"""Runs across processes and hosts with JAX's multi-controller runtime (`jax.distributed`): every
process runs the same command, the runs (configs x seeds x tasks) are sharded over every device of
every process (one global mesh), each process builds only its own shards of the inputs, results
are gathered, and process 0 alone writes the run folder.

`start(coordinator, num_processes, process_id, ...)` is called by the CLI before anything touches
a device; `check_options` validates the options first (one-line ConfigError naming the option).
`coordinator="auto"` leaves the address, count and id to `jax.distributed.initialize`'s cluster
detection (SLURM, Open MPI, TPU pods). On the CPU the collectives are gloo's."""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from jaxrl.config import ConfigError

DEFAULT_HEARTBEAT_SECONDS = 60
DEFAULT_INIT_SECONDS = 120


def check_options(coordinator: str | None, num_processes: int | None, process_id: int | None,
                  heartbeat_timeout: int, init_timeout: int) -> None:
    """Raise ConfigError, naming the option, for an inconsistent set of distributed options."""
    given = [name for name, value in (("--num-processes", num_processes),
                                      ("--process-id", process_id)) if value is not None]
    if coordinator is None:
        if given:
            raise ConfigError(f"{given[0]}: needs --coordinator HOST:PORT (or auto)")
        return
    if coordinator != "auto":
        match = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d+)", coordinator)
        if not match or not 0 < int(match.group(2)) < 65536:
            raise ConfigError(f"--coordinator: got {coordinator!r}, expected HOST:PORT (port "
                              "1-65535, e.g. 10.0.0.1:12345) or auto")
        if num_processes is None or process_id is None:
            raise ConfigError("--coordinator: needs --num-processes N and --process-id I (or "
                              "--coordinator auto on a cluster JAX detects: SLURM, Open MPI, TPU)")
        if num_processes < 1:
            raise ConfigError(f"--num-processes: got {num_processes}, must be >= 1")
        if not 0 <= process_id < num_processes:
            raise ConfigError(f"--process-id: got {process_id}, must be 0 .. {num_processes - 1} "
                              f"(--num-processes {num_processes})")
    for name, value in (("--heartbeat-timeout", heartbeat_timeout),
                        ("--init-timeout", init_timeout)):
        if value < 1:
            raise ConfigError(f"{name}: got {value}, must be >= 1 (seconds)")


def start(coordinator: str | None, num_processes: int | None = None,
          process_id: int | None = None, heartbeat_timeout: int = DEFAULT_HEARTBEAT_SECONDS,
          init_timeout: int = DEFAULT_INIT_SECONDS) -> None:
    """Join the job (no-op without a coordinator). A process that cannot reach the coordinator,
    or whose peers do not all arrive, within `init_timeout` seconds stops with an error; once
    running, a process that stops sending heartbeats for `heartbeat_timeout` seconds stops all."""
    check_options(coordinator, num_processes, process_id, heartbeat_timeout, init_timeout)
    if coordinator is None:
        return
    import sys

    import jax

    if coordinator != "auto" and process_id != 0:
        wait_for_coordinator(coordinator, process_id, init_timeout)
    where = ("the job the cluster describes" if coordinator == "auto" else
             f"the {num_processes}-process job at {coordinator} as process {process_id}")
    print(f"jaxrl: joining {where} (a peer missing for {init_timeout} s stops it: "
          "--init-timeout)", file=sys.stderr, flush=True)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs = {} if coordinator == "auto" else dict(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    try:
        jax.distributed.initialize(**kwargs, initialization_timeout=init_timeout,
                                   heartbeat_timeout_seconds=heartbeat_timeout)
    except Exception as e:  # DEADLINE_EXCEEDED and friends: one line, not a C++ status dump
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "DEADLINE_EXCEEDED" in str(e) or "timed out" in str(e).lower():
            first = f"nobody answered within {init_timeout} s (--init-timeout); {first}"
        raise ConfigError(f"--coordinator: process {process_id} could not join the "
                          f"{num_processes}-process job at {coordinator}: {first[:300]}") from None


def wait_for_coordinator(coordinator: str, process_id: int, timeout: float) -> None:
    """Raise ConfigError unless a TCP connection to the coordinator opens within `timeout`
    seconds (JAX's own failure to connect aborts the process with a C++ stack dump instead)."""
    import socket
    import time

    host, port = coordinator.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=2).close()
            return
        except OSError as e:
            if time.monotonic() > deadline:
                raise ConfigError(f"--coordinator: process {process_id} cannot reach {coordinator} "
                                  f"within {timeout:g} s (--init-timeout): {e.strerror or e}; "
                                  "is process 0 running there?") from None
            time.sleep(0.5)


def is_main() -> bool:
    """True in the process that writes results (process 0; the only one without jax.distributed)."""
    import jax

    return jax.process_index() == 0


def put(tree: Any, sharding) -> Any:
    """Host arrays [runs, ...] (the same on every process) as global arrays sharded over the
    runs axis: each process builds only the shards of its own devices."""
    import jax

    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda x: jax.make_array_from_callback(
        np.shape(x), sharding, lambda index: np.asarray(x)[index]), tree)


def fetch(tree: Any) -> Any:
    """Global arrays back to host NumPy arrays, whole, on every process (gathered from the
    others with a collective: every process must call it at the same point)."""
    import jax

    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


def agree_min(value: int) -> int:
    """The smallest of every process's `value` bytes (a memory budget), rounded down to MiB, so
    that every process plans the same chunks."""
    import jax

    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    # in MiB: without jax_enable_x64 the collective is int32, which bytes would overflow
    mib = multihost_utils.process_allgather(np.asarray(value // 2**20, np.int32))
    return int(np.min(mib)) * 2**20
