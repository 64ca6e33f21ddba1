"""TD3's Trainer: DDPG's agent (jaxrl.agents.ddpg.train) with twin critics (the target takes
their min) and target policy smoothing; the delayed actor and target updates are DDPG's
`policy_frequency` (2 by default for both, as in CleanRL)."""
from __future__ import annotations

import functools

import jax

from jaxrl.agents.continuous import validate_box
from jaxrl.agents.ddpg.train import make_train as make_ddpg_train
from jaxrl.agents.td3.losses import smoothed_target_action


def smoothed_target(config, mu, key):
    return smoothed_target_action(mu, jax.random.normal(key, mu.shape), config.policy_noise,
                                  config.noise_clip)


make_train = functools.partial(make_ddpg_train, num_critics=2, target_action=smoothed_target)


def validate(config, env, env_params) -> None:
    validate_box(config, env, env_params, "td3")
