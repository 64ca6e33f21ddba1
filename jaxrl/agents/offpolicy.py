"""The update schedule and replay checks shared by the replay-buffer agents (DQN, natural DQN,
NAF): one update = `train_frequency` iterations of all `num_envs` envs, then one gradient step
(none before `learning_starts` env steps); one metrics row per update."""
from __future__ import annotations

from jaxrl.config import ConfigError


def steps_per_update(config) -> int:
    """Environment steps per gradient step, which is also per metrics row."""
    return config.num_envs * config.train_frequency


def num_updates(config) -> int:
    return config.total_steps // steps_per_update(config)


def num_warmup_updates(config) -> int:
    """Updates (metrics rows) before `learning_starts`: they collect data but take no gradient step.
    Update u (from 0) takes its gradient step once (u + 1) x steps_per_update >= learning_starts."""
    return min(num_updates(config), max(0, -(-config.learning_starts // steps_per_update(config)) - 1))


def validate_replay(config) -> None:
    """Raise ConfigError, naming the option, for buffer and schedule settings that cannot run."""
    if config.batch_size > config.buffer_size:
        raise ConfigError(f"--batch-size: {config.batch_size} is more than --buffer-size "
                          f"{config.buffer_size}")
    if config.num_envs > config.buffer_size:
        raise ConfigError(f"--buffer-size: {config.buffer_size} cannot hold one iteration's "
                          f"--num-envs {config.num_envs} transitions")
    per_update = steps_per_update(config)
    if config.total_steps < per_update:
        raise ConfigError(f"--total-steps: {config.total_steps} is less than one update "
                          f"(num_envs x train_frequency = {per_update})")
    if config.learning_starts >= config.total_steps or num_warmup_updates(config) >= num_updates(config):
        raise ConfigError(f"--learning-starts: {config.learning_starts} leaves no gradient step; it "
                          f"must be less than --total-steps {config.total_steps} (in whole updates "
                          f"of num_envs x train_frequency = {per_update} steps: "
                          f"{num_updates(config) * per_update})")
