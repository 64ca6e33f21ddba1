"""VPG (Spinning Up's "vanilla policy gradient": REINFORCE with a learned value baseline and GAE):
per rollout one Adam step of the policy on `vpg_policy_loss`, then `train_v_iters` full-batch Adam
steps of the value function on `value_loss`.

Each optimizer runs over the whole network; the policy loss has zero gradient on the critic and
the value loss zero gradient on the actor (separate MLPs), so Adam leaves the other network's
parameters exactly as they are. Spinning Up fits V to the discounted returns; here V is fitted to
the GAE(lambda) targets (advantage + V), as PPO and TRPO do (equal at gae_lambda 1)."""
from __future__ import annotations

import functools

import jax
import optax

from jaxrl.agents.onpolicy import actor_critic_trainer, validate_actor_critic
from jaxrl.agents.vpg.config import VPGConfig
from jaxrl.agents.vpg.losses import value_loss, vpg_policy_loss

validate = functools.partial(validate_actor_critic, "vpg")


def optimizers(config: VPGConfig):
    return optax.adam(config.pi_lr), optax.adam(config.vf_lr)


def make_train(config: VPGConfig, env, env_params):
    def init_optimizer(config, params):
        return tuple(opt.init(params) for opt in optimizers(config))

    def improve(config, apply_fn, params, opt_state, batch, key):
        del key
        pi_opt, v_opt = optimizers(config)
        pi_state, v_state = opt_state
        grads, metrics = jax.grad(vpg_policy_loss, has_aux=True)(params, apply_fn, batch)
        updates, pi_state = pi_opt.update(grads, pi_state, params)
        params = optax.apply_updates(params, updates)

        def value_step(carry, _):
            params, v_state = carry
            loss, grads = jax.value_and_grad(value_loss)(params, apply_fn, batch)
            updates, v_state = v_opt.update(grads, v_state, params)
            return (optax.apply_updates(params, updates), v_state), loss

        (params, v_state), losses = jax.lax.scan(value_step, (params, v_state), None,
                                                 config.train_v_iters)
        return params, (pi_state, v_state), {**metrics, "value_loss": losses[0],
                                             "value_loss_after": losses[-1]}

    return actor_critic_trainer(config, env, env_params, init_optimizer, improve)
