"""scripts/natural_q.py (the natural vs regular Q-learning study, issue 3) at its tiny size: bad
input is one line and exit code 2 before anything is compiled; a run writes one file per finished
cell plus a summary with the reported statistics; running it again skips finished cells; an
existing study with other settings is never overwritten."""
import importlib.util
import json
import pathlib

import numpy as np
import pytest

SCRIPT = pathlib.Path(__file__).parent.parent / "scripts" / "natural_q.py"


@pytest.fixture(scope="module")
def nq():
    spec = importlib.util.spec_from_file_location("natural_q", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("args, message", [
    (["--size", "huge"], "--size: invalid choice: 'huge'"),
    (["--envs", "Pong-v0"], "--envs: got 'Pong-v0', allowed: CartPole-v1, Acrobot-v1, Breakout-MinAtar"),
    (["--methods", "dqn,adam"], "--methods: got 'dqn,adam', allowed: dqn, pqn, kfac, natural_pqn, cg, gram"),
    (["--targets", "maybe"], "--targets: got 'maybe', allowed: on, off"),
    (["--test-seeds", "0"], "--test-seeds: got 0, must be >= 1"),
])
def test_bad_input_is_one_line_exit_2(nq, tmp_path, capsys, args, message):
    code = nq.main([*args, "--out", str(tmp_path / "study")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "study").exists()


def test_out_that_is_a_file_is_refused(nq, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert nq.main(["--size", "tiny", "--out", str(tmp_path / "file")]) == 2
    assert "--out:" in capsys.readouterr().err


@pytest.mark.timeout(240)
def test_tiny_study_writes_cells_and_summary_and_resumes(nq, tmp_path, capsys):
    out = tmp_path / "study"
    args = ["--size", "tiny", "--envs", "CartPole-v1", "--methods", "dqn,pqn", "--targets", "off",
            "--out", str(out)]
    assert nq.main(args + ["--export", str(tmp_path / "summary.json")]) == 0
    cells = sorted(p.name for p in (out / "cells").iterdir())
    assert cells == ["CartPole-v1__target-off__dqn.json", "CartPole-v1__target-off__pqn.json"]
    cell = json.loads((out / "cells" / cells[1]).read_text())
    assert len(cell["grid"]) >= 7 and cell["best_lr"] in cell["grid"]
    assert np.shape(cell["tuning_final"]) == (len(cell["grid"]), 1)
    # tuning and test seeds are disjoint (test seeds start at jaxrl.sweep.TEST_SEED_OFFSET)
    assert not set(cell["tuning_seeds"]) & set(cell["test_seeds"]) and len(cell["test_seeds"]) == 8

    summary = json.loads((tmp_path / "summary.json").read_text())["studies"]["study"]
    assert summary == json.loads((out / "summary.json").read_text())
    rows = {row["method"]: row for row in summary["table"]}
    assert set(rows) == {"dqn", "pqn"}
    for row in rows.values():
        for key in ("final_iqm", "auc_iqm", "collapse_frac", "cvar10", "sensitivity",
                    "time_matched_iqm"):
            point, lo, hi = row[key]
            assert lo <= point + 1e-9 and point <= hi + 1e-9, (key, row[key])
        assert 0 < row["sensitivity"][0] <= 1 and row["ms_per_update"] > 0
    assert rows["dqn"]["cost_vs_dqn"] == pytest.approx(1.0) and "p_improve_vs_dqn" in rows["pqn"]
    # PQN: an update is a rollout of num_envs x num_steps env steps, no warm-up
    pqn = json.loads((out / "cells" / cells[1]).read_text())
    assert pqn["warmup_updates"] == 0 and pqn["steps_per_update"] == 4 * 8
    assert pqn["num_updates"] == 1600 // 32 and len(pqn["test_seeds"]) == 8
    timing = json.loads((out / "timing.json").read_text())
    assert set(timing["CartPole-v1"]) == {"dqn", "pqn"}
    assert {r["method"] for r in summary["aggregate"]} == {"dqn", "pqn"}

    # Running again skips the finished cells (their files are untouched).
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}
    capsys.readouterr()
    assert nq.main(args) == 0
    assert "2 cells already finished" in capsys.readouterr().out
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}

    # Other settings into the same folder: refused, nothing overwritten.
    assert nq.main(args + ["--steps", "3200"]) == 2
    assert "different settings" in capsys.readouterr().err
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}


def test_collapse_and_window_statistics(nq):
    """A seed that reaches CartPole's threshold (475) and later falls below half of it collapses;
    one that only rises does not; the time-matched window reads the final window (its width,
    final_window) before the stop."""
    cell = dict(env="CartPole-v1", bin_mean=[[10, 480, 490, 200, 300], [10, 100, 480, 490, 500]],
                bin_count=[[1] * 5] * 2, bin_edges=[0, 10, 20, 30, 40, 50],
                test_final=[300, 500], warmup_updates=0, num_updates=50, final_window=5)
    m = nq.seed_metrics(cell, ms_per_update=4.0, dqn_seconds=50 * 2.0 / 1e3)
    assert m["reached"].tolist() == [True, True] and m["collapsed"].tolist() == [True, False]
    np.testing.assert_allclose(m["time_matched"], [490, 480])  # DQN's time = half this run
    wide = nq.seed_metrics({**cell, "final_window": 15}, ms_per_update=4.0, dqn_seconds=50 * 2.0 / 1e3)
    np.testing.assert_allclose(wide["time_matched"], [485, 290])  # bins 1 and 2: updates 10..24
    np.testing.assert_allclose(m["auc"], np.mean(cell["bin_mean"], axis=1) / 500)
    assert nq.cvar10(np.arange(20.0)) == pytest.approx(0.5)


def test_method_configs_per_size(nq):
    """The first edition's size (cpu) keeps its natural DQN (damping 0.1, exact K-FAC); the second
    edition's (cpu500k) runs every method at the library defaults; PQN and natural PQN run
    target-off only, on their own lr grids."""
    from jaxrl.agents.natural_dqn import NaturalDQNConfig

    args = nq.parse(["--size", "cpu"])
    first = nq.settings_of(args)
    _, kfac = nq.config_for("kfac", "CartPole-v1", "on", first)
    assert (kfac.damping, kfac.delta, kfac.kfac_stats_every, kfac.kfac_trust_region) == (
        0.1, 0.1, 1, "exact")
    second = nq.settings_of(nq.parse(["--size", "cpu500k"]))
    _, kfac = nq.config_for("kfac", "CartPole-v1", "off", second)
    defaults = NaturalDQNConfig.for_solver("kfac", total_steps=500_000)
    assert kfac.replace(lr=1.0, log_every=0, target_network_frequency=100) == defaults
    algo, natural_pqn = nq.config_for("natural_pqn", "Acrobot-v1", "off", second)
    assert algo == "natural_pqn" and natural_pqn.preconditioner == "kfac"
    assert nq.grid_of("pqn") == nq.GRIDS["dqn"] and nq.grid_of("natural_pqn") == nq.GRIDS["natural"]
    cells = nq.cells_of(args)
    assert ("off", "pqn") in cells and ("on", "pqn") not in cells and ("on", "kfac") in cells
