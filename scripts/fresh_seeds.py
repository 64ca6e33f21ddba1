"""Do the learning claims hold on seeds nobody tuned or tested on?

Each claim of jaxrl/claims.py (algorithm, env, setting, budget, IQM threshold; the learning tests
assert it on seeds 0-7) is re-run as an outside user would, on --seeds seeds from
claims.FRESH_SEED_OFFSET, and its final-return IQM with a 95% stratified-bootstrap CI is compared
with the threshold. One claim = one cell, written to OUT/NAME.json as it finishes (atomically); the
same command again skips finished cells, so a cut-off run resumes. OUT/summary.json holds every
finished cell; --markdown prints the table docs/algorithms.md shows.

    .venv/bin/python scripts/fresh_seeds.py --out runs/fresh-seeds
    .venv/bin/python scripts/fresh_seeds.py --out runs/fresh-seeds --claims pqn/CartPole-v1
    .venv/bin/python scripts/fresh_seeds.py --out runs/fresh-seeds --markdown
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from jaxrl.claims import CLAIMS, FRESH_SEED_OFFSET
from jaxrl.runner.storage import write_json


def cell_path(out: str, name: str) -> str:
    return os.path.join(out, name.replace("/", "__") + ".json")


def run_cell(name: str, seeds: int) -> dict:
    from jaxrl import stats

    claim = CLAIMS[name]
    t0 = time.time()
    final = claim.final_returns(range(FRESH_SEED_OFFSET, FRESH_SEED_OFFSET + seeds))
    summary = stats.aggregate(final)
    return {"claim": name, "algo": claim.algo, "env": claim.env, "config": claim.config,
            "threshold": claim.threshold, "tuned_on": claim.tuned_on,
            "seeds": [FRESH_SEED_OFFSET, FRESH_SEED_OFFSET + seeds - 1], "final_return": final,
            "iqm": summary["iqm"], "ci95": summary["ci95"], "holds": summary["iqm"] >= claim.threshold,
            "seconds": time.time() - t0}


def markdown(cells: list[dict]) -> str:
    rows = ["| claim | setting tuned on | threshold | IQM on fresh seeds (95% CI) | holds |",
            "|---|---|---|---|---|"]
    for c in cells:
        rows.append(f"| {c['claim']} | {c['tuned_on']} | {c['threshold']:g} | {c['iqm']:.0f} "
                    f"({c['ci95'][0]:.0f} to {c['ci95'][1]:.0f}) | {'yes' if c['holds'] else '**no**'} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--out", required=True, help="folder of the cells (created; resumed)")
    parser.add_argument("--claims", default=",".join(CLAIMS),
                        help="comma-separated claim names (default: all)")
    parser.add_argument("--seeds", type=int, default=16, help="fresh seeds per claim (default 16)")
    parser.add_argument("--markdown", action="store_true", help="print the finished cells' table")
    args = parser.parse_args(argv)
    names = args.claims.split(",")
    unknown = [n for n in names if n not in CLAIMS]
    if unknown:
        parser.error(f"--claims: unknown {', '.join(unknown)}; allowed: {', '.join(CLAIMS)}")
    if args.seeds < 2:
        parser.error(f"--seeds: got {args.seeds}, must be >= 2 (an IQM needs several seeds)")
    os.makedirs(args.out, exist_ok=True)
    for name in [] if args.markdown else names:
        path = cell_path(args.out, name)
        if os.path.exists(path):
            first, last = json.load(open(path))["seeds"]
            if last - first + 1 != args.seeds:
                parser.error(f"--seeds: {path} has another seed count; use a new --out")
            continue
        print(f"{time.strftime('%H:%M:%S')} {name} on {args.seeds} fresh seeds", flush=True)
        write_json(path, run_cell(name, args.seeds), indent=1)
    cells = [json.load(open(cell_path(args.out, n))) for n in names
             if os.path.exists(cell_path(args.out, n))]
    write_json(os.path.join(args.out, "summary.json"), {"cells": cells}, indent=1)
    print(markdown(cells))
    return 0 if all(c["holds"] for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
