"""Times rejax 0.1.3 on the same work as a jaxrl benchmark case; prints one JSON line. Runs in the
peer's own venv (`scripts/setup_peers.sh rejax`), called by `scripts/bench.py --peer PYTHON`.

usage: rejax_peer.py ALGO ENV SEEDS TOTAL_STEPS [field=value ...]

Like ../shared/peers/rejax_bench.py, except that the network options (`activation`) go where each
rejax algorithm reads them: TD3 takes `actor_kwargs` and `critic_kwargs`, the others
`agent_kwargs` (passing `agent_kwargs` to TD3 fails).
"""
import json
import sys
import time

import jax
from rejax import get_algo

NETWORK_OPTIONS = ("activation",)
SPLIT_NETWORKS = {"td3": ("actor_kwargs", "critic_kwargs")}  # else one "agent_kwargs"


def parse_value(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main(argv):
    algo_name, env, seeds, total = argv[0], argv[1], int(argv[2]), int(argv[3])
    fields = dict(kv.split("=", 1) for kv in argv[4:])
    fields = {k: parse_value(v) for k, v in fields.items()}
    network = {k: fields.pop(k) for k in NETWORK_OPTIONS if k in fields}
    for name in SPLIT_NETWORKS.get(algo_name, ("agent_kwargs",)):
        fields[name] = dict(network)
    cls = get_algo(algo_name)
    algo = cls.create(env=env, total_timesteps=total, eval_freq=total, **fields)
    train = jax.jit(jax.vmap(cls.train, in_axes=(None, 0)))
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    t0 = time.time()
    compiled = train.lower(algo, keys).compile()
    compile_seconds = time.time() - t0
    t0 = time.time()
    _, (_, returns) = compiled(algo, keys)
    jax.block_until_ready(returns)
    run_seconds = time.time() - t0
    print(json.dumps({"peer": "rejax", "algo": algo_name, "env": env, "num_seeds": seeds,
                      "total_steps": total, "compile_seconds": compile_seconds,
                      "run_seconds": run_seconds, "env_steps_per_second": seeds * total / run_seconds,
                      "final_return_mean": float(returns[:, -1].mean())}))


if __name__ == "__main__":
    main(sys.argv[1:])
