"""The command line: bad input is one line naming the option, exit 2, nothing written; a real
(tiny) run writes config.json, metrics.csv and summary.json; an existing --out is never replaced."""
import json
import os

import pytest

from conftest import RUN_FILES

from jaxrl.cli import main

pytestmark = pytest.mark.timeout(300)

TINY = ["--num-envs", "4", "--num-steps", "16", "--update-epochs", "2", "--num-minibatches", "2",
        "--hidden-sizes", "16,16", "--total-steps", "128"]


@pytest.mark.parametrize("args, message", [
    (["--env", "Nope-v0"], "--env: unknown environment 'Nope-v0'"),
    (["--algo", "sac"], "--algo: unknown algorithm 'sac'; allowed: ppo"),
    (["--seeds", "0"], "--seeds: got 0, must be >= 1"),
    (["--num-envs", "-2"], "--num-envs: got -2, must be >= 1"),
    (["--lr", "0"], "--lr: got 0.0, must be > 0.0"),
    (["--lr", "abc"], "argument --lr: invalid float value: 'abc'"),
    (["--gamma", "1.5"], "--gamma: got 1.5, must be >= 0.0 and <= 1.0"),
    (["--num-minibatches", "3"], "--num-minibatches: 3 does not divide the batch"),
    (["--total-steps", "50"], "--total-steps: 50 is less than one update"),
    (["--activation", "sigmoid"], "--activation: got 'sigmoid', allowed: tanh, relu, gelu"),
    (["--max-batch", "0"], "--max-batch: got 0, must be >= 1"),
    (["--env", "DeepSea-bsuite", "--env", "brax/ant", "--algo", "ppo", "--hidden-sizes", "x"],
     "argument --hidden-sizes: expected comma-separated integers"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    code = main(["train", "--out", str(out), *TINY, *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("jaxrl: error: ") and message in err, err
    assert not out.exists()
    assert os.listdir(tmp_path) == []


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name in ("--total-steps", "--num-envs", "--lr", "--max-grad-norm", "--seeds", "--out",
                 "--max-batch", "--overwrite", "--hidden-sizes"):
        assert name in text


def test_train_writes_results_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--seeds", "3", *TINY]) == 0
    assert sorted(os.listdir(out)) == RUN_FILES
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_seeds"] == 3 and summary["total_steps"] == 128 and summary["algo"] == "ppo"
    assert len(summary["final_return"]["per_seed"]) == 3
    assert summary["env_steps_per_second"] > 0 and summary["devices"]
    assert "chunk 1/1" in capsys.readouterr().out
    before = (out / "summary.json").read_text()
    assert main(["train", "--out", str(out), "--seeds", "2", *TINY]) == 2
    assert "--out:" in capsys.readouterr().err and (out / "summary.json").read_text() == before
    assert main(["train", "--out", str(out), "--seeds", "2", "--overwrite", *TINY]) == 0
    assert json.loads((out / "summary.json").read_text())["num_seeds"] == 2
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_dry_run_compiles_plans_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--seeds", "6", "--max-batch", "4", "--dry-run", *TINY]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["runs"] == 6 and plan["chunk_size"] <= 4 and plan["compiles"] == 1
    assert plan["num_chunks"] == -(-6 // plan["chunk_size"]) and plan["bytes_per_chunk"] > 0
    assert not out.exists()
