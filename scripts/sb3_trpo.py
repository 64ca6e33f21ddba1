"""The single-threaded reference TRPO for scripts/parallel_trpo.py: sb3-contrib's TRPO (PyTorch,
`torch.set_num_threads(1)`) on Gymnasium's Pendulum-v1 or CartPole-v1, one seed, stopped as soon as
the mean return of the last `--window` finished training episodes reaches `--threshold` (checked
at every step). Runs in the peer's own venv (`scripts/setup_peers.sh sb3`), never in ours,
and prints one JSON line: seconds from process start (imports included) to the threshold, or to
the end of `--max-steps`.

    ~/.cache/sb3-peer/bin/python scripts/sb3_trpo.py --env Pendulum-v1 --seed 0 --threshold -200
    ~/.cache/sb3-peer/bin/python scripts/sb3_trpo.py --env Pendulum-v1 --trajectory ACTIONS.json

`--trajectory` instead steps the env from a given state by given actions and prints the
observations and rewards (the dynamics check against gymnax)."""
from __future__ import annotations

import time

START = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402


def trajectory(env_name: str, path: str) -> dict:
    """{"state": [...], "actions": [...]} -> observations and rewards, stepping from `state`."""
    import gymnasium as gym
    import numpy as np

    given = json.load(open(path))
    env = gym.make(env_name).unwrapped
    env.reset(seed=0)
    env.state = np.asarray(given["state"], dtype=np.float64)
    obs, rewards = [], []
    for action in given["actions"]:
        o, r, terminated, _, _ = env.step(np.asarray(action, dtype=np.float32)
                                          if env_name == "Pendulum-v1" else int(action))
        obs.append(np.asarray(o, dtype=np.float64).tolist())
        rewards.append(float(r))
        if terminated:
            break
    return {"obs": obs, "reward": rewards}


def train(args) -> dict:
    import torch

    torch.set_num_threads(1)
    from sb3_contrib import TRPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    class StopAtThreshold(BaseCallback):
        """Stops learn() at the first step where the last `window` episodes average the threshold
        (checked every step: at least as early as a check after every rollout)."""
        reached_at = None

        def _on_step(self) -> bool:
            episodes = [e["r"] for e in self.model.ep_info_buffer][-args.window:]
            if len(episodes) == args.window and sum(episodes) / args.window >= args.threshold:
                self.reached_at = self.num_timesteps
            return self.reached_at is None

    hyper = json.loads(args.hyper)
    n_envs = hyper.pop("n_envs")
    env = make_vec_env(args.env, n_envs=n_envs, seed=args.seed)
    model = TRPO("MlpPolicy", env, seed=args.seed, device="cpu", **hyper)
    callback = StopAtThreshold()
    model.learn(args.max_steps, callback=callback)
    seconds = time.time() - START
    return {"peer": "sb3-contrib TRPO", "env": args.env, "seed": args.seed,
            "threshold": args.threshold, "reached": callback.reached_at is not None,
            "steps_to_threshold": callback.reached_at, "seconds": seconds,
            "torch_threads": torch.get_num_threads(), "hyper": {**hyper, "n_envs": n_envs}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="Pendulum-v1", choices=["Pendulum-v1", "CartPole-v1"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=-300.0)
    parser.add_argument("--window", type=int, default=10, help="finished episodes averaged")
    parser.add_argument("--max-steps", type=int, default=100_000)
    parser.add_argument("--hyper", default="{}", help="TRPO keyword arguments as JSON, plus n_envs")
    parser.add_argument("--trajectory", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = trajectory(args.env, args.trajectory) if args.trajectory else train(args)
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
