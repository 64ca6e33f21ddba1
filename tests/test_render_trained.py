"""`render RUN` draws a trained policy of every MJX task family and of a brax env with MuJoCo's
offscreen renderer: a tiny PPO run (one update) per env through the CLI, then a short GIF of its
second seed, checked for its frame count and size and for a robot that moves (the GIF writer
merges identical consecutive frames, so steps + 1 frames means every step changed the picture).

Compiles are the time: the training program and the rollout each compile the env's step, 45-75 s
per env on the 2-core CPU (cold cache). ReacherLinks-v0 runs in every suite; the two walker
families and brax/inverted_pendulum (the same render path) with `make test-slow` only."""

import numpy as np
import pytest

from conftest import slow

from jaxrl.cli import main

pytestmark = pytest.mark.timeout(600)

STEPS, SIZE = 10, 64
ENVS = {"WalkerMorph-v0": 5, "WalkerSkills-v0": 5, "ReacherLinks-v0": 4,  # name: num envs,
        "brax/inverted_pendulum": 1}                                      # one per task
SLOW = slow("the walker families' and brax's trained renders take 45-75 s each on the 2-core "
            "CPU (cold cache); ReacherLinks-v0 checks the MuJoCo render path")


@pytest.fixture(scope="module", params=[pytest.param(name, marks=[] if name == "ReacherLinks-v0" else [SLOW])
                                        for name in ENVS])
def trained(request, tmp_path_factory):
    """One tiny trained run per env: 2 seeds, one update, checkpointed."""
    from envs.render import gl_backend

    if gl_backend() is None:
        pytest.skip("no headless GL backend works here (tried MUJOCO_GL=egl and osmesa)")
    name, num_envs = request.param, ENVS[request.param]
    out = tmp_path_factory.mktemp("render") / "run"
    assert main(["train", "--algo", "ppo", "--env", name, "--seeds", "2", "--total-steps",
                 str(4 * num_envs), "--num-envs", str(num_envs), "--num-steps", "4",
                 "--update-epochs", "1", "--num-minibatches", "1", "--hidden-sizes", "8",
                 "--checkpoint-every", "1",  # an MJX state has empty arrays (no contacts)
                 "--out", str(out)]) == 0
    return out


def test_trained_policy_renders_and_moves(trained, tmp_path, capsys):
    from PIL import Image

    gif = tmp_path / "x.gif"
    assert main(["render", str(trained), "--seed", "1", "--steps", str(STEPS), "--size", str(SIZE),
                 "--out", str(gif)]) == 0
    assert f"seed 1, {STEPS} steps" in capsys.readouterr().out
    with Image.open(gif) as image:
        assert image.n_frames == STEPS + 1 and image.size == (SIZE, SIZE)
        first = np.asarray(image.convert("RGB"), dtype=int)
        image.seek(STEPS)
        assert np.abs(np.asarray(image.convert("RGB"), dtype=int) - first).max() > 0
