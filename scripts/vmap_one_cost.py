"""What a vmap over a batch of one costs on this backend, by normalisation layer.

The runner vmaps every run, so a lone seed runs as a batch of one. On the 2-core CPU that made
PQN's update about 1.5x slower than the same update unbatched (docs/performance.md, "SAC, TD3 and
PQN against rejax"). This times one epoch of 16 minibatch steps (256 rows, RAdam) of a 64x64 ReLU
Q-network on CartPole-sized inputs, unbatched and vmapped over one run, with each normalisation
layer after the hidden Dense layers; CPU seconds (process time, so other work on the machine
matters less than for wall time), the best of `--reps` alternating calls. Prints JSON.

    .venv/bin/python scripts/vmap_one_cost.py
"""
from __future__ import annotations

import argparse
import json
import time

import jaxrl  # noqa: F401  (XLA flags and the compile cache before jax)
import envs  # noqa: F401  (the CPU fusion setting every training run has)
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax


def rms(x):  # scale by the root mean square only
    return x * jax.lax.rsqrt((x * x).mean(-1, keepdims=True) + 1e-6)


LAYERS = {
    "none": lambda x: x,
    "layernorm (flax)": lambda x: nn.LayerNorm()(x),
    "layernorm, no scale or bias (flax)": lambda x: nn.LayerNorm(use_scale=False, use_bias=False)(x),
    "centre only: x - mean(x)": lambda x: x - x.mean(-1, keepdims=True),
    "scale only: x / rms(x)": rms,
    "elementwise: x / sqrt(x^2 + eps)": lambda x: x * jax.lax.rsqrt(x * x + 1e-6),
}


class Net(nn.Module):
    layer: str

    @nn.compact
    def __call__(self, x):
        for _ in range(2):
            x = nn.relu(LAYERS[self.layer](nn.Dense(64)(x)))
        return nn.Dense(2)(x)


def epoch_fn(net, opt):
    def epoch(params, opt_state, obs, target):  # obs [16, 256, 4], target [16, 256]
        def step(carry, batch):
            params, opt_state = carry
            grads = jax.grad(lambda p: ((net.apply(p, batch[0]).max(-1) - batch[1]) ** 2).mean())(params)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None
        return jax.lax.scan(step, (params, opt_state), (obs, target))[0]
    return epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=20, help="timed calls per case (best kept)")
    args = parser.parse_args()
    key = jax.random.PRNGKey(0)
    obs, target = jax.random.normal(key, (16, 256, 4)), jnp.ones((16, 256))
    one = lambda tree: jax.tree.map(lambda x: x[None], tree)  # noqa: E731  a batch of one
    out = {"device": jax.devices()[0].device_kind, "unit": "ms CPU time per epoch", "layers": {}}
    for name in LAYERS:
        net, opt = Net(name), optax.radam(3e-4)
        params = net.init(key, jnp.zeros(4))
        inputs = (params, opt.init(params), obs, target)
        epoch = epoch_fn(net, opt)
        cases = {"unbatched": (jax.jit(epoch), inputs),
                 "vmap of one": (jax.jit(jax.vmap(epoch)), one(inputs))}
        best = {}
        for case, (f, a) in cases.items():
            jax.block_until_ready(f(*a))  # compile
            best[case] = float("inf")
        for _ in range(args.reps):
            for case, (f, a) in cases.items():
                t = time.process_time()
                jax.block_until_ready(f(*a))
                best[case] = min(best[case], time.process_time() - t)
        out["layers"][name] = {**{k: round(v * 1e3, 2) for k, v in best.items()},
                               "ratio": round(best["vmap of one"] / best["unbatched"], 2)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
