"""The one command for sweeps: `python -m kdrepro run <experiment> --profile budget [--seeds 0 1 2] [--device cpu]`.

Runs every config of the experiment that is not in the store yet (teachers first), then prints a summary table.
`python -m kdrepro list` names the experiments; `python -m kdrepro summary` regenerates the summary page's
tables (book/_generated/summary.md) from results/.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

from . import experiments, report, runs, store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdrepro", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments and their profiles")
    summary = sub.add_parser("summary", help="write the summary page's generated tables from results/")
    summary.add_argument("--out", default=str(store.REPO / "book" / "_generated" / "summary.md"))
    run = sub.add_parser("run", help="run an experiment's configs into the result store")
    run.add_argument("experiment", choices=sorted(experiments.EXPERIMENTS))
    run.add_argument("--profile", default="budget", choices=experiments.PROFILES)
    run.add_argument("--seeds", type=int, nargs="+", help="trial seeds (default: the profile's)")
    run.add_argument("--dataset", help="dataset name (default: the experiment's for this profile)")
    run.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    run.add_argument("--store-only", action="store_true", help="fail on a missing run instead of training it")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name, fn in experiments.EXPERIMENTS.items():
            print(f"{name}: {fn.__doc__.splitlines()[0]}")
        return 0
    if args.command == "summary":
        out = Path(args.out)
        store.atomic_write(out, lambda f: f.write(report.summary_markdown().encode()))
        print(f"wrote {out}")
        return 0
    kwargs = {"seeds": tuple(args.seeds) if args.seeds else None}
    if args.dataset:
        kwargs["dataset"] = args.dataset
    plan = experiments.plan(args.experiment, args.profile, **kwargs)
    results = runs.run_all(plan.configs, args.device, args.store_only)
    table = plan.table(results)
    cols = [c for c in table.columns if c in ("role", "trial", "member", "m", "extra", "distill_size", "accuracy",
                                              "agreement", "kl", "control_agreement", "wall_seconds")]
    with pd.option_context("display.width", 200, "display.max_rows", 500, "display.float_format", "{:.4f}".format):
        print(table[cols].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
