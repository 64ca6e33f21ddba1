"""The agent interface: an `Algo` (what the registry holds) makes a `Trainer`, whose `init` and
`update` are pure functions over the agent's own typed state, so that a whole run is `init`
followed by a scan of `update`, and a run can also be cut into segments of updates (for
checkpoints) that compute exactly what the whole scan computes.

The scan can also run greedy evaluation episodes every `eval_every` updates (with the agent's
deterministic `policy`), switched by the update index, which is not batched under vmap, so it
costs nothing on the other updates."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

import envs
from jaxrl.config import ConfigError


@dataclasses.dataclass(frozen=True)
class Algo:
    """One algorithm, as the registry (`jaxrl.agents.ALGOS`) holds it. Each agent folder exports
    one: its `Config` (a frozen dataclass, `jaxrl.config` fields), `make_trainer(config, env,
    env_params) -> Trainer` (reads only the static fields), `validate(config, env, env_params)`
    (raises ConfigError naming the option) and `steps_per_update(config)` (env steps per metrics
    row, all envs of one run together)."""

    name: str
    Config: type
    make_trainer: Callable[..., "Trainer"]
    validate: Callable[[Any, Any, Any], None]
    steps_per_update: Callable[[Any], int]

    @property
    def make_train(self):  # the first interface's name, kept for scripts and notebooks
        return self.make_trainer


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: it may hold arrays
class Trainer:
    """What an agent's `make_trainer` returns, all pure functions over the agent's own typed state:

    - `init(config, key) -> state`; `update(config, state, index) -> (state, metrics)`, metrics a
      dict of scalars for one update, `index` the update's number (0 .. num_updates-1; a traced
      int32 shared by every vmapped run, so a branch on it, such as an off-policy warm-up or a
      K-FAC refresh, is a real `lax.cond`, not a select computing both sides). Calling the
      trainer runs all `num_updates` updates.
    - `params(state) -> params`: what a trained agent is (network params, plus whatever else its
      policy needs, e.g. observation statistics); saved with a run, loaded by `jaxrl.load`.
    - `with_params(config, state, params) -> state`: `state` with `params` put in and everything
      derived from them rebuilt (target networks, optimizer state), for fine-tuning.
    - `policy(params) -> act`, `act(obs [E, ...]) -> actions [E, ...]`: the deterministic policy,
      built from params alone; evaluation, rendering and a loaded run all use it. It acts in
      `eval_env` (the env without training-only wrappers), episodes capped at `eval_max_steps`.
    - `value(params) -> fn`, `fn(obs [E, ...])`: the learned value function (V(s) [E] for actor-
      critics, Q(s, .) [E, A] for the Q-learners), or None."""

    init: Callable[[Any, jax.Array], Any]
    update: Callable[[Any, Any, jax.Array], tuple[Any, dict]]
    num_updates: int
    params: Callable[[Any], Any]
    with_params: Callable[[Any, Any, Any], Any]
    policy: Callable[[Any], Callable]
    value: Callable[[Any], Callable] | None = None
    eval_env: Any = None
    eval_env_params: Any = None
    eval_max_steps: int = 1000

    def segment(self, num_updates: int, *, eval_every: int = 0, eval_episodes: int = 10):
        """`(config, state, start) -> (state, metrics)` running updates start .. start+num_updates-1;
        metrics are stacked [num_updates]. With `eval_every`, greedy evaluation metrics
        (`evaluate`'s metrics, NaN on the other updates) after every eval_every-th update. No host
        callbacks: a program with one is never kept in the persistent compilation cache, so
        progress is reported by the host between segments (`jaxrl.runner`)."""
        def body(config, state, update_index):
            state, metrics = self.update(config, state, update_index)
            # Per update, so a table shows when a run diverged, not only that it did.
            metrics = {**metrics, "diverged": nonfinite(self.params(state))}
            done = update_index + 1
            if eval_every:
                key = jax.random.fold_in(jax.random.PRNGKey(0), done)  # same starts for every run
                def run_eval():
                    return evaluate(self.eval_env, self.eval_env_params,
                                    self.policy(self.params(state)), key, eval_episodes,
                                    self.eval_max_steps)

                nan = jax.tree.map(lambda x: jnp.full(x.shape, jnp.nan, x.dtype),
                                   jax.eval_shape(run_eval))
                metrics = {**metrics, **jax.lax.cond(done % eval_every == 0, run_eval, lambda: nan)}
            return state, metrics

        def run_segment(config, state, start=0):
            # `start` is never batched (the runner passes it with in_axes=None): see `update`.
            indices = start + jnp.arange(num_updates, dtype=jnp.int32)
            return jax.lax.scan(lambda s, i: body(config, s, i), state, indices)

        return run_segment

    def __call__(self, config, key):
        """The whole run: `(config, key) -> (final state, metrics [num_updates])`."""
        return self.segment(self.num_updates)(config, self.init(config, key))


def nonfinite(tree) -> jax.Array:
    """True when any float leaf of `tree` holds a NaN or inf (the definition of a diverged run)."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)]
    return ~jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in leaves] or [True]))


