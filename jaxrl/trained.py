"""Trained agents as artifacts: a finished `train` run keeps every seed's final params (orbax,
arrays only, verified by a SHA-256 digest like the checkpoints) beside its config.json, which
records everything needed to rebuild the policy. `load(RUN)` gives them back:

    run = jaxrl.load("runs/cartpole")
    run.results                        # Results: per-update metrics, final returns, summary
    act = run.policy(seed=0)           # act(obs [E, ...]) -> actions [E, ...], deterministic
    q = run.value(seed=0)(obs)         # V(s) [E] for PPO, Q(s, .) [E, A] for the Q-learners
    returns = run.evaluate(episodes=100)   # [seeds] greedy returns on fresh episodes

A `--single-task` run (a task family, each task trained on its own network) keeps every task's
networks (params leaves [tasks, seeds, ...]): `task=T` picks task T's, and `evaluate()` gives
[tasks, seeds], each task's networks on their own task.

`python -m jaxrl eval RUN`, `render RUN` and `train --init-from RUN` are built on it."""
from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import envs
from jaxrl.config import ConfigError, make_config

PARAMS_DIR = "params"
DIGEST = "params.sha256"


def save_params(run_dir: str, params: Any) -> None:
    """Write `params` (leaves [seeds, ...]; [tasks, seeds, ...] for a single-task run) to
    RUN/params, then their digest."""
    import orbax.checkpoint as ocp

    from jaxrl.runner.storage import Checkpoints, digest, this_process_alone

    flat = Checkpoints.flatten(params)
    with ocp.StandardCheckpointer(multiprocessing_options=this_process_alone()) as checkpointer:
        checkpointer.save(os.path.join(os.path.abspath(run_dir), PARAMS_DIR), flat)
    with open(os.path.join(run_dir, DIGEST), "w") as f:
        f.write(digest(flat))


def load_params(run_dir: str, like: Any, lead: tuple = ()) -> Any:
    """The params saved in RUN/params, in the structure of `like` with the leading axes `lead`
    ([seeds] or [tasks, seeds]); ConfigError when missing, unreadable, not what was written (the
    digest) or not of that structure."""
    import orbax.checkpoint as ocp

    from jaxrl.runner.storage import Checkpoints, digest, quiet_orbax, this_process_alone

    path = os.path.join(os.path.abspath(run_dir), PARAMS_DIR)
    try:
        with open(os.path.join(run_dir, DIGEST)) as f:
            expected = f.read().strip()
        with quiet_orbax(), ocp.StandardCheckpointer(
                multiprocessing_options=this_process_alone()) as checkpointer:
            flat = jax.tree.map(np.asarray, checkpointer.restore(path))
    except Exception as e:
        raise ConfigError(f"RUN: {run_dir} has no readable trained params ({type(e).__name__}); "
                          "runs trained before params were kept cannot be loaded") from None
    if digest(flat) != expected:
        raise ConfigError(f"RUN: the params in {path} are damaged (their digest does not match)")
    if not Checkpoints.fits(like, flat, lead):
        raise ConfigError(f"RUN: the params in {run_dir} do not fit its config.json (a "
                          "--single-task run saved before every task's networks were kept: "
                          "train it again)")
    return Checkpoints.unflatten(like, flat, lead)


def read_record(run_dir: str) -> dict:
    """config.json of a finished `train` run; ConfigError naming the folder otherwise."""
    if not os.path.isdir(run_dir):
        raise ConfigError(f"RUN: {run_dir} is not a folder; give a folder written by "
                          "`python -m jaxrl train --out DIR`")
    for name in ("config.json", "summary.json"):
        if not os.path.isfile(os.path.join(run_dir, name)):
            what = "an unfinished run" if run_dir.rstrip("/").endswith(".partial") else "a finished run"
            raise ConfigError(f"RUN: {run_dir} is not {what} of `jaxrl train` (no {name})")
    try:
        with open(os.path.join(run_dir, "config.json")) as f:
            record = json.load(f)
    except ValueError as e:
        raise ConfigError(f"RUN: {run_dir}/config.json is unreadable ({e})") from None
    if "configs" in record:
        raise ConfigError(f"RUN: {run_dir} is a sweep; load its best config's test run instead "
                          "(train it with `jaxrl train`), sweeps keep no params")
    return record


def config_from_record(spec, record: dict):
    """The config a run's config.json records (lists read back as the tuples they were)."""
    names = {f.name for f in dataclasses.fields(spec.Config)}
    return make_config(spec.Config, {k: tuple(v) if isinstance(v, list) else v
                                     for k, v in record.items() if k in names})


