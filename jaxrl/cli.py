"""`python -m jaxrl train ...`: parse, check everything before compiling, run, write results.

Every config field of the chosen algorithm is an option `--field-name VALUE`. Bad input ends with
one line naming the option and what is allowed, exit code 2, before anything is compiled or
written. Results go to a temporary folder renamed to `--out` at the end, so an existing run is never
overwritten (unless `--overwrite`) and a crashed run never leaves a half-written `--out`."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
from typing import Any

from jaxrl.config import MAX_SEED, ConfigError, make_config, option
from jaxrl.rundir import Claim, KeptPartial, check_out, partial_of

USAGE_EXAMPLE = ("example: python -m jaxrl train --algo ppo --env CartPole-v1 --seeds 32 "
                 "--total-steps 500000 --out runs/cartpole")


class Parser(argparse.ArgumentParser):
    """argparse with exact option names only (a prefix such as --dampin is an error, not
    --damping) and errors raised as ConfigError, for main's one-line form."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str):
        raise ConfigError(message)


def _tuple_of_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 64,64, got {text!r}")


def add_config_options(parser: argparse.ArgumentParser, config_cls) -> None:
    group = parser.add_argument_group(f"{config_cls.__name__} fields (static ones recompile; "
                                      "floats are traced)")
    # Every option defaults to None (not given), so `given_fields` knows exactly what the command
    # line set and config.make_config fills the rest, implied defaults included.
    for f in dataclasses.fields(config_cls):
        kind = "static" if f.metadata.get("static") else "float, traced"
        shown = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        choices = f" (one of: {', '.join(f.metadata['choices'])})" if f.metadata.get("choices") else ""
        help_text = f"{f.metadata['help']}{choices} [{kind}; default: {shown}]".replace("%", "%%")
        if isinstance(f.default, bool):
            group.add_argument(option(f.name), action=argparse.BooleanOptionalAction,
                               default=None, help=help_text)
        elif isinstance(f.default, tuple):
            group.add_argument(option(f.name), type=_tuple_of_ints, default=None,
                               metavar="N,N", help=help_text)
        else:
            group.add_argument(option(f.name), type=type(f.default), default=None,
                               metavar=type(f.default).__name__.upper(), help=help_text)


