"""PPO's update on the shared on-policy rollout (`jaxrl.agents.onpolicy`): `update_epochs` passes
over each rollout in `num_minibatches` minibatches of the clipped surrogate loss, with Adam.

`make_train(config, env, env_params)` reads only the static fields of `config` and returns a
`Trainer` whose `init`/`update` (and the whole run, `trainer(config, key)`) read only its float
leaves, so `jax.jit(jax.vmap(trainer))` over a batch of configs and keys is one compiled program."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from jaxrl.agents.base import minibatch_epochs, rollout_learning_rate
from jaxrl.agents.onpolicy import actor_critic_trainer, steps_per_update, validate_actor_critic
from jaxrl.agents.ppo.config import PPOConfig
from jaxrl.agents.ppo.losses import ppo_loss

validate = functools.partial(validate_actor_critic, "ppo")
__all__ = ["make_train", "steps_per_update", "validate"]


def make_optimizer(config: PPOConfig):
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                       optax.adam(rollout_learning_rate(config), eps=1e-5))


def make_train(config: PPOConfig, env, env_params, loss_fn=ppo_loss):
    """PPO's Trainer. `loss_fn` (same signature as `ppo_loss`) is the hook for variants."""
    def improve(config, apply_fn, params, opt_state, batch, key):
        optimizer = make_optimizer(config)

        def minibatch_step(carry, minibatch):
            params, opt_state = carry
            switch = {} if config.normalize_advantages else {"normalize_advantages": False}
            grads, metrics = jax.grad(loss_fn, has_aux=True)(  # a variant's loss_fn may omit the switch
                params, apply_fn, minibatch, config.clip_eps, config.vf_coef, config.ent_coef, **switch)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), {
                **metrics, "grad_norm": optax.global_norm(grads)}

        (params, opt_state), losses = minibatch_epochs(
            minibatch_step, (params, opt_state), batch, key, config.update_epochs,
            config.num_minibatches)
        return params, opt_state, jax.tree.map(jnp.mean, losses)

    return actor_critic_trainer(config, env, env_params,
                                lambda config, params: make_optimizer(config).init(params), improve)
