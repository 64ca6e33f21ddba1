"""Natural PQN's optimizer: PQN's training loop (jaxrl.agents.pqn.train.make_train) with natural
DQN's Fisher preconditioner (jaxrl.agents.natural_dqn.make_optimizer) in place of RAdam. PQN's
loss is already the preconditioner's 0.5 mean(td^2) (loss_scale 1), and its `make_optimizer`
hook hands the preconditioner q_fn, the minibatch and its TD errors."""
from __future__ import annotations

import optax

from jaxrl.agents import natural_dqn, pqn
from jaxrl.agents.natural_dqn.train import validate_preconditioner
from jaxrl.agents.natural_pqn.config import NaturalPQNConfig
from jaxrl.config import ConfigError


def make_optimizer(config: NaturalPQNConfig, learning_rate) -> optax.GradientTransformationExtraArgs:
    """The preconditioner with eta_max = lr; with anneal_lr (`learning_rate` a schedule) the whole
    step, eta x, decays as PQN's learning rate does (linearly to 0)."""
    fisher = natural_dqn.make_optimizer(config, loss_scale=1.0)
    if not callable(learning_rate):
        return fisher
    return optax.chain(fisher, optax.scale_by_schedule(lambda count: learning_rate(count)
                                                       / config.lr))


def validate(config: NaturalPQNConfig, env, env_params) -> None:
    pqn.validate(config, env, env_params, algo="natural_pqn")
    validate_preconditioner(config)
    if config.preconditioner == "kfac" and config.layer_norm_params:
        raise ConfigError("--layer-norm-params: preconditioner kfac factors dense layers only, "
                          "not the LayerNorms' scale and bias; drop --layer-norm-params or pick "
                          "--preconditioner gram, cg or diagonal")


def make_train(config: NaturalPQNConfig, env, env_params, make_optimizer=make_optimizer):
    return pqn.make_train(config, env, env_params, make_optimizer=make_optimizer)
