"""MJX envs that reset themselves inside `step`, cheaply under vmap.

The generic `AutoReset` wrapper computes a whole `reset` every step (under vmap a `lax.cond` on the
per-env `done` is a select that runs both branches) and then selects between two whole `mjx.Data`
pytrees. An `MjxEnv` resets lightly instead: it draws the new episode's initial data (random numbers
only: `initial_data` runs no physics) and selects just MuJoCo's physics-state fields of it
(`RESET_FIELDS`: qpos, qvel, time, solver warm start, eq_active, ctrl, ...) into the stepped data
where the episode ended. Everything else in an `mjx.Data` is derived: the next `mjx.step`
recomputes it from those fields before reading it. An episode that ends at `step(key, ...)`
therefore starts again exactly as `reset(key, ...)` would have started it (same key, same state),
and steps on like a freshly reset env. `info["final_observation"]` is the pre-reset observation.

So that no kinematics pass is needed after a reset, `observe` (and rewards) must read only state
fields (qpos, qvel, ...), not derived ones such as `site_xpos`: on this CPU a vmapped step whose
outputs need the stepped data's kinematics costs ~30% more than bare `mjx.step`, one whose outputs
need only qpos/qvel ~1%.

Subclasses implement `initial_data`, `observe` and `transition` (one env step without reset:
physics, reward, terminated/truncated, info).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from mujoco import mjx

# MuJoCo's full physics state plus its user inputs (mjtState's mjSTATE_FULLPHYSICS | USER): all
# that `mjx.step` reads from a Data without recomputing it, so all an episode start must reset.
RESET_FIELDS = ("time", "qpos", "qvel", "act", "history", "qacc_warmstart", "ctrl", "qfrc_applied",
                "xfrc_applied", "eq_active", "mocap_pos", "mocap_quat", "userdata", "plugin_state")


@struct.dataclass
class MjxState:
    data: mjx.Data
    time: jax.Array  # env steps taken in this episode


class MjxEnv:
    """Base of the MJX task-family envs: `reset`, and `step` = `transition` + light auto-reset."""

    def initial_data(self, key, params) -> mjx.Data:
        """A new episode's data: its RESET_FIELDS set, by random draws only (no physics)."""
        raise NotImplementedError

    def observe(self, data: mjx.Data, params) -> jax.Array:
        """The observation; reads only RESET_FIELDS of `data` (see the module docstring)."""
        raise NotImplementedError

    def transition(self, key, state: MjxState, action, params):
        """One env step without auto-reset: (obs, state, reward, terminated, truncated, info)."""
        raise NotImplementedError

    def qpos(self, state: MjxState) -> jax.Array:
        return state.data.qpos

    def qvel(self, state: MjxState) -> jax.Array:
        return state.data.qvel

    def reset(self, key, params):
        data = self.initial_data(key, params)
        return self.observe(data, params), MjxState(data, jnp.int32(0))

    def step(self, key, state: MjxState, action, params):
        """`transition`, then where the episode ended a new one starts as `reset(key)` starts it."""
        final_obs, state, reward, terminated, truncated, info = self.transition(
            key, state, action, params)
        done = terminated | truncated
        fresh = self.initial_data(key, params)
        data = state.data.replace(**{f: jnp.where(done, getattr(fresh, f), getattr(state.data, f))
                                     for f in RESET_FIELDS})
        info = {**info, "final_observation": final_obs}
        return (self.observe(data, params), MjxState(data, jnp.where(done, 0, state.time)), reward,
                terminated, truncated, info)
