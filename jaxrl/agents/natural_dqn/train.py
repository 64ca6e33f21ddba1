"""Natural DQN's optimizer: DQN's training loop (jaxrl.agents.dqn.train.make_train) with the Fisher
preconditioner in place of Adam. With preconditioner kfac the loss gradient comes from the same
single forward and backward pass that gives K-FAC its statistics (`kfac_gradient`): the same
gradient, targets and metrics as DQN's, computed once."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxrl.agents import dqn
from jaxrl.agents.dqn.losses import td_target
from jaxrl.agents.dqn.train import dqn_gradient
from jaxrl.agents.natural_dqn.config import FisherFields, NaturalDQNConfig
from jaxrl.config import ConfigError
from jaxrl.optim import fisher_preconditioner, kfac
from jaxrl.optim.fisher import SOLVERS


def make_optimizer(config: FisherFields, loss_scale: float = 2.0
                   ) -> optax.GradientTransformationExtraArgs:
    """The preconditioner of a config's FisherFields, fed the loss gradient clipped at
    max_grad_norm (as for Adam) and divided by `loss_scale`: the preconditioner's convention is
    0.5 mean(td^2), gradient J^T td / B, whose Gauss-Newton matrix is F = J^T J / B, while DQN's
    MSE loss mean(td^2) has gradient J^T (2 td) / B (loss_scale 2; PQN's 0.5 mean(td^2): 1)."""
    fisher = fisher_preconditioner(config.preconditioner, config.damping, config.lr, config.delta,
                                   empirical=config.empirical_fisher, cg_iters=config.cg_iters,
                                   kfac_decay=config.kfac_decay,
                                   kfac_inverse_every=config.kfac_inverse_every,
                                   kfac_stats_every=config.kfac_stats_every,
                                   kfac_trust_region=config.kfac_trust_region)

    def update(grads, state, params=None, *, q_fn, batch, td, kfac_capture=None, **_):
        norm = jnp.maximum(optax.global_norm(grads), jnp.finfo(jnp.float32).tiny)
        clip = jnp.minimum(1.0, config.max_grad_norm / norm)
        grads = jax.tree.map(lambda g: clip / loss_scale * g, grads)
        return fisher.update(grads, state, params, q_fn=q_fn, batch=batch, td=clip * td,
                             kfac_capture=kfac_capture)

    return optax.GradientTransformationExtraArgs(fisher.init, update)


def validate(config: NaturalDQNConfig, env, env_params) -> None:
    dqn.validate(config, env, env_params, algo="natural_dqn")
    if config.loss != "mse":
        raise ConfigError(f"--loss: natural_dqn needs mse (its Fisher is the Gauss-Newton matrix of "
                          f"the squared TD error), got {config.loss!r}")
    validate_preconditioner(config)


def validate_preconditioner(config: FisherFields) -> None:
    """Raise ConfigError for a FisherFields config the preconditioner cannot take."""
    if config.preconditioner not in SOLVERS:
        raise ConfigError(f"--preconditioner: got {config.preconditioner!r}, allowed: "
                          f"{', '.join(SOLVERS)}")


def kfac_gradient(config: NaturalDQNConfig, params, target_params, batch, apply_fn, q_fn):
    """DQN's gradient hook for preconditioner kfac: the same gradient of mean(td^2), the same
    targets and metrics as `dqn.train.dqn_gradient`, from one forward and backward pass of the
    taken-action Q values (kfac.capture, the layers' inputs a and d q_i / d s) that also gives
    K-FAC its factors and the trust region its J x, handed on as `kfac_capture`: per layer
    grad = a^T (2 td / B * g). One pass through the network instead of three."""
    q, captured = kfac.capture(q_fn, params, batch)
    need_online_next = config.double or target_params is None
    next_q_online = apply_fn(params, batch["next_obs"]) if need_online_next else None
    next_q_target = (next_q_online if target_params is None
                     else apply_fn(target_params, batch["next_obs"]))
    target = jax.lax.stop_gradient(td_target(batch["reward"], next_q_target, next_q_online,
                                             batch["terminated"], config.gamma, config.double))
    td = q - target
    grads = kfac.gradients(captured, 2.0 * td / td.shape[0], params)
    metrics = {"td_loss": jnp.mean(td**2), "q_mean": q.mean()}
    return grads, metrics, {"td": td, "kfac_capture": captured}


def make_train(config: NaturalDQNConfig, env, env_params, make_optimizer=make_optimizer,
               gradient=None):
    """DQN's make_train with the Fisher preconditioner and, by default, the gradient hook
    `kfac_gradient` for preconditioner kfac (DQN's own for the other solvers)."""
    if gradient is None:
        gradient = kfac_gradient if config.preconditioner == "kfac" else dqn_gradient
    return dqn.make_train(config, env, env_params, make_optimizer=make_optimizer,
                          gradient=gradient)
