"""Natural DQN's optimizer: DQN's training loop (jaxrl.agents.dqn.train.make_train) with the Fisher
preconditioner in place of Adam; nothing else differs."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from jaxrl.agents import dqn
from jaxrl.agents.natural_dqn.config import NaturalDQNConfig
from jaxrl.config import ConfigError
from jaxrl.optim import fisher_preconditioner
from jaxrl.optim.fisher import SOLVERS


def make_optimizer(config: NaturalDQNConfig) -> optax.GradientTransformationExtraArgs:
    """The preconditioner, fed DQN's gradient clipped at max_grad_norm (as for Adam) and halved:
    DQN's MSE loss mean(td^2) has gradient J^T (2 td) / B, while the preconditioner's convention is
    0.5 mean(td^2), gradient J^T td / B, whose Gauss-Newton matrix is F = J^T J / B."""
    fisher = fisher_preconditioner(config.preconditioner, config.damping, config.lr, config.delta,
                                   empirical=config.empirical_fisher, cg_iters=config.cg_iters,
                                   kfac_decay=config.kfac_decay,
                                   kfac_inverse_every=config.kfac_inverse_every)

    def update(grads, state, params=None, *, q_fn, batch, td, **_):
        norm = jnp.maximum(optax.global_norm(grads), jnp.finfo(jnp.float32).tiny)
        clip = jnp.minimum(1.0, config.max_grad_norm / norm)
        grads = jax.tree.map(lambda g: 0.5 * clip * g, grads)
        return fisher.update(grads, state, params, q_fn=q_fn, batch=batch, td=clip * td)

    return optax.GradientTransformationExtraArgs(fisher.init, update)


def validate(config: NaturalDQNConfig, env, env_params) -> None:
    dqn.validate(config, env, env_params)
    if config.loss != "mse":
        raise ConfigError(f"--loss: natural_dqn needs mse (its Fisher is the Gauss-Newton matrix of "
                          f"the squared TD error), got {config.loss!r}")
    if config.preconditioner not in SOLVERS:
        raise ConfigError(f"--preconditioner: got {config.preconditioner!r}, allowed: "
                          f"{', '.join(SOLVERS)}")


make_train = functools.partial(dqn.make_train, make_optimizer=make_optimizer)
