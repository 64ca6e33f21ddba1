"""The PPO loss and the action distributions against NumPy/SciPy references."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

from jaxrl.agents.ppo import ppo_loss
from jaxrl.nets import Categorical, DiagGaussian

pytestmark = pytest.mark.timeout(120)


def test_categorical_matches_reference():
    logits = jnp.asarray([[0.3, -1.0, 2.0], [0.0, 0.0, 0.0]])
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    d = Categorical(logits)
    np.testing.assert_allclose(d.log_prob(jnp.asarray([2, 1])), np.log([p[0, 2], p[1, 1]]), rtol=1e-5)
    np.testing.assert_allclose(d.entropy(), -(p * np.log(p)).sum(-1), rtol=1e-5)
    samples = jax.vmap(d.sample)(jax.random.split(jax.random.PRNGKey(0), 20000))[:, 0]
    np.testing.assert_allclose(np.bincount(samples, minlength=3) / 20000, p[0], atol=0.015)


def test_diag_gaussian_matches_scipy():
    mean = jnp.asarray([[0.5, -1.0]])
    log_std = jnp.asarray([0.2, -0.7])
    a = jnp.asarray([[0.1, -0.4]])
    d = DiagGaussian(mean, log_std)
    ref = sps.norm(mean[0], np.exp(log_std))
    np.testing.assert_allclose(d.log_prob(a)[0], ref.logpdf(a[0]).sum(), rtol=1e-5)
    np.testing.assert_allclose(d.entropy()[0], ref.entropy().sum(), rtol=1e-5)


def ppo_loss_reference(logp_new, logp_old, adv, value, value_old, target, entropy, eps, vf, ent,
                       normalize=True):
    if normalize:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    ratio = np.exp(logp_new - logp_old)
    surrogate = np.minimum(ratio * adv, np.clip(ratio, 1 - eps, 1 + eps) * adv)
    v_clip = value_old + np.clip(value - value_old, -eps, eps)
    v_loss = 0.5 * np.maximum((value - target) ** 2, (v_clip - target) ** 2).mean()
    return -surrogate.mean() + vf * v_loss - ent * entropy.mean()


def test_ppo_loss_matches_reference():
    rng = np.random.default_rng(1)
    B, A = 64, 3
    logits = rng.normal(size=(B, A)).astype(np.float32)
    value = rng.normal(size=B).astype(np.float32)

    def apply_fn(params, obs):
        return Categorical(params["logits"]), params["value"]

    params = {"logits": jnp.asarray(logits), "value": jnp.asarray(value)}
    action = rng.integers(0, A, B)
    logp_new = np.asarray(Categorical(jnp.asarray(logits)).log_prob(jnp.asarray(action)))
    batch = {"obs": jnp.zeros((B, 1)), "action": jnp.asarray(action),
             "log_prob": jnp.asarray(logp_new + rng.normal(scale=0.3, size=B).astype(np.float32)),
             "value": jnp.asarray(value + rng.normal(scale=0.5, size=B).astype(np.float32)),
             "advantage": jnp.asarray(rng.normal(size=B).astype(np.float32)),
             "target": jnp.asarray(rng.normal(size=B).astype(np.float32))}
    loss, metrics = ppo_loss(params, apply_fn, batch, 0.2, 0.5, 0.01)
    entropy = np.asarray(Categorical(jnp.asarray(logits)).entropy())
    ref = ppo_loss_reference(logp_new, np.asarray(batch["log_prob"]), np.asarray(batch["advantage"]),
                             value, np.asarray(batch["value"]), np.asarray(batch["target"]), entropy,
                             0.2, 0.5, 0.01)
    np.testing.assert_allclose(loss, ref, rtol=1e-4)
    raw = ppo_loss(params, apply_fn, batch, 0.2, 0.5, 0.01, normalize_advantages=False)[0]
    np.testing.assert_allclose(raw, ppo_loss_reference(
        logp_new, np.asarray(batch["log_prob"]), np.asarray(batch["advantage"]), value,
        np.asarray(batch["value"]), np.asarray(batch["target"]), entropy, 0.2, 0.5, 0.01,
        normalize=False), rtol=1e-4)
    assert abs(float(raw) - float(loss)) > 1e-3  # the switch matters on this batch
    ratio = np.exp(logp_new - np.asarray(batch["log_prob"]))
    np.testing.assert_allclose(metrics["clip_fraction"], (np.abs(ratio - 1) > 0.2).mean(), rtol=1e-6)
