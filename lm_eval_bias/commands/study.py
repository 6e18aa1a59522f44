"""`lm-eval-bias study CONFIG.yaml`: run (or resume) a study's grid of evaluations."""

from __future__ import annotations

import logging


def run(args) -> int:
    from lm_eval_bias.study import EXECUTORS, check_tasks, load_study, plan, plan_report, run_study

    study = load_study(args.config, output_dir=args.output_dir)
    if args.dry_run:
        print(plan_report(plan(study), study.output_dir))
        return 0
    if not args.verbose:
        for name in ("lm_eval", "lm-eval", "lm_eval_bias", "transformers"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if not args.skip_task_check:
        check_tasks(study)
    if args.executor == "ray":
        executor = EXECUTORS["ray"](address=args.address, num_cpus=args.ray_num_cpus)
    else:
        executor = EXECUTORS["local"]()
    summary = run_study(study, executor, progress=not args.no_progress)
    print(summary.report())
    return summary.exit_status


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "study",
        help="run or resume a grid of evaluations declared in YAML",
        description="Run every cell (model x revision x compression x task) of a study config that is not "
        "finished yet. Exit status 1 if any cell failed.",
    )
    parser.add_argument("config", help="study YAML (see configs/)")
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: in this process, one cell after another (default); ray: one Ray task per cell",
    )
    parser.add_argument(
        "--address", help="Ray cluster to connect to (e.g. auto, ray://head:10001); default: start a local Ray"
    )
    parser.add_argument("--ray-num-cpus", type=int, help="CPUs of the local Ray started when no --address is given")
    parser.add_argument("--output-dir", help="override the config's output_dir")
    parser.add_argument(
        "--dry-run", action="store_true", help="list the cells, their hashes and whether they are finished"
    )
    parser.add_argument("--skip-task-check", action="store_true", help="do not check task names before running")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true", help="keep lm-eval's and transformers' INFO logging")
    parser.set_defaults(run=run)