def given_fields(args: argparse.Namespace, config_cls) -> dict[str, Any]:
    """The config fields that the command line gave."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls)
            if getattr(args, f.name, None) is not None}


def as_options(fields: dict[str, Any]) -> str:
    """Config fields as the command-line options that give them."""
    def one(name, value):
        if isinstance(value, bool):
            return option(name) if value else "--no-" + option(name)[2:]
        shown = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else value
        return f"{option(name)} {shown}"
    return " ".join(one(k, v) for k, v in fields.items())


def add_common_options(parser: argparse.ArgumentParser, algos) -> None:
    parser.add_argument("--algo", default="ppo", help=f"algorithm: {', '.join(sorted(algos))} "
                        "(default: %(default)s)")
    import envs

    parser.add_argument("--env", default="CartPole-v1", help="environment: any gymnax name "
                        "(CartPole-v1, Pendulum-v1, Breakout-MinAtar, ...), brax/NAME on MJX "
                        "(brax/inverted_pendulum, brax/hopper, ...), a task family "
                        f"({', '.join(envs.FAMILIES)}) or one an --env-module registers "
                        "(default: %(default)s)")
    parser.add_argument("--env-module", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (repeatable): a module of yours that calls "
                        "envs.register(name, factory), so --env can name its envs")
    parser.add_argument("--env-settings", action=argparse.BooleanOptionalAction, default=True,
                        help="start from the config fields the env recommends for --algo "
                        "(envs.recommended, e.g. ReacherLinks-v0's for ppo; options given win); "
                        "--no-env-settings uses the algorithm's own defaults (default: on)")
    parser.add_argument("--tasks", default="all", metavar="all|ID[,ID...]",
                        help="task family only: the tasks one network trains on at once, its envs "
                        "spread evenly over them (--num-envs a multiple of their number); e.g. 2 "
                        "trains on task 2 alone (default: %(default)s)")
    parser.add_argument("--single-task", action="store_true", help="task family only: train "
                        "each selected task on its own network instead (the single-task "
                        "baseline), all in one vmapped program")
    parser.add_argument("--hide-task-id", action="store_true", help="task family only: leave the "
                        "one-hot task id out of the observation (the task is hidden context)")
    parser.add_argument("--seeds", type=int, default=8, help="number of seeds, run in parallel "
                        "(default: %(default)s)")
    parser.add_argument("--out", required=True, help="output folder; must not exist yet")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out "
                        "(only once the new run has finished)")
    parser.add_argument("--max-batch", type=int, default=None, help="most runs per compiled "
                        "chunk (default: as many as fit in memory, from the compiled program's "
                        "analysis)")
    parser.add_argument("--eval-every", type=int, default=0, metavar="UPDATES",
                        help="run greedy (deterministic) evaluation episodes after every this many "
                        "updates, reported as eval_return_* apart from training returns (default: "
                        "0, off)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes each "
                        "time (default: %(default)s)")
    parser.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs "
                        "to OUT/tensorboard (per config: metric means and return IQMs over seeds; "
                        "train: as each segment finishes, sweep: at the end)")
    add_distributed_options(parser)


def add_distributed_options(parser: argparse.ArgumentParser) -> None:
    from jaxrl.distributed import DEFAULT_HEARTBEAT_SECONDS, DEFAULT_INIT_SECONDS

    group = parser.add_argument_group("across processes and hosts (jax.distributed; "
                                      "docs/scaling.md)")
    group.add_argument("--coordinator", default=None, metavar="HOST:PORT|auto",
                       help="run this command in every process of a multi-process job: the "
                       "address of process 0's coordinator, or auto for the cluster JAX detects "
                       "(SLURM, Open MPI, TPU pods); runs are sharded over every device of every "
                       "process and process 0 alone writes --out (default: one process)")
    group.add_argument("--num-processes", type=int, default=None, metavar="N",
                       help="processes in the job (with --coordinator HOST:PORT)")
    group.add_argument("--process-id", type=int, default=None, metavar="I",
                       help="this process's index, 0 .. N-1 (with --coordinator HOST:PORT)")
    group.add_argument("--heartbeat-timeout", type=int, default=DEFAULT_HEARTBEAT_SECONDS,
                       metavar="SECONDS", help="a process silent this long stops the whole job "
                       "with an error (default: %(default)s)")
    group.add_argument("--init-timeout", type=int, default=DEFAULT_INIT_SECONDS,
                       metavar="SECONDS", help="give up when the coordinator or a peer is not "
                       "reachable within this long at start-up (default: %(default)s)")


def build_parser(algo: str | None) -> Parser:
    from jaxrl.agents import ALGOS

    config_cls = ALGOS.get(algo or "ppo", ALGOS["ppo"]).Config
    parser = Parser(prog="python -m jaxrl", description="jaxrl: whole RL training runs "
                    "jit-compiled and vmapped over seeds on one device.", epilog=USAGE_EXAMPLE)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    train = sub.add_parser("train", help="train one config over many seeds",
                           description="Train one config over --seeds seeds in one compiled "
                           "program; writes config.json, metrics.csv and summary.json to --out.",
                           epilog=USAGE_EXAMPLE)
    add_common_options(train, ALGOS)
    train.add_argument("--seed-offset", type=int, default=0, help="first seed; seeds are "
                       "offset .. offset+seeds-1 (default: %(default)s)")
    train.add_argument("--checkpoint-every", type=int, default=None, metavar="UPDATES",
                       help="save the whole batched state (params, optimizer and env state, RNG, "
                       "metric history) every this many updates, in OUT.partial/checkpoints; a "
                       "killed run continues with --resume and ends bit-identical on the CPU")
    train.add_argument("--resume", action="store_true", help="continue the unfinished run in "
                       "OUT.partial (same command line) from its last checkpoint")
    train.add_argument("--init-from", default=None, metavar="RUN", help="fine-tune: seed i "
                       "starts from seed i's trained params of the finished run RUN (same algo, "
                       "env and network; targets and optimizer state rebuilt from them)")
    train.add_argument("--wandb", action="store_true", help="also log to Weights & Biases as "
                       "each segment finishes (the wandb extra; offline into OUT/wandb unless "
                       "WANDB_MODE=online; project $WANDB_PROJECT, default jaxrl)")
    train.add_argument("--dry-run", action="store_true", help="compile, print the chunk plan "
                       "(chunk size and count, memory per chunk from the compiled program, "
                       "compiles) as JSON, and run nothing")
    add_config_options(train, config_cls)
    sweep = sub.add_parser("sweep", help="grid or random search on tuning seeds, best config "
                           "re-run on fresh test seeds",
                           description="Sweep hyperparameters on tuning seeds 0..seeds-1, pick "
                           "the best config by IQM final return, re-run it on --test-seeds fresh "
                           "seeds, and report that test result with a 95% CI. Float-only grids "
                           "run as one compiled program; a static field splits the sweep into one "
                           "program per value. Writes results.csv, metrics.csv, config.json and "
                           "summary.json.",
                           epilog="example: python -m jaxrl sweep --algo ppo --env CartPole-v1 "
                           "--seeds 8 --grid lr=1e-4,3e-4,1e-3 --grid ent_coef=0.0,0.01 --out runs/sweep")
    add_common_options(sweep, ALGOS)
    sweep.add_argument("--test-seeds", type=int, default=16, help="fresh seeds for the best "
                       "config (0: skip) (default: %(default)s)")
    sweep.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2,...",
                       help="values of one config field; repeat for a cartesian product")
    sweep.add_argument("--random", type=int, default=None, metavar="N",
                       help="random search: N configs drawn from the --range fields")
    sweep.add_argument("--range", action="append", default=[], metavar="FIELD=LO:HI[:log]",
                       help="a float field's range for --random (log: log-uniform)")
    add_config_options(sweep, config_cls)
    plot = sub.add_parser("plot", help="write PNG figures of a run or sweep folder",
                          description="Learning curves (IQM over seeds with 95% bootstrap bands) "
                          "per config, performance profiles, a sweep heatmap or line plot, and "
                          "training diagnostics, as PNGs.")
    plot.add_argument("run_dir", help="a folder written by `train` or `sweep`")
    plot.add_argument("--out", default=None, help="folder for the PNGs (default: RUN_DIR/plots)")
    evaluate = sub.add_parser("eval", help="evaluate a finished run's trained policies",
                              description="Run every seed's deterministic policy of a finished "
                              "train run on fresh episodes (all seeds in one vmapped program) and "
                              "print the IQM of the per-seed mean returns with a 95% bootstrap "
                              "CI, and of the success rates for an env that reports success. On a "
                              "task family also per task (a --single-task run: each task's "
                              "networks on their own task; overall the per-seed mean over tasks). "
                              "Writes RUN/eval.json (or --out).",
                              epilog="example: python -m jaxrl eval runs/cartpole --episodes 100")
    evaluate.add_argument("run_dir", metavar="RUN", help="a folder written by `train`")
    evaluate.add_argument("--episodes", type=int, default=100, help="episodes per seed "
                          "(default: %(default)s)")
    evaluate.add_argument("--key", type=int, default=0, help="PRNG seed of the episodes' starts "
                          "(default: %(default)s)")
    evaluate.add_argument("--task", type=int, default=None, help="task family only: evaluate on "
                          "this task alone (on a --single-task run: its own networks) (default: "
                          "the tasks the run trained on)")
    evaluate.add_argument("--out", default=None, help="the JSON to write (default: RUN/eval.json)")
    evaluate.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    render = sub.add_parser("render", help="render a trained policy (or random actions) to a GIF",
                            description="With RUN: roll out the deterministic policy of one seed "
                            "of a finished train run and write a GIF (classic control: CartPole, "
                            "Pendulum, Acrobot, MountainCar drawn with matplotlib; MJX task "
                            "families and brax/NAME with MuJoCo's offscreen renderer, headless: "
                            "MUJOCO_GL=egl, else osmesa). Without RUN: one task of an MJX task "
                            "family, or a brax/NAME env, with random or zero actions (--env).",
                            epilog="examples: python -m jaxrl render runs/cartpole --seed 3 --out "
                            "cartpole.gif; python -m jaxrl render --env ReacherLinks-v0 --task 3 "
                            "--out reacher.gif")
    render.add_argument("run_dir", nargs="?", default=None, metavar="RUN",
                        help="a folder written by `train` (its trained params)")
    render.add_argument("--env", default=None, help="without RUN: an MJX task family or "
                        "brax/NAME")
    render.add_argument("--task", type=int, default=None, help="task id (default: the first "
                        "the run trained on, or 0); on a --single-task run also that task's "
                        "network")
    render.add_argument("--out", required=True, help="the GIF to write; must not exist yet")
    render.add_argument("--steps", type=int, default=None, help="env steps (default: 200 with "
                        "RUN, else 100)")
    render.add_argument("--policy", choices=("random", "zero"), default="random",
                        help="without RUN: uniform random in the box, or all zero (default: "
                        "%(default)s)")
    render.add_argument("--seed", type=int, default=None, help="with RUN: the trained seed "
                        "(default: the run's first); without: the PRNG seed of the actions")
    render.add_argument("--key", type=int, default=0, help="with RUN: PRNG seed of the "
                        "episode's start (default: %(default)s)")
    render.add_argument("--size", type=int, default=320, help="frame width and height in pixels "
                        "(default: %(default)s)")
    render.add_argument("--fps", type=int, default=25, help="GIF frame rate (default: %(default)s)")
    return parser


def parse_run(argv: list[str]) -> tuple[argparse.Namespace, list]:
    """Parse and check a `train` or `sweep` command line and claim its --out (`rundir.Claim`,
    in `args.claim`; not for --dry-run); returns (args, configs). Raises ConfigError before
    anything is compiled, and before anything is written unless every check passed."""
    from jaxrl import distributed

    pre = Parser(add_help=False)
    pre.add_argument("--algo", default="ppo")
    add_distributed_options(pre)
    known, _ = pre.parse_known_args(argv[1:])
    has_help = any(a in ("-h", "--help") for a in argv)
    if not has_help:  # joins the job (options checked first) before anything touches a device
        distributed.start(known.coordinator, known.num_processes, known.process_id,
                          known.heartbeat_timeout, known.init_timeout)
    from jaxrl.agents import env_fields, get_algo  # imports envs, which starts JAX's backend

    spec = get_algo(known.algo) if not has_help else None
    args = build_parser(known.algo).parse_args(argv)
    spec = spec or get_algo(args.algo)
    for name in ("seeds", "max_batch", "checkpoint_every", "random"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise ConfigError(f"{option(name)}: got {value}, must be >= 1")
    if args.eval_episodes < 1:
        raise ConfigError(f"--eval-episodes: got {args.eval_episodes}, must be >= 1")
    for name in ("seed_offset", "test_seeds", "eval_every"):
        if getattr(args, name, 0) < 0:
            raise ConfigError(f"{option(name)}: got {getattr(args, name)}, must be >= 0")
    last_seed = getattr(args, "seed_offset", 0) + args.seeds - 1
    if last_seed > MAX_SEED:
        raise ConfigError(f"--seed-offset/--seeds: the last seed would be {last_seed}; seeds are "
                          f"32-bit, at most {MAX_SEED}")
    import envs

    try:
        for module in args.env_module:
            envs.import_env_module(module)
    except ValueError as e:  # envs never imports jaxrl, so it raises a plain ValueError
        raise ConfigError(str(e)) from None
    given = given_fields(args, spec.Config)
    args.env_fields = {k: v for k, v in env_fields(args.algo, args.env).items() if k not in given
                       } if args.env_settings else {}
    given = args.env_fields | given
    config = make_config(spec.Config, given)
    configs = sweep_configs(args, config, given) if args.command == "sweep" else [config]
    if args.command == "sweep" and args.single_task:
        raise ConfigError("--single-task: sweeps tune one config for the selected tasks together; "
                          "sweep each task with --tasks ID instead")
    from jaxrl.runner import make_plan

    seeds = range(getattr(args, "seed_offset", 0), getattr(args, "seed_offset", 0) + args.seeds)
    init_params = init_params_from(args) if getattr(args, "init_from", None) else None
    if getattr(args, "wandb", False):
        import importlib.util

        if importlib.util.find_spec("wandb") is None:
            raise ConfigError("--wandb: wandb is not installed; pip install -e '.[wandb]'")
    if args.hide_task_id and args.env not in envs.FAMILIES:
        raise ConfigError(f"--hide-task-id: {args.env} is not a task family; families: "
                          f"{', '.join(envs.FAMILIES)}")
    if args.command == "sweep":  # one plan per group of configs sharing static fields
        from jaxrl.sweep import plan_sweep

        args.plans = plan_sweep(args.algo, args.env, configs, args.seeds, **task_options(args))
    else:
        args.plan = make_plan(args.algo, args.env, configs, seeds, init_params=init_params,
                              **task_options(args))
    args.claim = None
    if args.command == "train" and args.dry_run or not distributed.is_main():
        return args, configs  # only process 0 checks and claims --out: the others write nothing
    args.out, args.replaces = check_out(args.out, args.overwrite)
    resume = args.command == "train" and args.resume
    if resume:
        check_resumable(partial_of(args.out), run_record(args, config))
    args.claim = Claim(args.out, resume=resume, can_resume=args.command == "train")
    return args, configs


def init_params_from(args: argparse.Namespace):
    """--init-from RUN: the first --seeds seeds' trained params of RUN, checked to come from the
    same algo and env (make_plan checks that they fit this run's network) before compiling."""
    import jax

    from jaxrl.trained import load

    try:
        source = load(args.init_from)
    except ConfigError as e:
        raise ConfigError(f"--init-from: {str(e).removeprefix('RUN: ')}") from None
    if source.single_task:
        raise ConfigError(f"--init-from: {args.init_from} trained each task on its own network "
                          "(--single-task); fine-tune from a run of one network per seed")
    if (source.algo, source.record["env"]) != (args.algo, args.env):
        raise ConfigError(f"--init-from: {args.init_from} trained {source.algo} on "
                          f"{source.record['env']}; this run is {args.algo} on {args.env}")
    if len(source.seeds) < args.seeds:
        raise ConfigError(f"--init-from: {args.init_from} has {len(source.seeds)} seeds, fewer "
                          f"than --seeds {args.seeds}")
    return jax.tree.map(lambda x: x[:args.seeds], source.params)


def check_resumable(partial: str, record: dict) -> None:
    """Raise ConfigError unless `partial` holds an unfinished run whose config.json records
    `record` exactly (every option that shapes the run, the device count included)."""
    path = os.path.join(partial, "config.json")
    if not os.path.isdir(partial):
        raise ConfigError(f"--resume: no unfinished run at {partial}")
    try:
        with open(path) as f:
            saved = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"--resume: {partial} has no config.json, so it cannot be resumed; "
                          "delete that folder and start again") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"--resume: {path} is unreadable ({type(e).__name__}: "
                          f"{str(e).splitlines()[0]}); delete {partial} and start again") from None
    for key, value in record.items():
        default = 1 if key == "num_processes" else None  # runs from before multi-process runs
        if not isinstance(saved, dict) or saved.get(key, default) != value:
            had = saved.get(key, default) if isinstance(saved, dict) else None
            name = ("the device count, all processes together (JAXRL_CPU_DEVICES on the CPU)"
                    if key == "num_devices" else option(key))
            raise ConfigError(f"--resume: {name} is {value!r} here but {had!r} in the unfinished "
                              f"run {partial}")


