"""SAC's formulas (Haarnoja et al. 2018), over the normalised box [-1, 1]^A:

- the tanh-squashed Gaussian policy a = tanh(u), u ~ N(mean, std^2), with the change of
  variables log pi(a|s) = sum_j [log N(u_j; mean_j, std_j) - log(1 - tanh(u_j)^2)];
- the soft TD target y = r + gamma (1 - terminated) (min_i Q'_i(s', a') - alpha log pi(a'|s')),
  a' ~ pi(.|s') (a terminated step does not bootstrap, a truncated one does);
- the actor loss mean(alpha log pi(a|s) - min_i Q_i(s, a)), a ~ pi(.|s) reparameterised;
- the temperature loss -mean(alpha (log pi(a|s) + target_entropy)), alpha = exp(log_alpha),
  log pi a constant (CleanRL's form), which raises alpha while the entropy is below the target.

The critics' TD loss is `jaxrl.agents.continuous.critic_loss`."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrl.agents.continuous import td_target

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def squash_log_std(raw):
    """The actor's raw log-std output mapped smoothly into [LOG_STD_MIN, LOG_STD_MAX]."""
    return LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (jnp.tanh(raw) + 1.0)


def tanh_gaussian_log_prob(u, mean, log_std):
    """log pi(tanh(u)) for u ~ N(mean, exp(log_std)^2), each [..., A]; returns [...]. The
    Jacobian term uses log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), exact and finite
    where tanh(u) rounds to +-1."""
    z = (u - mean) * jnp.exp(-log_std)
    gaussian = -0.5 * z**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi)
    log_det = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))
    return jnp.sum(gaussian - log_det, axis=-1)


def sample_tanh_gaussian(mean, log_std, key):
    """A reparameterised sample a = tanh(mean + std * eps) [..., A] and its log-probability [...]."""
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    return jnp.tanh(u), tanh_gaussian_log_prob(u, mean, log_std)


def soft_target(reward, next_q, next_log_prob, terminated, gamma, alpha):
    """The soft TD target [B]; `next_q` [N, B] the target critics at (s', a'), `next_log_prob` [B]
    log pi(a'|s')."""
    return td_target(reward, jnp.min(next_q, axis=0) - alpha * next_log_prob, terminated, gamma)


def sac_actor_loss(alpha, log_prob, q):
    """mean(alpha log pi(a|s) - min_i Q_i(s, a)); `q` [N, B], `log_prob` [B]."""
    return jnp.mean(alpha * log_prob - jnp.min(q, axis=0))


def temperature_loss(log_alpha, log_prob, target_entropy):
    """-mean(exp(log_alpha) (log pi + target_entropy)), log pi [B] held constant."""
    return -jnp.mean(jnp.exp(log_alpha) * (jax.lax.stop_gradient(log_prob) + target_entropy))
