"""What a chapter cost and would cost: the compute line under its numbers (runs, hours, hardware,
commits), and estimates at the paper's scale and on one GPU from the committed benchmarks."""

import pandas as pd

from . import chapters, compute, runs


def compute_line(table: pd.DataFrame, results: list[dict]) -> str:
    """Runs, training time, hardware, stack and commits behind a chapter, and a warning for anything
    that would make its numbers less than reproducible (uncommitted code, another library stack)."""
    fp = results[0]["fingerprint"]
    line = (
        f"{len(table)} runs, {compute.duration(table.wall_seconds.sum())} of training on "
        f"{', '.join(table.device_name.unique())} (torch {fp['torch']}, numerics "
        f"v{fp['numerics']}, commits {', '.join(sorted(table.git_commit.str[:8].unique()))})."
    )
    if table.git_dirty.any():
        dirty = int(table.git_dirty.sum())
        runs_were = "run was" if dirty == 1 else "runs were"
        line += f" Warning: {dirty} {runs_were} made with uncommitted changes in kdrepro/."
    note = runs.stack_note(results)
    return f"{line} {note}" if note else line


def paper_cost(name: str) -> str:
    """What chapter `name` would cost at the paper's scale (its `paper` profile), estimated from the
    committed benchmarks (`kdrepro.compute`) on the CPU and on a GPU."""
    configs = list(
        dict.fromkeys(cfg for plan in chapters.plans(name, "paper") for cfg in plan.configs)
    )
    where = []
    for device in ("cpu", "cuda"):
        got = compute.estimate(configs, device)
        if got:
            where.append(
                f"about {compute.duration(got[0])} on the benchmarked {device.upper()} "
                f"({'; '.join(got[1])} in results/bench)"
            )
        elif device == "cuda" and all(c.model.startswith("preresnet") for c in configs):
            where.append(
                "no CUDA benchmark is committed yet; about "
                f"{compute.duration(compute.h100_seconds(configs))} on an H100, assuming the "
                "rate the gpu profiles were sized for (PreResNet-20, one network at a time)"
            )
        else:
            where.append(f"no {device.upper()} benchmark is committed yet, so no estimate there")
    return (
        f"At the paper's scale (the paper profile) this chapter is {len(configs)} runs: "
        f"{where[0]}; {where[1]}. (An extrapolation: FLOPs over the benchmarked network's rate, "
        "checked against our stored runs at budget scale only; one run at a time, packing not "
        "counted.)"
    )


def gpu_cost(name: str) -> str:
    """How long chapter `name`'s `gpu` profile should take on one GPU: the runs it adds to the
    chapters before it in the book (runs shared by config train once), from a committed CUDA
    benchmark, else at the rate it was sized by."""
    if "gpu" not in chapters.profiles(name):
        return "This chapter has no gpu profile."
    book = list(chapters.CHAPTERS)  # in the book's order, published or being rerun
    earlier = book[: book.index(name)]
    seen = {
        c.run_id
        for n in earlier
        if "gpu" in chapters.profiles(n)
        for p in chapters.plans(n, "gpu")
        for c in p.configs
    }
    configs = list(dict.fromkeys(c for p in chapters.plans(name, "gpu") for c in p.configs))
    new = [c for c in configs if c.run_id not in seen]
    if not new:
        return (
            f"On one GPU (the gpu profile) this chapter's {len(configs)} runs are all trained by "
            "earlier chapters."
        )
    got = compute.estimate(new, "cuda")
    when = (
        f"about {compute.duration(got[0])} on the benchmarked GPU ({'; '.join(got[1])} in "
        "results/bench)"
        if got
        else f"about {compute.duration(compute.h100_seconds(new))} on an H100, assuming the rate "
        "this profile was sized for (PreResNet-20, one network at a time; no CUDA benchmark is "
        "committed yet)"
    )
    packs = compute.estimate(new, "cuda", pack=2)  # any pack: the benchmark's packed rate
    packed = (
        f"; about {compute.duration(packs[0])} in packs (--pack; the packable runs at the packed "
        "rate of the same benchmarks)"
        if packs and any(" packed " in source for source in packs[1])
        else " (packing runs, --pack, should be faster)"
    )
    return (
        f"On one GPU (the gpu profile) this chapter is {len(configs)} runs, "
        f"{len(configs) - len(new)} of them trained by earlier chapters: {when}, one run at a "
        f"time{packed}."
    )
