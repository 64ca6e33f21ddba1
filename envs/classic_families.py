"""Cheap task families from gymnax's classic-control physics: the same dynamics code, tasks that
differ in physical constants. They train in seconds on a CPU, so the multitask machinery (task
tables, envs spread over tasks, per-task metrics, transfer) is tested and demonstrated on them."""
from __future__ import annotations

import gymnax

from envs.family import TaskFamily


# PPO's settings for the family (`envs.recommended`; CartPoleMorph learns at PPO's defaults):
# those of the transfer study in docs/studies.md.
RECOMMENDED = {"PendulumMorph-v0": {"ppo": dict(num_steps=256, lr=1e-3, normalize_obs=True)}}


def cartpole_morph(one_hot: bool = True):
    """CartPole-v1 with pole half-lengths 0.25, 0.5, 1.0, 1.5 m and pole masses 0.05-0.3 kg."""
    env, base = gymnax.make("CartPole-v1")
    variants = [(0.25, 0.05), (0.5, 0.1), (1.0, 0.2), (1.5, 0.3)]
    tasks = []
    for length, masspole in variants:
        total = base.masscart + masspole
        tasks.append(base.replace(length=length, masspole=masspole, total_mass=total,
                                  polemass_length=masspole * length))
    names = [f"length={length},mass={mass}" for length, mass in variants]
    family = TaskFamily(env, tasks, names, one_hot=one_hot,
                        max_steps_in_episode=int(base.max_steps_in_episode))
    return family, family.default_params()


def pendulum_morph(one_hot: bool = True):
    """Pendulum-v1 with masses 0.5-2 kg and lengths 0.5-1.5 m (max torque 2 as in gymnasium)."""
    env, base = gymnax.make("Pendulum-v1")
    variants = [(0.5, 0.5), (1.0, 1.0), (1.5, 1.0), (1.0, 1.5)]
    tasks = [base.replace(m=m, l=length) for m, length in variants]
    names = [f"m={m},l={length}" for m, length in variants]
    family = TaskFamily(env, tasks, names, one_hot=one_hot,
                        max_steps_in_episode=int(base.max_steps_in_episode))
    return family, family.default_params()
