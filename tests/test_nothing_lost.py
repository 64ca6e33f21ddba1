"""Nothing lost, nothing silently wrong: --out never deletes or replaces what the run did not
create, concurrent runs are excluded, input is never silently changed, I/O and environment errors
are one line, and the figures of a run that diverged are per update. (Checkpoint verification and
resume checks are in test_checkpoint.py.)"""
import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import RUN_FILES

from jaxrl.cli import main, parse_run

pytestmark = pytest.mark.timeout(300)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--num-envs", "4", "--num-steps", "16", "--update-epochs", "2", "--num-minibatches", "2",
        "--hidden-sizes", "16,16", "--total-steps", "128"]


def one_line_error(capsys, message: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("jaxrl: error: ") and message in err, err
    return err


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory holding a canary file and a canary folder."""
    work = tmp_path / "w"
    (work / "keep").mkdir(parents=True)
    (work / "canary.txt").write_text("x")
    (work / "keep" / "inner.txt").write_text("y")
    monkeypatch.chdir(work)
    return work


def tree(path) -> list:
    return sorted(os.path.relpath(os.path.join(r, n), path) for r, ds, fs in os.walk(path)
                  for n in ds + fs)


@pytest.mark.parametrize("out, message", [
    ("", "--out: got an empty path"),
    ("   ", "--out: got an empty path"),
    (".", "is the working directory or one of its parents"),
    ("./", "is the working directory or one of its parents"),
    ("..", "is the working directory or one of its parents"),
    ("/", "is the working directory or one of its parents"),
    ("canary.txt", "--out: canary.txt is a file"),
    ("canary.txt/run", "is a file, so canary.txt/run cannot be created under it"),
    ("link", "--out: link is a symbolic link"),
    ("keep", "--out: keep already exists"),
])
@pytest.mark.parametrize("command", ["train", "sweep"])
def test_destructive_out_is_refused_before_anything(workdir, capsys, command, out, message):
    os.symlink(workdir / "keep", workdir / "link")
    before = tree(workdir)
    extra = ["--grid", "lr=1e-3,1e-4"] if command == "sweep" else []
    assert main([command, "--out", out, *TINY, *extra]) == 2
    one_line_error(capsys, message)
    assert tree(workdir) == before and (workdir / "canary.txt").read_text() == "x"


@pytest.mark.parametrize("out, message", [
    ("canary.txt", "is a file"), ("link", "is a symbolic link"),
    ("keep", "is not a finished jaxrl run (no summary.json); --overwrite replaces only those")])
def test_overwrite_replaces_only_a_finished_run(workdir, capsys, out, message):
    os.symlink(workdir / "keep", workdir / "link")
    before = tree(workdir)
    assert main(["train", "--out", out, "--overwrite", *TINY]) == 2
    one_line_error(capsys, message)
    assert tree(workdir) == before


def test_the_working_directory_survives_the_reported_reproduction(workdir, capsys):
    """The outside tester's case: `--out ""` (an unset shell variable) ended rc=0 with the
    working directory's files gone."""
    assert main(["train", "--out", "", "--seeds", "1", "--total-steps", "1024"]) == 2
    assert (workdir / "canary.txt").read_text() == "x" and (workdir / "keep" / "inner.txt").exists()


def test_out_that_appears_while_training_is_left_alone(tmp_path, capsys, monkeypatch):
    """A folder created at --out while the run trains is kept, with or without --overwrite, and
    the finished results stay complete in OUT.partial with a message saying so."""
    import jaxrl.runner

    out = tmp_path / "run"
    real_run = jaxrl.runner.execute

    def run_then_someone_writes(*args, **kwargs):
        results = real_run(*args, **kwargs)
        if not out.exists():
            out.mkdir()
        (out / "mine.txt").write_text("user data")
        return results

    monkeypatch.setattr(jaxrl.runner, "execute", run_then_someone_writes)
    assert main(["train", "--out", str(out), "--seeds", "2", *TINY]) == 1
    err = one_line_error(capsys, "appeared while this run trained, so it was left alone")
    assert f"{out}.partial" in err
    assert os.listdir(out) == ["mine.txt"] and (out / "mine.txt").read_text() == "user data"
    partial = tmp_path / "run.partial"
    assert {"config.json", "metrics.csv", "summary.json"} <= set(os.listdir(partial))

    # --overwrite replaces the finished run that was there at start, not one that replaced it.
    (partial / ".jaxrl.lock").unlink(missing_ok=True)
    os.rename(out, tmp_path / "user")
    os.rename(partial, out)  # a finished run at --out

    def run_while_replaced(*args, **kwargs):
        os.rename(out, tmp_path / "old-run")
        out.mkdir()
        (out / "new.txt").write_text("other data")
        return real_run(*args, **kwargs)

    monkeypatch.setattr(jaxrl.runner, "execute", run_while_replaced)
    assert main(["train", "--out", str(out), "--seeds", "2", "--overwrite", *TINY]) == 1
    one_line_error(capsys, "appeared while this run trained")
    assert os.listdir(out) == ["new.txt"] and (tmp_path / "old-run" / "summary.json").exists()
    monkeypatch.setattr(jaxrl.runner, "execute", real_run)
    os.rename(tmp_path / "run.partial", tmp_path / "kept")
    (tmp_path / "old-run" / "old.txt").write_text("from the run being replaced")
    assert main(["train", "--out", str(tmp_path / "old-run"), "--seeds", "2", "--overwrite", *TINY]) == 0
    assert sorted(os.listdir(tmp_path / "old-run")) == RUN_FILES
    assert sorted(os.listdir(tmp_path)) == ["kept", "old-run", "run", "user"]


def test_two_runs_on_one_out_the_second_exits_2(tmp_path, capsys):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "jaxrl", "train", "--out", str(out),
                              "--seeds", "2", *TINY[:-1], "4800", "--checkpoint-every", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        for line in first.stdout:
            if line.startswith("training"):  # OUT.partial is claimed by now
                break
        for command, extra in (("train", []), ("train", ["--resume"]),
                               ("sweep", ["--grid", "lr=1e-3,1e-4"])):
            argv = [command, "--out", str(out), "--seeds", "2", *TINY[:-1], "4800", *extra]
            if command == "train":
                argv += ["--checkpoint-every", "1"]
            assert main(argv) == 2
            one_line_error(capsys, "another jaxrl run is writing to")
    finally:
        first.stdout.read()
        assert first.wait(timeout=240) == 0
    assert json.loads((out / "summary.json").read_text())["num_seeds"] == 2


def parsed(argv):
    args, configs = parse_run(argv)
    if args.claim is not None:
        args.claim.abandon()
    return configs


def test_prefixes_are_errors_and_given_options_are_kept(tmp_path, capsys):
    natural = ["--algo", "natural_dqn", "--out", str(tmp_path / "r")]
    assert main(["train", *natural, "--preconditioner", "cg", "--dampin", "0.5"]) == 2
    one_line_error(capsys, "unrecognized arguments: --dampin 0.5")
    (config,) = parsed(["train", *natural, "--preconditioner", "cg", "--damping", "0.5"])
    assert (config.damping, config.lr) == (0.5, 1.0)  # given kept; the solver's default lr
    (config,) = parsed(["train", *natural, "--preconditioner", "cg", "--lr", "0.3"])
    assert (config.damping, config.lr) == (0.3, 0.3)


def test_a_grid_over_a_static_choice_gets_each_choices_defaults(tmp_path):
    argv = ["sweep", "--algo", "natural_dqn", "--out", str(tmp_path / "s"),
            "--grid", "preconditioner=gram,cg,kfac"]
    configs = parsed(argv)
    assert [(c.preconditioner, c.lr, c.damping) for c in configs] == [
        ("gram", 0.1, 0.1), ("cg", 1.0, 0.3), ("kfac", 1.0, 0.3)]
    configs = parsed(argv + ["--damping", "0.05"])
    assert [(c.lr, c.damping) for c in configs] == [(0.1, 0.05), (1.0, 0.05), (1.0, 0.05)]
    configs = parsed(argv[:-1] + ["preconditioner=gram,cg", "--preconditioner", "kfac"])
    assert [(c.lr, c.damping) for c in configs] == [(0.1, 0.1), (1.0, 0.3)]


@pytest.mark.parametrize("argv, message", [
    (["train", "--seed-offset", "4294967296"], "--seed-offset/--seeds: the last seed would be 4294967303"),
    (["train", "--seed-offset", "4294967290", "--seeds", "7"], "seeds are 32-bit, at most 4294967295"),
    (["train", "--lr", "1e39"], "--lr: got 1e+39, must be > 0.0"),
    (["train", "--lr", "1e-50"], "--lr: got 1e-50, must be > 0.0"),
    (["train", "--lr", "nan"], "--lr: got nan"),
    (["sweep", "--grid", "lr=1e-3", "--grid", "lr=1e-4"], "--grid: lr is given twice"),
    (["sweep", "--random", "2", "--range", "lr=1e-5:inf"], "--range lr: needs a float field and finite"),
    (["sweep", "--random", "2", "--range", "lr=1e-5:1e-3", "--range", "lr=1e-4:1e-3"],
     "--range: lr is given twice"),
    (["train", "--algo", "natural_dqn", "--env", "Pendulum-v1"],
     "--algo natural_dqn: needs a Discrete action space"),
    (["train", "--seeds", "100000000", "--total-steps", "500000"],
     "--seeds: 100,000,000 runs would return"),
])
def test_input_that_would_change_silently_is_refused(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    tiny = [] if "--algo" in argv else TINY
    assert main([*argv[:1], "--out", str(out), *tiny, *argv[1:]]) == 2
    one_line_error(capsys, message)
    assert os.listdir(tmp_path) == []


def test_io_errors_are_one_line(tmp_path, capsys, monkeypatch):
    assert main(["plot", str(tmp_path / "nope")]) == 2
    one_line_error(capsys, "does not exist")
    (tmp_path / "afile").write_text("x")
    assert main(["plot", str(tmp_path / "afile")]) == 2
    one_line_error(capsys, "is a file, not a run folder")

    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)

    monkeypatch.setattr(os, "mkdir", read_only)
    assert main(["train", "--out", str(tmp_path / "ro" / "run"), *TINY]) == 2
    one_line_error(capsys, "--out: cannot create")


def test_unwritable_cache_dir_warns_and_runs_without_it(tmp_path):
    (tmp_path / "afile").write_text("x")
    result = subprocess.run([sys.executable, "-m", "jaxrl", "train", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "JAXRL_CACHE_DIR": str(tmp_path / "afile" / "xla")})
    assert result.returncode == 0 and "--total-steps" in result.stdout
    assert "cannot write the compilation cache" in result.stderr
    assert "Traceback" not in result.stderr


def test_full_disk_is_one_line_and_resumable(tmp_path, capsys, monkeypatch):
    """An injected ENOSPC in the middle of checkpointing: a short message, exit 1, and the run
    resumes to the end once there is room."""
    from jaxrl.runner.storage import Checkpoints

    out = tmp_path / "run"
    argv = ["train", "--out", str(out), "--seeds", "2", *TINY[:-1], "640", "--checkpoint-every", "2"]
    real_save, calls = Checkpoints.save, []

    def save_until_full(self, step, item):
        calls.append(step)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.manager.directory))
        real_save(self, step, item)

    monkeypatch.setattr(Checkpoints, "save", save_until_full)
    assert main(argv) == 1
    err = one_line_error(capsys, "No space left on device")
    assert "--resume" in err and (tmp_path / "run.partial").exists() and not out.exists()
    monkeypatch.setattr(Checkpoints, "save", real_save)
    assert main(argv + ["--resume"]) == 0
    assert "update 4/10" not in capsys.readouterr().out  # resumed after the two saved
    assert json.loads((out / "summary.json").read_text())["num_updates"] == 10


def test_divergence_is_flagged_from_the_update_it_happened():
    import jax.numpy as jnp

    from jaxrl.agents.base import Trainer

    def update(config, state, index):
        params = jnp.where(index >= 3, jnp.nan, state["params"])
        return {**state, "params": params}, {"loss": params.sum()}

    trainer = Trainer(init=lambda c, k: {"params": jnp.ones(2)}, update=update,
                      num_updates=6, params=lambda state: state["params"], with_params=None,
                      policy=None)
    _, metrics = trainer(None, None)
    np.testing.assert_array_equal(metrics["diverged"], [False] * 3 + [True] * 3)
