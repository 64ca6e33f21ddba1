"""Checkpoint and resume: a run SIGKILLed mid-way and resumed ends bit-identical to an
uninterrupted one; a damaged last checkpoint falls back to the one before; no pickle is stored."""
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

from jaxrl.cli import main

pytestmark = pytest.mark.timeout(300)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ["--seeds", "3", "--num-envs", "4", "--num-steps", "16", "--update-epochs", "2",
        "--num-minibatches", "2", "--hidden-sizes", "16,16", "--total-steps", str(64 * 60),
        "--checkpoint-every", "2"]


def train_and_kill(out, after: str):
    """Start `jaxrl train` in a subprocess and SIGKILL it once it prints `after`."""
    proc = subprocess.Popen([sys.executable, "-m", "jaxrl", "train", "--out", str(out), *ARGS],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    for line in proc.stdout:
        if after in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"


def metrics(path):
    return pd.read_csv(path / "metrics.csv")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(["train", "--out", str(out), *ARGS]) == 0
    assert not os.path.exists(f"{out}.partial")
    return metrics(out)


def test_killed_run_resumes_bit_identical(tmp_path, uninterrupted, capsys):
    out = tmp_path / "run"
    train_and_kill(out, "update 10/60")
    partial = tmp_path / "run.partial"
    assert partial.exists() and not out.exists()
    # Without --resume the unfinished run is neither overwritten nor silently restarted.
    assert main(["train", "--out", str(out), *ARGS]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", *ARGS[:-2], "--checkpoint-every", "3"]) == 2
    assert "--resume: --checkpoint-every is 3 here but 2" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", *ARGS]) == 0
    assert "checkpoint: chunk 1/1, update 2/60" not in capsys.readouterr().out  # really resumed
    pd.testing.assert_frame_equal(metrics(out), uninterrupted, check_exact=True)
    assert not partial.exists() and sorted(os.listdir(out)) == ["config.json", "metrics.csv",
                                                               "summary.json"]


def test_damaged_last_checkpoint_falls_back(tmp_path, uninterrupted):
    out = tmp_path / "run"
    train_and_kill(out, "update 8/60")
    chunk = tmp_path / "run.partial" / "checkpoints" / "chunk-0000"
    steps = sorted(int(s) for s in os.listdir(chunk) if s.isdigit())
    assert len(steps) == 2
    for root, _, files in os.walk(chunk / str(steps[-1])):  # damage every data file of the last
        for name in files:
            if "METADATA" not in name and not name.endswith(".txt"):
                with open(os.path.join(root, name), "r+b") as f:
                    f.truncate(3)
    with pytest.warns(UserWarning, match=f"checkpoint at update {steps[-1]} .* unreadable"):
        assert main(["train", "--out", str(out), "--resume", *ARGS]) == 0
    pd.testing.assert_frame_equal(metrics(out), uninterrupted, check_exact=True)


def test_checkpoints_hold_no_pickle(tmp_path):
    out = tmp_path / "run"
    train_and_kill(out, "update 4/60")
    for root, _, files in os.walk(tmp_path / "run.partial"):
        for name in files:
            data = open(os.path.join(root, name), "rb").read()
            assert not name.endswith((".pkl", ".pickle")) and b"\x80\x04\x95" not in data[:3], name