def rollout_steps(config) -> int:
    """Env steps per update of the rollout agents (PPO, PQN): num_envs x num_steps."""
    return config.num_envs * config.num_steps


def validate_rollout(config, env_params) -> None:
    """The checks every rollout agent's config needs (ConfigError naming the option): field
    ranges, minibatches (where the config has them) that divide the rollout, at least one
    update, envs spread over tasks."""
    from jaxrl.config import check_fields

    check_fields(config)
    batch = rollout_steps(config)
    if batch % getattr(config, "num_minibatches", 1):
        raise ConfigError(f"--num-minibatches: {config.num_minibatches} does not divide the batch "
                          f"num_envs x num_steps = {batch}")
    if config.total_steps < batch:
        raise ConfigError(f"--total-steps: {config.total_steps} is less than one update "
                          f"(num_envs x num_steps = {batch})")
    check_task_spread(config.num_envs, env_params)


def rollout_learning_rate(config):
    """A rollout agent's learning rate: `config.lr`, or with `anneal_lr` a schedule over the
    optimizer's step count falling linearly to 0, one step down per update (update_epochs x
    num_minibatches gradient steps)."""
    if not config.anneal_lr:
        return config.lr
    per_update = config.update_epochs * config.num_minibatches
    num_updates = config.total_steps // rollout_steps(config)
    return lambda count: config.lr * (1.0 - (count // per_update) / num_updates)


def check_task_spread(num_envs: int, env_params) -> None:
    """Raise ConfigError unless `num_envs` spreads evenly over the tasks of a task table."""
    tasks = envs.num_tasks(env_params)
    if num_envs % tasks:
        raise ConfigError(f"--num-envs: {num_envs} envs cannot be spread evenly over {tasks} tasks; "
                          f"use a multiple of {tasks}")


def batched_env(env, env_params, num_envs: int):
    """`reset(keys [E]) -> (obs, states)` and `step(keys, states, actions) -> 6-tuple` of `num_envs`
    parallel envs. With a task table (`envs.is_table`), env i runs task i mod T, so the envs are
    spread evenly over the tasks; otherwise all share `env_params`. The vmap axis is named
    `envs.ENV_AXIS`, for wrappers that pool over the batch (`envs.NormalizeObservation`)."""
    params, axis = envs.spread_tasks(env_params, num_envs)
    reset = jax.vmap(env.reset, in_axes=(0, axis), axis_name=envs.ENV_AXIS)
    step = jax.vmap(env.step, in_axes=(0, 0, 0, axis), axis_name=envs.ENV_AXIS)
    return (lambda keys: reset(keys, params),
            lambda keys, states, actions: step(keys, states, actions, params))


def play(env, env_params, act: Callable, key: jax.Array, num_episodes: int, max_steps: int,
         record: bool = False) -> dict:
    """The first episode of each of `num_episodes` fresh envs under `act(obs [E, ...], key) ->
    actions [E]`, each env run for `max_steps` steps and masked after its episode ends (spread
    over the tasks of a task table like training envs). Returns "return" and "length" [E]; with
    `record`, also the [T, E] "obs", "action", "reward" (0 after the end) and "alive" (1 for the
    steps of the episode). An env that reports `info["success"]` also gives "success" [E]: 1 if
    the episode's last step succeeded (an episode cut off by `max_steps` counts its last step
    played). Evaluation and the episode agents (random search, hill climbing, linear_pg) play
    episodes through it."""
    reset_key, step_key = jax.random.split(key)
    reset_envs, step_envs = batched_env(env, env_params, num_episodes)
    obs, state = reset_envs(jax.random.split(reset_key, num_episodes))
    zeros = jnp.zeros(num_episodes)
    reports_success = []  # set while `step` is traced: whether the env's info has "success"

    def step(carry, key):
        obs, state, ret, length, alive, success = carry
        action = act(obs, jax.random.fold_in(key, 1))  # the env keys stay split(key) as before
        next_obs, state, reward, terminated, truncated, info = step_envs(
            jax.random.split(key, num_episodes), state, action)
        reward = reward * alive
        out = ({"obs": obs, "action": action, "reward": reward, "alive": alive} if record
               else None)
        ret = ret + reward
        length = length + alive
        if "success" in info:
            reports_success.append(True)
            success = jnp.where(alive > 0, info["success"].astype(jnp.float32), success)
        alive = alive * (1.0 - jnp.logical_or(terminated, truncated))
        return (next_obs, state, ret, length, alive, success), out

    (_, _, ret, length, _, success), trajectory = jax.lax.scan(
        step, (obs, state, zeros, zeros, jnp.ones(num_episodes), zeros),
        jax.random.split(step_key, max_steps))
    return {"return": ret, "length": length, **({"success": success} if reports_success else {}),
            **(trajectory or {})}


def evaluate(env, env_params, act: Callable, key: jax.Array, num_episodes: int,
             max_steps: int) -> dict:
    """Mean and std of the return, mean length (and the success rate, `eval_success_mean`, of an
    env that reports success) of the first episode of each of `num_episodes` fresh envs under
    `act(obs) -> actions` (deterministic actions), each run for at most `max_steps` steps
    (`play`)."""
    out = play(env, env_params, lambda obs, _: act(obs), key, num_episodes, max_steps)
    return {"eval_return_mean": out["return"].mean(), "eval_return_std": out["return"].std(),
            "eval_length_mean": out["length"].mean(),
            **({"eval_success_mean": out["success"].mean()} if "success" in out else {})}


def minibatch_epochs(step: Callable, carry, batch, key: jax.Array, num_epochs: int,
                     num_minibatches: int):
    """`num_epochs` passes over `batch` (leaves [N, ...]), each in `num_minibatches` minibatches
    of a fresh random permutation: `step(carry, minibatch) -> (carry, metrics)` scanned over
    them. Returns (carry, metrics [num_epochs, num_minibatches]). PPO's and PQN's update loop."""
    size = jax.tree.leaves(batch)[0].shape[0]

    def epoch(inner, _):
        carry, key = inner
        key, perm_key = jax.random.split(key)
        perm = jax.random.permutation(perm_key, size)
        minibatches = jax.tree.map(lambda x: x[perm].reshape(
            (num_minibatches, size // num_minibatches) + x.shape[1:]), batch)
        carry, metrics = jax.lax.scan(step, carry, minibatches)
        return (carry, key), metrics

    (carry, _), metrics = jax.lax.scan(epoch, (carry, key), None, num_epochs)
    return carry, metrics