@dataclasses.dataclass
class TrainedRun:
    """A finished run, loaded: its record (config.json), config, env and the params of the tasks
    it trained on (a task family's table of them), trainer and every seed's trained params
    (leaves [seeds, ...]; a single-task run's [tasks, seeds, ...], rows in `task_ids()` order)."""

    run_dir: str
    record: dict
    config: Any
    env: Any
    env_params: Any
    trainer: Any
    params: Any
    seeds: list[int]
    single_task: bool = False

    @property
    def algo(self) -> str:
        return self.record["algo"]

    @property
    def results(self):
        from jaxrl.runner import Results

        return Results.load(self.run_dir)

    def seed_index(self, seed: int) -> int:
        if seed not in self.seeds:
            raise ConfigError(f"--seed: got {seed}; this run has seeds {self.seeds[0]}.."
                              f"{self.seeds[-1]}")
        return self.seeds.index(seed)

    def task_ids(self) -> list[int] | None:
        """The task ids the run trained on, in order; None for an env that is not a task family."""
        if not envs.is_table(self.env_params):
            return None
        return [int(t) for t in np.asarray(self.env_params.task_id)]

    def task_index(self, task: int | None) -> int | None:
        """The index of `task` (default the run's first) in `task_ids()`; None for an env that is
        not a task family. ConfigError (--task) for a task the run did not train on."""
        ids = self.task_ids()
        if ids is None:
            if task is not None:
                raise ConfigError(f"--task: {self.record['env']} is not a task family")
            return None
        task = ids[0] if task is None else task
        if task not in ids:
            raise ConfigError(f"--task: got {task}; this run trained on tasks {ids}")
        return ids.index(task)

    def task_params(self, task: int | None = None) -> Any:
        """Every seed's params (leaves [seeds, ...]); on a single-task run those of task `task`'s
        networks (default the run's first task's)."""
        k = self.task_index(task)
        return jax.tree.map(lambda x: x[k], self.params) if self.single_task else self.params

    def seed_params(self, seed: int, task: int | None = None) -> Any:
        i = self.seed_index(seed)
        return jax.tree.map(lambda x: x[i], self.task_params(task))

    def policy(self, seed: int, task: int | None = None):
        """The deterministic policy of seed `seed`: act(obs [E, ...]) -> actions [E, ...]. On a
        single-task run, that of task `task`'s network (default the run's first task's)."""
        return self.trainer.policy(self.seed_params(seed, task))

    def value(self, seed: int, task: int | None = None):
        """The learned value function of seed `seed` (see Trainer.value; `task` as in policy)."""
        if self.trainer.value is None:
            raise ConfigError(f"{self.algo} has no value function")
        return self.trainer.value(self.seed_params(seed, task))

    def evaluate(self, episodes: int = 100, key: jax.Array | int = 0,
                 task: int | None = None) -> np.ndarray:
        """[seeds] mean return of each seed's deterministic policy over `episodes` fresh episodes
        (the first episode of each of `episodes` envs, spread over the run's tasks; with `task`,
        all on that task), all seeds in one vmapped program; `key` (or an int seed for it) picks
        the episodes' starts. A single-task run gives [tasks, seeds] (rows in `task_ids()`
        order): each task's networks on their own task, as the run trained and evaluated them;
        with `task`, [seeds] of that task's networks."""
        return self.evaluation(episodes, key, task)["return"]

    def evaluation(self, episodes: int = 100, key: jax.Array | int = 0,
                   task: int | None = None) -> dict[str, np.ndarray]:
        """`evaluate`'s episodes, every statistic: "return" (as `evaluate` gives it) and, for an
        env that reports success, "success" (the same shape: each seed's fraction of episodes
        whose last step succeeded). Task after task (`task=T`) is one compiled program."""
        key = jax.random.PRNGKey(key) if isinstance(key, int) else key
        programs = self._evaluation_programs
        if self.single_task and task is None:  # row k: networks k on the one-task table of task k
            tables = jax.tree.map(lambda x: x[:, None], self.env_params)
            out = programs["per_task_networks"](self.params, tables, key, episodes)
        elif task is None:
            out = programs["run_tasks"](self.params, key, episodes)
        else:
            table = envs.select_tasks(self.env_params, [self.task_index(task)])
            out = programs["one_task"](self.task_params(task), table, key, episodes)
        return {k: np.asarray(v) for k, v in out.items()}

    @functools.cached_property
    def _evaluation_programs(self) -> dict:
        """The jitted evaluations, stats [seeds] (or [tasks, seeds]): "run_tasks" (params
        [seeds], key) on the run's own env params, constants as in the training program, so it
        gives the in-program evaluation's numbers bit for bit; "one_task" (params [seeds], a
        one-task table, key) and "per_task_networks" (params [tasks, seeds], tables [tasks],
        key) take the table as an argument, so every task shares one compile."""
        from jaxrl.agents.base import evaluate

        trainer = self.trainer
        names = {"return": "eval_return_mean", "success": "eval_success_mean"}

        def on_seeds(params, env_params, key, episodes):
            def one(params):
                out = evaluate(trainer.eval_env, env_params, trainer.policy(params), key,
                               episodes, trainer.eval_max_steps)
                return {k: out[name] for k, name in names.items() if name in out}
            return jax.vmap(one)(params)

        def per_task_networks(params, tables, key, episodes):
            return jax.vmap(lambda p, t: on_seeds(p, t, key, episodes))(params, tables)

        def run_tasks(params, key, episodes):
            return on_seeds(params, self.env_params, key, episodes)

        return {name: jax.jit(f, static_argnames="episodes") for name, f in
                [("run_tasks", run_tasks), ("one_task", on_seeds),
                 ("per_task_networks", per_task_networks)]}

    def rollout(self, seed: int, steps: int, key: jax.Array | int = 0, task: int | None = None):
        """One env driven by seed `seed`'s deterministic policy for `steps` steps (auto-reset
        envs start a new episode after an end): a dict of [steps + 1] `state` (the reset state
        first) and [steps] `reward`, `terminated`, `truncated`. On a task family, `task` (a task
        id the run trained on; default its first) picks the task (and on a single-task run its
        network)."""
        key = jax.random.PRNGKey(key) if isinstance(key, int) else key
        k = self.task_index(task)
        env, params = self.trainer.eval_env, self.env_params
        params = params if k is None else envs.task(params, k)
        network, policy = self.seed_params(seed, task), self.trainer.policy

        @jax.jit
        def run(key, network):  # the network an argument: every seed's rollout is one program
            act = policy(network)
            key, reset_key = jax.random.split(key)
            obs, state = env.reset(reset_key, params)

            def body(carry, key):
                obs, state = carry
                action = act(obs[None])[0]
                obs, next_state, reward, terminated, truncated, _ = env.step(key, state, action,
                                                                             params)
                return (obs, next_state), (next_state, reward, terminated, truncated)

            _, (states, reward, terminated, truncated) = jax.lax.scan(
                body, (obs, state), jax.random.split(key, steps))
            states = jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest]),
                                  state, states)
            return {"state": states, "reward": reward, "terminated": terminated,
                    "truncated": truncated}

        return jax.tree.map(np.asarray, run(key, network)), env, params

    def render(self, seed: int, path: str, steps: int = 200, key: jax.Array | int = 0,
               task: int | None = None, fps: int = 25, size: int = 320) -> dict:
        """Write a GIF of seed `seed`'s policy: MJX task families and brax/NAME with MuJoCo's
        renderer (`envs.render.render_qpos_gif`), classic-control envs drawn with matplotlib. Returns the path, the steps and
        where episodes ended (terminated or truncated) in the GIF."""
        from envs import classic_render

        name = self.record["env"]
        traj, env, params = self.rollout(seed, steps, key, task)
        if classic_render.drawable(name):
            state = traj["state"]
            while not hasattr(state, "time") and hasattr(state, "env_state"):
                state = state.env_state
            classic_render.write_gif(classic_render.draw_states(name, state, size), path, fps)
        elif hasattr(env, "qpos"):
            from envs.render import render_qpos_gif

            qpos = np.stack([np.asarray(env.qpos(jax.tree.map(lambda x: x[i], traj["state"])))
                             for i in range(steps + 1)])
            render_qpos_gif(env.mj_model(int(np.asarray(getattr(params, "task_id", 0)))), qpos,
                            path, fps=fps, width=size, height=size)
        else:
            raise ConfigError(f"render: {name} cannot be drawn yet; drawn are "
                              f"{', '.join(classic_render.DRAWN)}, the MJX task families and brax/NAME")
        ends = np.flatnonzero(traj["terminated"] | traj["truncated"]) + 1
        return {"path": path, "steps": steps, "episode_ends": [int(t) for t in ends],
                "return_to_first_end": float(traj["reward"][:ends[0] if ends.size else steps].sum())}


