"""The runner: configs x seeds (x tasks) trained in as few compiled programs as possible.

    plan.py      check everything and build the env and trainer, once (`make_plan` -> `Plan`)
    program.py   the compiled programs: init, then segments of updates; memory checks
    loop.py      chunks that fit in memory, sharded over the devices, run segment by segment
                 (checkpointed when asked): `execute(plan)`, and `run(...)` = plan + execute
    results.py   `Results`: per-update metrics, final returns, summary.json; `Results.load(RUN)`
    storage.py   verified checkpoints and each segment's metric history on disk

The same numbers come out (to float tolerance) whatever the chunking, the segments or the number
of devices, because each run depends only on its own config and key."""
from jaxrl.runner.loop import execute, run
from jaxrl.runner.plan import Plan, make_plan, seed_key
from jaxrl.runner.results import Results, iqm_summary

__all__ = ["Plan", "Results", "execute", "iqm_summary", "make_plan", "run", "seed_key"]
