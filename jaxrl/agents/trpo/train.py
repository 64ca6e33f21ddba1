"""TRPO: per rollout one natural-gradient step of the policy on the surrogate, scaled to the KL
trust region and checked by a backtracking line search (`jaxrl.agents.trpo.losses`), then
`critic_epochs` passes of Adam minibatches on the value function (`value_loss`, as VPG's). The
policy step changes the actor only (the surrogate's gradient and the Fisher are zero on the
critic's parameters, so CG leaves them at 0)."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from jaxrl.agents.base import minibatch_epochs
from jaxrl.agents.onpolicy import actor_critic_trainer, normalized, validate_actor_critic
from jaxrl.agents.trpo.config import TRPOConfig
from jaxrl.agents.trpo.losses import line_search, natural_step, policy_fisher_matvec, surrogate
from jaxrl.agents.vpg.losses import value_loss

validate = functools.partial(validate_actor_critic, "trpo")


def critic_optimizer(config: TRPOConfig):
    return optax.adam(config.lr, eps=1e-5)


def policy_step(config: TRPOConfig, apply_fn, params, batch):
    """TRPO's policy update on a rollout batch: (params, metrics)."""
    dist_fn = lambda p: apply_fn(p, batch["obs"])[0]  # noqa: E731
    old = jax.lax.stop_gradient(dist_fn(params))
    old_log_prob = old.log_prob(batch["action"])
    advantage = normalized(batch["advantage"])

    def evaluate(p):
        dist = dist_fn(p)
        return (surrogate(dist, batch["action"], old_log_prob, advantage),
                old.kl(dist).mean())

    grads = jax.grad(lambda p: evaluate(p)[0])(params)
    step, step_metrics = natural_step(policy_fisher_matvec(dist_fn, params), grads,
                                      config.max_kl, config.cg_damping, config.cg_iters)
    params, search_metrics = line_search(evaluate, params, step, config.max_kl,
                                         config.backtrack_coef, config.backtrack_iters)
    return params, {**step_metrics, **search_metrics, "entropy": old.entropy().mean(),
                    "grad_norm": optax.global_norm(grads)}


def make_train(config: TRPOConfig, env, env_params):
    def improve(config, apply_fn, params, opt_state, batch, key):
        params, metrics = policy_step(config, apply_fn, params, batch)
        optimizer = critic_optimizer(config)

        def critic_step(carry, minibatch):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(value_loss)(params, apply_fn, minibatch)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = minibatch_epochs(
            critic_step, (params, opt_state), batch, key, config.critic_epochs,
            config.num_minibatches)
        return params, opt_state, {**metrics, "value_loss": jnp.mean(losses)}

    return actor_critic_trainer(config, env, env_params,
                                lambda config, params: critic_optimizer(config).init(params),
                                improve)