def load(run_dir: str) -> TrainedRun:
    """Load a finished `train` run (see the module docstring); ConfigError for anything else."""
    from jaxrl.agents import get_algo
    from jaxrl.cli import parse_tasks
    from jaxrl.runner.plan import make_plan, params_like

    record = read_record(run_dir)
    try:
        for module in record.get("env_modules", []):
            envs.import_env_module(module)
    except ValueError as e:
        raise ConfigError(f"RUN: {run_dir} was trained on an env of another module: {e}") from None
    spec = get_algo(record["algo"])
    config = config_from_record(spec, record)
    seeds = list(range(record["seed_offset"], record["seed_offset"] + record["seeds"]))
    plan = make_plan(spec.name, record["env"], [config], seeds,
                     env_kwargs={"one_hot": False} if record.get("hide_task_id") else None,
                     tasks=parse_tasks(record.get("tasks", "all")),
                     single_task=record.get("single_task", False))
    rows, single, env, env_params = plan.row_tasks, plan.single_task, plan.env, plan.env_params
    if single:  # every task the run trained, one network each: all have the first's shapes
        env_params = envs.select_tasks(plan.family_params, [t for row in rows for t in row])
    trainer = plan.trainer
    lead = (len(rows), len(seeds)) if single else (len(seeds),)
    params = load_params(run_dir, params_like(trainer, config), lead)
    return TrainedRun(run_dir=run_dir, record=record, config=config, env=env,
                      env_params=env_params, trainer=trainer, params=params, seeds=seeds,
                      single_task=single)
