"""The one command for sweeps: `python -m kdrepro run <experiment> --profile budget [--seeds 0 1 2]
[--device cpu]`.

Runs every config of the experiment that is not in the store yet (teachers first), then prints a
summary table; `--executor ray` runs them as tasks on a Ray cluster instead (`kdrepro.cluster`).
`python -m kdrepro list` names the experiments; `python -m kdrepro summary` regenerates the summary
page's parts (book/_generated/: summary.md, summary_detail.md, replications.md) from results/.
Expected failures (bad input, missing or corrupt data, a run not in the store) print one line and
exit 2; `--debug` shows their traceback.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

from . import chapters, cluster, compute, devices, report, runs, store
from .errors import ConfigError, KdreproError
from .files import atomic_write
from .plan import PROFILES


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 0")
    return value


def _pack(text: str) -> int:
    value = _seed(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # One line, like every other expected error; `python -m kdrepro <command> -h` gives the
        # usage.
        self.exit(2, f"error: {self.prog}: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m kdrepro", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an expected error"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    # --debug is accepted after the command too; SUPPRESS keeps a subcommand from resetting it to
    # False.
    debug = _Parser(add_help=False)
    debug.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    sub.add_parser("list", parents=[debug], help="list the experiments and their profiles")
    names = sub.add_parser(
        "chapters",
        parents=[debug],
        help="the chapters' names in the book's order, on one line (the Makefile's lists)",
    )
    names.add_argument("--published", action="store_true", help="only those in the book")
    summary = sub.add_parser(
        "summary", parents=[debug], help="write the summary page's generated parts from results/"
    )
    summary.add_argument(
        "--out-dir",
        default=str(store.REPO / "book" / "_generated"),
        help=f"where to write {' and '.join(report.PAGES)}",
    )
    run = sub.add_parser(
        "run",
        parents=[debug],
        help="run the configs of every plan a chapter shows (or, with "
        "--seeds or --dataset, of one plan) into the result store",
    )
    run.add_argument("experiment", choices=sorted(chapters.CHAPTERS))
    run.add_argument("--profile", default="budget", choices=PROFILES)
    run.add_argument(
        "--seeds", type=_seed, nargs="+", help="trial seeds, integers >= 0 (default: the profile's)"
    )
    run.add_argument("--dataset", help="dataset name (default: the experiment's for this profile)")
    run.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    run.add_argument(
        "--store-only", action="store_true", help="fail on a missing run instead of training it"
    )
    run.add_argument(
        "--pack",
        type=_pack,
        default=1,
        help="train missing runs of one recipe G at a time as one "
        "packed network, teachers then students (for GPUs; default 1: one by one)",
    )
    run.add_argument(
        "--executor",
        default="local",
        choices=("local", "ray"),
        help="local: train missing runs one after another here; ray: as tasks on a Ray cluster",
    )
    run.add_argument(
        "--address", help="the Ray cluster's address, or 'auto' (default: start a local one)"
    )
    run.add_argument(
        "--gpus-per-run",
        type=float,
        help="GPUs per Ray task (0.25: four runs per GPU; default 0: train on the CPU)",
    )
    run.add_argument(
        "--cpus-per-run", type=int, help="CPUs (torch threads) per Ray task (default 1)"
    )
    return parser


def _run(args: argparse.Namespace) -> None:
    if args.command == "list":
        for name, chapter in chapters.CHAPTERS.items():
            print(
                f"{name} ({', '.join(chapters.profiles(name))}): "
                f"{chapter.plan.__doc__.splitlines()[0]}"
            )
        return
    if args.command == "chapters":
        print(" ".join(n for n, published in chapters.BOOK if published or not args.published))
        return
    if args.command == "summary":
        for name, text in report.summary_markdown().items():
            out = Path(args.out_dir) / name
            atomic_write(out, text.encode())
            print(f"wrote {out}")
        return
    chapter = chapters.get(args.experiment)
    if args.seeds or args.dataset:  # one plan, as asked
        kwargs = {
            "seeds": tuple(args.seeds) if args.seeds else None,
            **({"dataset": args.dataset} if args.dataset else {}),
        }
        plans = [chapter.plan(args.profile, **kwargs)]
    else:  # everything the chapter shows
        plans = chapters.plans(args.experiment, args.profile)
    ray_only = [
        f"--{k.replace('_', '-')}"
        for k in ("address", "gpus_per_run", "cpus_per_run")
        if getattr(args, k) is not None
    ]
    if args.executor == "local" and ray_only:
        raise ConfigError(f"{', '.join(ray_only)}: only with --executor ray")
    if args.executor == "ray" and (args.store_only or args.device != "cpu" or args.pack > 1):
        raise ConfigError(
            "--executor ray: give --gpus-per-run instead of --device, and no --store-only or --pack"
        )
    # a bad request or a missing Ray is said before anything else is printed
    if args.executor == "ray":
        cluster.check(args.gpus_per_run or 0.0, args.cpus_per_run or 1)
    if not args.store_only:
        device = devices.resolve_device(args.device).type
        print(
            f"the whole book at {args.profile}: {book_estimate(args.profile, device, args.pack)}",
            file=sys.stderr,
        )
    for plan in plans:
        if args.executor == "ray":
            results = cluster.run_all(
                plan.configs, args.address, args.gpus_per_run or 0.0, args.cpus_per_run or 1
            )
        else:
            results = runs.run_all(plan.configs, args.device, args.store_only, pack=args.pack)
        table = plan.table(results)
        cols = [
            c
            for c in (
                "role",
                "trial",
                "member",
                "m",
                "extra",
                "distill_size",
                "accuracy",
                "teacher_accuracy",
                "agreement",
                "kl",
                "control_agreement",
                "train_accuracy",
                "train_agreement",
                "late_change",
                "wall_seconds",
            )
            if c in table.columns
        ]
        with pd.option_context(
            "display.width", 200, "display.max_rows", 500, "display.float_format", "{:.4f}".format
        ):
            print(table[cols].to_string(index=False))


def book_estimate(profile: str = "budget", device_type: str = "cpu", pack: int = 1) -> str:
    """What every chapter's `profile` runs not yet stored should take on `device_type`, in packs of
    up to `pack` (runs shared by config counted once; chapters without that profile left out)."""
    configs = {
        c.run_id: c
        for name in chapters.CHAPTERS
        if profile in chapters.profiles(name)
        for p in chapters.plans(name, profile)
        for c in p.configs
    }
    return compute.estimate_line(
        [c for c in configs.values() if runs.stored(c) is None], device_type, pack=pack
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _run(args)
    except KdreproError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
