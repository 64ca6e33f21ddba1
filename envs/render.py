"""Roll out an MJX env with jit and render its trajectory to a GIF with MuJoCo's offscreen renderer.

    qpos = rollout_qpos(env, params, actions, key)              # [steps + 1, nq] (or [T, ...] for a table)
    render_qpos_gif(env.mj_model(0), qpos[0], "arm.gif", fps=25)
    render_gif(env, table, policy_fn, "arm.gif", key, task=2, steps=100)

The env must expose `qpos(state)` and `mj_model(task)`: the MJX task families do (see
`envs.reacher_links`), and so do brax/NAME envs (`envs.brax_adapter`). A task table is rolled out
as one vmapped program over its tasks (the program training uses), so rendering a table row costs
no extra compile when the table was rolled out before.

Headless GL: MuJoCo picks its GL backend from `MUJOCO_GL` when `mujoco` is imported. `gl_backend()`
uses `MUJOCO_GL` if it is set, else tries `egl` then `osmesa`, each probed once in a subprocess
(a process can load only one PyOpenGL platform, so a failed probe cannot spoil this one), and
installs the first that works into the already imported `mujoco`. On the 2-core CPU dev machine
`egl` works (Mesa's software `swrast` driver, no GPU or /dev/dri needed) and `osmesa` does not
(no libOSMesa installed).
"""
from __future__ import annotations

import functools
import importlib
import os
import subprocess
import sys
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from envs.family import is_table

os.environ.setdefault("MUJOCO_GL", "egl")  # takes effect where mujoco is not imported yet

_PROBE = """
import mujoco
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size="0.1"/></worldbody></mujoco>')
r = mujoco.Renderer(m, 8, 8); d = mujoco.MjData(m); mujoco.mj_forward(m, d)
r.update_scene(d); r.render(); r.close(); print("ok")
"""


@functools.cache
def gl_backend() -> str | None:
    """The headless GL backend that renders here ('egl', 'osmesa', or a user-set MUJOCO_GL), made
    the one `mujoco.Renderer` uses in this process; None when none works."""
    user = os.environ.get("MUJOCO_GL")
    candidates = [user] if user and user != "egl" else ["egl", "osmesa"]
    for name in candidates:
        env = {k: v for k, v in os.environ.items() if k != "PYOPENGL_PLATFORM"}
        try:
            out = subprocess.run([sys.executable, "-c", _PROBE], env={**env, "MUJOCO_GL": name},
                                 capture_output=True, text=True, timeout=60).stdout
        except subprocess.TimeoutExpired:
            continue
        if "ok" in out.split():
            _install(name)
            return name
    return None


def _install(name: str) -> None:
    """Make `mujoco.Renderer` create `name` contexts (it reads `gl_context.GLContext` per call)."""
    from mujoco.rendering.classic import gl_context

    if name in ("egl", "osmesa"):
        gl_context.GLContext = importlib.import_module(f"mujoco.{name}").GLContext


# The cameras render_qpos_gif looks for, in order: ReacherLinks' "top", the walkers' and brax's
# locomotion models' "track" (it follows the body). Models with neither (brax inverted_pendulum,
# reacher, pusher) get MuJoCo's free camera, which frames the whole model.
CAMERAS = ("top", "track")


def render_qpos_gif(mj_model: Any, qpos: Any, path: str, fps: int = 25, width: int = 320,
                    height: int = 320, camera: str | int | Sequence[str] = CAMERAS) -> str:
    """Render one frame per row of `qpos` ([frames, nq]) of `mj_model` and write a looping GIF.
    `camera` is a camera id (-1: the free camera), a name, or names of which the model's first is
    used (none of them: the free camera)."""
    import mujoco
    from PIL import Image

    if gl_backend() is None:
        raise RuntimeError("render_qpos_gif: no headless GL backend works (tried MUJOCO_GL=egl, osmesa)")
    if not isinstance(camera, int):
        ids = [mujoco.mj_name2id(mj_model, mujoco.mjtObj.mjOBJ_CAMERA, name)
               for name in ([camera] if isinstance(camera, str) else camera)]
        camera = next((i for i in ids if i >= 0), -1)
    data = mujoco.MjData(mj_model)
    renderer = mujoco.Renderer(mj_model, height, width)
    frames = []
    try:
        for q in np.asarray(qpos, dtype=np.float64):
            data.qpos[:] = q
            mujoco.mj_forward(mj_model, data)  # mj_kinematics leaves cameras and lights unplaced
            renderer.update_scene(data, camera=camera)
            frames.append(Image.fromarray(renderer.render()))
    finally:
        renderer.close()
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return path