def parse_tasks(text: str) -> list[int] | None:
    """--tasks: None for all, else the task ids."""
    if text.strip() == "all":
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--tasks: expected all or comma-separated task ids such as 0,2, "
                          f"got {text!r}") from None


def task_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of `make_plan` that --tasks, --single-task, --hide-task-id give."""
    return dict(tasks=parse_tasks(args.tasks), single_task=args.single_task,
                env_kwargs={"one_hot": False} if args.hide_task_id else None)


def sweep_configs(args: argparse.Namespace, base, given: dict) -> list:
    """The configs of a sweep: the --grid product, or --random draws from the --range fields.
    `given`: the config options on the command line (a grid point over a static choice gets
    that choice's own defaults for the others)."""
    from jaxrl.sweep import grid_configs, parse_values, random_configs

    fields = {f.name: f for f in dataclasses.fields(base)}

    def field_of(flag: str, text: str):
        name, sep, values = text.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in fields:
            raise ConfigError(f"{flag}: expected FIELD=VALUES with FIELD one of "
                              f"{', '.join(fields)}; got {text!r}")
        return fields[name], values

    if args.random:
        if args.grid or not args.range:
            raise ConfigError("--random: give the fields to draw as --range FIELD=LO:HI[:log], "
                              "and no --grid")
        ranges = {}
        for text in args.range:
            field, spec = field_of("--range", text)
            if field.name in ranges:
                raise ConfigError(f"--range: {field.name} is given twice; give each field once")
            parts = spec.split(":")
            try:
                lo, hi = float(parts[0]), float(parts[1])
            except (ValueError, IndexError):
                raise ConfigError(f"--range: expected LO:HI[:log], got {spec!r}") from None
            log = parts[2:] == ["log"]
            if (field.metadata.get("static") or not math.isfinite(lo) or not math.isfinite(hi)
                    or not lo < hi or (log and lo <= 0) or len(parts) > 2 + log):
                raise ConfigError(f"--range {field.name}: needs a float field and finite LO < HI "
                                  "(LO > 0 for log)")
            ranges[field.name] = (lo, hi, log)
        return random_configs(base, ranges, args.random)
    if not args.grid:
        raise ConfigError("--grid: give at least one --grid FIELD=V1,V2 (or --random N with --range)")
    grid = {}
    for text in args.grid:
        field, values = field_of("--grid", text)
        if field.name in grid:
            raise ConfigError(f"--grid: {field.name} is given twice; list all its values in one "
                              f"--grid {field.name}=V1,V2,...")
        grid[field.name] = parse_values(field, values)
    return grid_configs(base, grid, given)


def run_record(args: argparse.Namespace, config: Any) -> dict:
    """What config.json records, and what --resume checks against."""
    from jaxrl.config import to_dict

    import jax

    record = {"algo": args.algo, "env": args.env, "env_modules": args.env_module,
              "seed_offset": args.seed_offset,
              "seeds": args.seeds, "checkpoint_every": args.checkpoint_every,
              "max_batch": args.max_batch, "tasks": args.tasks, "single_task": args.single_task,
              "hide_task_id": args.hide_task_id, "eval_every": args.eval_every,
              "eval_episodes": args.eval_episodes, "num_processes": jax.process_count(),
              "num_devices": jax.device_count(),
              "init_from": args.init_from and os.path.abspath(args.init_from),
              "env_settings": args.env_fields, **to_dict(config)}
    return json.loads(json.dumps(record))  # tuples as lists, as read back from the file


def train_command(args: argparse.Namespace, configs: list) -> dict:
    import jax

    from jaxrl import distributed, enable_compilation_cache
    from jaxrl.live import LiveTable, LiveTensorBoard, LiveWandb
    from jaxrl.runner import execute
    from jaxrl.trained import save_params

    enable_compilation_cache()
    config = configs[0]
    if args.dry_run:
        plan = execute(args.plan, max_batch=args.max_batch, dry_run=True)
        print(json.dumps(plan, indent=2))
        return plan
    options = dict(max_batch=args.max_batch, checkpoint_every=args.checkpoint_every,
                   eval_every=args.eval_every, eval_episodes=args.eval_episodes, keep_params=True)
    if not distributed.is_main():  # process 0's program and collectives; it writes, not this one
        execute(args.plan, progress=None, **options, checkpoint_dir=os.path.join(
            partial_of(args.out), "checkpoints") if args.checkpoint_every else None)
        return {}
    claim = args.claim  # OUT.partial, renamed to --out once complete; holds checkpoints until then
    if not args.resume:
        with open(claim.path("config.json"), "w") as f:
            json.dump(run_record(args, config), f, indent=2)
    steps = args.plan.trainer.num_updates * args.plan.spec.steps_per_update(config)
    if args.env_fields:
        print(f"{args.env}'s recommended settings for {args.algo}: {as_options(args.env_fields)} "
              "(--no-env-settings: the algorithm's defaults)", flush=True)
    print(f"training {args.algo} on {args.env}: {args.seeds} seeds x {steps} steps",
          flush=True)
    checkpoints = claim.path("checkpoints")
    sinks = [LiveTable(claim.path("metrics.csv"))]
    if args.tensorboard:  # a resumed run replays its earlier segments into fresh event files
        shutil.rmtree(claim.path("tensorboard"), ignore_errors=True)
        sinks.append(LiveTensorBoard(claim.path("tensorboard")))
    if args.wandb:
        sinks.append(LiveWandb(claim.path("wandb"), os.path.basename(args.out),
                               run_record(args, config)))
    results = execute(args.plan, on_segment=lambda rows: [sink(rows) for sink in sinks],
                      progress=lambda line: print(line, flush=True), **options,
                      checkpoint_dir=checkpoints if args.checkpoint_every else None)
    summary = results.summary()
    # Leaves [configs, seeds, ...]; a single-task run's configs are its tasks: all are kept.
    save_params(claim.partial, results.final_params if results.single_task
                else jax.tree.map(lambda x: x[0], results.final_params))
    results.to_dataframe().to_csv(claim.path("metrics.csv.tmp"), index=False)
    os.replace(claim.path("metrics.csv.tmp"), claim.path("metrics.csv"))
    for sink in sinks[1:]:
        sink.close()
    with open(claim.path("summary.json"), "w") as f:  # last: it marks a finished run
        json.dump(summary, f, indent=2)
    shutil.rmtree(checkpoints, ignore_errors=True)
    claim.finish(args.replaces)
    final = summary["final_return"]
    if final["iqm"] is None:
        print("final return: no episode finished in the last 10% of updates")
    else:
        print(f"final return IQM {final['iqm']:.1f} (95% CI {final['ci95'][0]:.1f} to "
              f"{final['ci95'][1]:.1f}) over {summary['num_seeds']} seeds; "
              f"{summary['env_steps_per_second']:,.0f} env steps/s; "
              f"compile {summary['compile_seconds']:.1f}s; results in {args.out}")
    success = success_text(summary.get("final_success"))
    if success:
        print(f"final{success[1:]}")
    for task in summary.get("per_task", []):
        task_final = task["final_return"]
        if task_final["iqm"] is not None:
            print(f"  task {task['task']} ({task['name']}): IQM {task_final['iqm']:.1f} (95% CI "
                  f"{task_final['ci95'][0]:.1f} to {task_final['ci95'][1]:.1f})"
                  f"{success_text(task.get('final_success'))}")
    if "eval" in final:
        print(f"greedy evaluation return IQM {final['eval']['iqm']:.1f} (95% CI "
              f"{final['eval']['ci95'][0]:.1f} to {final['eval']['ci95'][1]:.1f})")
    if summary["diverged_seeds"]:
        print(f"diverged (NaN/inf in the final state): seeds {summary['diverged_seeds']}")
    return summary


def sweep_command(args: argparse.Namespace, configs: list) -> dict:
    import pandas as pd

    from jaxrl import distributed, enable_compilation_cache
    from jaxrl.config import to_dict
    from jaxrl.sweep import sweep_plans

    enable_compilation_cache()
    if not distributed.is_main():  # process 0's programs and collectives; it writes, not this one
        sweep_plans(args.plans, test_seeds=args.test_seeds, max_batch=args.max_batch,
                    progress=None, eval_every=args.eval_every, eval_episodes=args.eval_episodes)
        return {}
    print(f"sweeping {args.algo} on {args.env}: {len(configs)} configs x {args.seeds} tuning seeds, "
          f"then the best on {args.test_seeds} test seeds", flush=True)
    result = sweep_plans(args.plans, test_seeds=args.test_seeds, max_batch=args.max_batch,
                         progress=lambda line: print(line, flush=True),
                         eval_every=args.eval_every, eval_episodes=args.eval_episodes)
    summary = result.summary()
    claim = args.claim
    with open(claim.path("config.json"), "w") as f:
        json.dump(json.loads(json.dumps({"algo": args.algo, "env": args.env,
                                         "configs": [to_dict(c) for c in configs]})), f, indent=2)
    frames, offset = [], 0
    for group in result.tuning:  # one metrics table, config ids unique across static groups
        frame = group.to_dataframe()
        frame["config"] += offset
        offset += len(group.configs)
        frames.append(frame)
    pd.concat(frames).to_csv(claim.path("metrics.csv"), index=False)
    result.results_frame().to_csv(claim.path("results.csv"), index=False)
    if args.tensorboard:
        for g, group in enumerate(result.tuning):
            group.to_tensorboard(claim.path("tensorboard", f"group_{g}"))
    with open(claim.path("summary.json"), "w") as f:  # last: it marks a finished run
        json.dump({"algo": args.algo, "env": args.env, "num_seeds": args.seeds, **summary}, f,
                  indent=2)
    claim.finish(args.replaces)
    best = {k: v for k, v in summary["best_config"].items()
            if any(k == g.split("=")[0].strip().replace("-", "_") for g in args.grid)
            or any(k == r.split("=")[0].strip().replace("-", "_") for r in args.range)}
    print(f"best on tuning seeds: {best}; {summary['compiles']} compiles")
    if "test" in summary and summary["test"]["iqm"] is not None:
        test = summary["test"]
        print(f"test seeds: IQM final return {test['iqm']:.1f} (95% CI {test['ci95'][0]:.1f} to "
              f"{test['ci95'][1]:.1f}) over {len(test['seeds'])} fresh seeds; results in {args.out}")
    return summary


def render_command(args: argparse.Namespace) -> str:
    """Check the render options, then roll out and write the GIF."""
    import envs

    for name in ("steps", "size", "fps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ConfigError(f"--{name}: got {getattr(args, name)}, must be >= 1")
    if not args.out.lower().endswith(".gif"):
        raise ConfigError(f"--out: got {args.out!r}; render writes a GIF (a name ending in .gif)")
    if os.path.lexists(args.out):
        raise ConfigError(f"--out: {args.out} already exists; choose a new file")
    if args.run_dir is not None:
        from jaxrl.trained import load

        if args.env is not None:
            raise ConfigError("--env: with RUN the env is the run's; give one of them")
        run = load(args.run_dir)
        seed = run.seeds[0] if args.seed is None else args.seed
        run.seed_index(seed)
        out = run.render(seed, args.out, steps=args.steps or 200, key=args.key, task=args.task,
                         fps=args.fps, size=args.size)
        ends = out["episode_ends"]
        return (f"{out['path']}: seed {seed}, {out['steps']} steps, "
                + (f"episodes ended at steps {ends}" if ends else "no episode ended"))
    if args.env is None:
        raise ConfigError("render: give RUN (a trained run) or --env (an MJX task family or "
                          "brax/NAME)")
    try:
        env, table = envs.make(args.env)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if not hasattr(env, "mj_model"):
        raise ConfigError(f"--env: {args.env} is not a MuJoCo env; render needs one of "
                          "WalkerMorph-v0, WalkerSkills-v0, ReacherLinks-v0 or brax/NAME")
    task = args.task or 0
    if not envs.is_table(table) and args.task is not None:
        raise ConfigError(f"--task: {args.env} is not a task family")
    if not 0 <= task < envs.num_tasks(table):
        raise ConfigError(f"--task: got {task}; {args.env} has tasks 0..{envs.num_tasks(table) - 1}")
    import jax
    import jax.numpy as jnp

    from envs.render import gl_backend, render_gif

    if gl_backend() is None:
        raise ConfigError("render: no headless GL backend works here (tried MUJOCO_GL=egl and "
                          "osmesa); install Mesa's EGL or OSMesa")
    params = envs.task(table, task) if envs.is_table(table) else table
    space = env.action_space(params)
    key = jax.random.PRNGKey(args.seed or 0)
    steps = args.steps or 100
    if args.policy == "zero":
        actions = jnp.zeros((steps,) + space.shape)
    else:
        actions = jax.random.uniform(key, (steps,) + space.shape, minval=space.low,
                                     maxval=space.high)
    return render_gif(env, params, actions, args.out, key, fps=args.fps, width=args.size,
                      height=args.size)


def eval_command(args: argparse.Namespace) -> dict:
    """Evaluate every seed of a finished run; print the IQM with its CI and write eval.json."""
    from jaxrl.runner import iqm_summary
    from jaxrl.trained import load

    if args.episodes < 1:
        raise ConfigError(f"--episodes: got {args.episodes}, must be >= 1")
    out = args.out or os.path.join(args.run_dir, "eval.json")
    if os.path.lexists(out) and not args.overwrite:
        raise ConfigError(f"--out: {out} already exists; choose a new file or pass --overwrite")
    run = load(args.run_dir)
    stats = run.evaluation(args.episodes, args.key, args.task)  # "return" (and "success")
    ids = run.task_ids() if args.task is None else None
    if run.single_task and ids:  # [tasks, seeds], each task's networks; overall the seed means
        per_task = [{k: v[i] for k, v in stats.items()} for i in range(len(ids))]
        stats = {k: v.mean(0) for k, v in stats.items()}
    else:  # one network for every task: also each task's episodes alone (one compiled program)
        per_task = [run.evaluation(args.episodes, args.key, t) for t in ids] if ids and len(ids) > 1 else []
    result = {"run": os.path.abspath(args.run_dir), "episodes": args.episodes, "key": args.key,
              "task": args.task, "seeds": run.seeds,
              **{name: iqm_summary(v, 10_000) for name, v in stats.items()}}
    if per_task:
        result["per_task"] = [{"task": t, "name": run.env.task_names[t],
                               **{name: iqm_summary(v, 10_000) for name, v in task.items()}}
                              for t, task in zip(ids, per_task)]
    with open(out + ".tmp", "w") as f:
        json.dump(result, f, indent=2)
    os.replace(out + ".tmp", out)
    r = result["return"]
    print(f"greedy return IQM {r['iqm']:.1f} (95% CI {r['ci95'][0]:.1f} to {r['ci95'][1]:.1f}) over "
          f"{len(run.seeds)} seeds, {args.episodes} episodes each"
          + ("" if args.task is None else f", task {args.task}") + f"{success_text(result.get('success'))}; written to {out}")
    for task in result.get("per_task", []):
        r = task["return"]
        print(f"  task {task['task']} ({task['name']}): IQM {r['iqm']:.1f} (95% CI "
              f"{r['ci95'][0]:.1f} to {r['ci95'][1]:.1f}){success_text(task.get('success'))}")
    return result


def success_text(stats: dict | None) -> str:
    """"; success rate IQM r (95% CI lo to hi)" for an iqm_summary of success rates over seeds,
    "" where the env reports no success."""
    if not stats or stats.get("iqm") is None:
        return ""
    return (f"; success rate IQM {stats['iqm']:.2f} (95% CI {stats['ci95'][0]:.2f} to "
            f"{stats['ci95'][1]:.2f})")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv or argv[0] in ("-h", "--help"):
            build_parser(None).print_help()
            return 0 if argv else 2
        if argv[0] == "plot":
            from jaxrl.plots import plot_run

            args = build_parser(None).parse_args(argv)
            for path in plot_run(args.run_dir, args.out):
                print(path)
            return 0
        if argv[0] == "render":
            print(render_command(build_parser(None).parse_args(argv)))
            return 0
        if argv[0] == "eval":
            eval_command(build_parser(None).parse_args(argv))
            return 0
        if argv[0] not in ("train", "sweep"):
            raise ConfigError(f"unknown command {argv[0]!r}; allowed: train, sweep, eval, plot, "
                              "render")
        args, configs = parse_run(argv)
    except ValueError as e:  # ConfigError, or a plain ValueError from envs/plots on bad input
        print(f"jaxrl: error: {e}", file=sys.stderr)
        return 2
    try:
        (sweep_command if args.command == "sweep" else train_command)(args, configs)
    except ConfigError as e:  # found while planning, before anything ran
        print(f"jaxrl: error: {e}", file=sys.stderr)
        if args.claim is not None:
            args.claim.abandon()
        return 2
    except KeptPartial as e:
        print(f"jaxrl: error: {e}; move it into place by hand", file=sys.stderr)
        return 1
    except Exception as e:
        io_error = system_error(e)
        if io_error is None or args.claim is None:
            raise
        resume = "resume it with --resume" if args.command == "train" else "delete it"
        print(f"jaxrl: error: {io_error}; the unfinished run stays in {args.claim.partial} "
              f"({resume} once that is fixed)", file=sys.stderr)
        return 1
    finally:
        if args.claim is not None:
            args.claim.release()
    return 0


def system_error(error: BaseException) -> str | None:
    """One line for an I/O or system failure anywhere in `error`'s chain (a full disk inside
    orbax included), None for anything else (a bug: its traceback is shown)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno is not None:
            where = f" writing {error.filename}" if error.filename else ""
            return f"{error.strerror or os.strerror(error.errno)}{where}"
        if "No space left on device" in str(error):
            return "No space left on device"
        error = error.__cause__ or error.__context__
    return None
