"""Frames of gymnax's classic-control envs drawn with matplotlib (no GL needed): CartPole,
Pendulum, Acrobot and MountainCar (both versions), one frame per env state, written as a GIF.

    frames = draw_states("CartPole-v1", states)    # states: a pytree of [T] arrays
    write_gif(frames, "cartpole.gif", fps=25)"""
from __future__ import annotations

from typing import Any

import numpy as np

DRAWN = ("CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0",
         "MountainCarContinuous-v0")


def drawable(env_name: str) -> bool:
    return env_name in DRAWN


def _figure(size: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size / 100, size / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    return fig, ax


def _pixels(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _cartpole(ax, s, i):
    x, theta = float(s.x[i]), float(s.theta[i])
    ax.set_xlim(-2.6, 2.6), ax.set_ylim(-0.6, 1.8)
    ax.plot([-2.4, 2.4], [0, 0], color="0.4", lw=1)
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((x - 0.25, -0.08), 0.5, 0.16, color="0.2"))
    ax.plot([x, x + 1.0 * np.sin(theta)], [0, 1.0 * np.cos(theta)], color="tab:orange", lw=5)


def _pendulum(ax, s, i):
    theta = float(s.theta[i])
    ax.set_xlim(-1.3, 1.3), ax.set_ylim(-1.3, 1.3)
    ax.plot([0, np.sin(theta)], [0, np.cos(theta)], color="tab:red", lw=6)
    ax.plot([0], [0], "o", color="0.2")


def _acrobot(ax, s, i):
    a1, a2 = float(s.joint_angle1[i]), float(s.joint_angle2[i])
    p1 = np.array([np.sin(a1), -np.cos(a1)])
    p2 = p1 + np.array([np.sin(a1 + a2), -np.cos(a1 + a2)])
    ax.set_xlim(-2.2, 2.2), ax.set_ylim(-2.2, 2.2)
    ax.plot([-2.2, 2.2], [1, 1], color="0.6", lw=1)  # the goal height
    ax.plot([0, p1[0], p2[0]], [0, p1[1], p2[1]], color="tab:blue", lw=5, marker="o")


def _mountain_car(ax, s, i):
    xs = np.linspace(-1.2, 0.6, 100)
    ax.set_xlim(-1.2, 0.6), ax.set_ylim(-1.1, 1.1)
    ax.plot(xs, np.sin(3 * xs), color="0.4")
    ax.plot([0.5, 0.5], [np.sin(1.5), np.sin(1.5) + 0.2], color="tab:green", lw=2)  # the flag
    x = float(s.position[i])
    ax.plot([x], [np.sin(3 * x)], "s", color="tab:purple", markersize=12)


_DRAW = {"CartPole-v1": _cartpole, "Pendulum-v1": _pendulum, "Acrobot-v1": _acrobot,
         "MountainCar-v0": _mountain_car, "MountainCarContinuous-v0": _mountain_car}


def draw_states(env_name: str, states: Any, size: int = 320) -> list[np.ndarray]:
    """One RGB frame [size, size, 3] per row of `states` (a gymnax state with [T] leaves)."""
    draw = _DRAW[env_name]
    frames = []
    fig, ax = _figure(size)
    for i in range(len(np.asarray(states.time))):
        ax.clear()
        ax.set_axis_off()
        draw(ax, states, i)
        frames.append(_pixels(fig))
    return frames


def write_gif(frames: list[np.ndarray], path: str, fps: int = 25) -> str:
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path