@functools.partial(jax.jit, static_argnames=("env", "act_fn", "steps"))
def _rollout(env, params, actions, key, act_fn, steps):
    def one(params, actions, key):
        key, key_reset = jax.random.split(key)
        obs, state = env.reset(key_reset, params)

        def body(carry, action):
            obs, state, key = carry
            key, key_act, key_step = jax.random.split(key, 3)
            action = act_fn(key_act, obs) if act_fn is not None else action
            obs, state, reward, terminated, truncated, info = env.step(key_step, state, action, params)
            out = dict(obs=obs, reward=reward, terminated=terminated, truncated=truncated, info=info,
                       action=action, qpos=env.qpos(state))
            if hasattr(env, "qvel"):
                out["qvel"] = env.qvel(state)
            return (obs, state, key), out

        _, traj = jax.lax.scan(body, (obs, state, key), actions, length=steps)
        first = dict(obs=obs, qpos=env.qpos(state))
        if hasattr(env, "qvel"):
            first["qvel"] = env.qvel(state)
        for name, value in first.items():  # observation-like entries get the initial one in front
            traj[name] = jnp.concatenate([value[None], traj[name]])
        return traj

    if is_table(params):
        keys = jax.random.split(key, params.task_id.shape[0])
        return jax.vmap(one)(params, actions, keys)
    return one(params, actions, key)


def rollout(env: Any, params: Any, act: Any, key: jax.Array, steps: int | None = None) -> dict:
    """Run `env` (jit) for `steps` steps and return the trajectory as a dict of arrays: `obs`,
    `qpos` (and `qvel` if the env has it) with steps + 1 rows (the reset state first), and
    `action`, `reward`, `terminated`, `truncated`, `info` with one row per step. Auto-resetting
    envs reset inside (qpos then jumps to the new episode's start).

    `act` is an array of actions ([steps, A]; [T, steps, A] for a task table) or a function
    `act(key, obs) -> action`. A task table (leading task axis) runs all tasks in one vmapped
    program with keys split from `key`; every output then has a leading task axis."""
    if callable(act):
        if steps is None:
            raise ValueError("rollout: give `steps` with an action function")
        return _rollout(env, params, None, key, act_fn=act, steps=steps)
    actions = jnp.asarray(act, jnp.float32)
    return _rollout(env, params, actions, key, act_fn=None, steps=actions.shape[-2])


def rollout_qpos(env: Any, params: Any, act: Any, key: jax.Array, steps: int | None = None):
    """The qpos sequence ([steps + 1, nq], or [T, steps + 1, nq] for a table) of `rollout`."""
    return rollout(env, params, act, key, steps)["qpos"]


def render_gif(env: Any, params: Any, act: Any, path: str, key: jax.Array, steps: int | None = None,
               task: int = 0, fps: int = 25, width: int = 320, height: int = 320) -> str:
    """Roll out `params` (one task's params, or a table of which row `task` is drawn) with `act`
    (see `rollout`) and write the GIF of that task to `path`."""
    qpos = np.asarray(rollout_qpos(env, params, act, key, steps))
    if is_table(params):
        qpos, params = qpos[task], jax.tree.map(lambda x: x[task], params)
    task_id = int(np.asarray(params.task_id)) if hasattr(params, "task_id") else task
    return render_qpos_gif(env.mj_model(task_id), qpos, path, fps=fps, width=width, height=height)
