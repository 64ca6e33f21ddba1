"""A2C (Mnih et al. 2016, synchronous): after each short rollout of every env, one RMSprop step on
`a2c_loss` over the whole rollout."""
from __future__ import annotations

import functools

import jax
import optax

from jaxrl.agents.a2c.config import A2CConfig
from jaxrl.agents.a2c.losses import a2c_loss
from jaxrl.agents.onpolicy import actor_critic_trainer, validate_actor_critic

validate = functools.partial(validate_actor_critic, "a2c")


def make_optimizer(config: A2CConfig):
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                       optax.rmsprop(config.lr, decay=config.rms_decay, eps=config.rms_eps,
                                     eps_in_sqrt=False))


def make_train(config: A2CConfig, env, env_params):
    def improve(config, apply_fn, params, opt_state, batch, key):
        del key
        grads, metrics = jax.grad(a2c_loss, has_aux=True)(
            params, apply_fn, batch, config.vf_coef, config.ent_coef, config.normalize_advantages)
        updates, opt_state = make_optimizer(config).update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, {
            **metrics, "grad_norm": optax.global_norm(grads)}

    return actor_critic_trainer(config, env, env_params,
                                lambda config, params: make_optimizer(config).init(params), improve)
