"""What the chapters' tables and figures share: mean ± std over trials, the paper's ±1 std bands,
the students' evaluation curves, readable names and the book's type sizes."""

import math
import re

import matplotlib.pyplot as plt
import pandas as pd

NAMES = {
    "cifar10_jpeg": "CIFAR-10 (JPEG q75)",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
    "emnist": "EMNIST",
    "svhn": "SVHN",
    "lenet5": "LeNet-5",
    "vgg16": "VGG-16",
    "imdb": "IMDB",
    "bilstm": "biLSTM",
}


def name(key: str) -> str:
    """A dataset's or network's name as the paper writes it ('preresnet8' -> 'PreResNet-8'), for
    titles and tick labels; an unknown key as it is."""
    resnet = re.fullmatch(r"preresnet(\d+)(_basic)?", key)
    if resnet:
        return f"PreResNet-{resnet[1]}" + (" (basic blocks)" if resnet[2] else "")
    return NAMES.get(key, key)


# Class names in label order, for tick labels; other datasets show class indices.
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"
)  # fmt: skip
CLASSES = {"cifar10": CIFAR10_CLASSES, "cifar10_jpeg": CIFAR10_CLASSES}


def class_name(dataset: str, label: int) -> str:
    """Label `label`'s class name in `dataset` ('cifar10_jpeg', 3 -> 'cat'), or the label itself."""
    names = CLASSES.get(dataset)
    return names[label] if names and 0 <= label < len(names) else str(label)


def mean_std(table: pd.DataFrame, by: list[str], cols: list[str]) -> pd.DataFrame:
    """Mean, sample std (ddof=1; 0 for one seed) and count over trials, one row per group."""
    g = table.groupby(by)[cols]
    out = g.mean().add_suffix("_mean").join(g.std(ddof=1).fillna(0.0).add_suffix("_std"))
    return out.join(g.size().rename("n")).reset_index()


def std(values) -> float:
    """Sample standard deviation over trials (ddof=1), 0 for a single trial."""
    return float(pd.Series(values).std(ddof=1)) if len(values) > 1 else 0.0


def pm(mean: float, std: float, scale: float = 100.0, digits: int = 1) -> str:
    """'87.3 ± 0.4' (scale 100 turns fractions into percent)."""
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def span(values, scale: float = 100.0, digits: int = 1) -> str:
    """'99.0–99.8' over the values, or one number when they all print the same ('100.0')."""
    low, high = (f"{x * scale:.{digits}f}" for x in (min(values), max(values)))
    return low if low == high else f"{low}–{high}"


def listed(words: list[str], sep: str = ", ") -> str:
    """['a', 'b', 'c'] -> 'a, b and c' (`sep` between all but the last two)."""
    return words[0] if len(words) == 1 else sep.join(words[:-1]) + " and " + words[-1]


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten(x: float) -> str:
    """1e-06 -> '10⁻⁶', as the paper's tables write learning rates and weight decays; a number
    that is no power of ten as `:g` prints it (0.05 -> '0.05')."""
    if x > 0:
        e = round(math.log10(x))
        if x == 10.0**e:
            return "10" + str(e).translate(SUPERSCRIPT)
    return f"{x:g}"


def band(ax, x, mean, std, label: str, **kw) -> None:
    """A mean line with a ±1 std band, the paper's way of showing trials."""
    (line,) = ax.plot(x, mean, label=label, **{"marker": "o", **kw})
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)


def curves(
    plan, results: list[dict], keys: tuple[str, ...] = ("train_agreement", "agreement")
) -> pd.DataFrame:
    """The students' evaluation curves, one row per (run, evaluation): labels, progress (fraction of
    steps), keys."""
    return pd.DataFrame(
        [
            {**labels, "progress": row["step"] / res["steps"], **{k: row[k] for k in keys}}
            for (labels, _), res in zip(plan.rows, results)
            if labels["role"] == "student"
            for row in res["curves"]
        ]
    )


# Type sizes for the book's pages: a figure is scaled to the text width (about 7.5 inches), so a
# two- or three-panel figure of 10-13 inches shrinks matplotlib's 10-pt default to 7-8 px; these
# keep ticks, labels and legends readable at that scale (a 1,280-px window shows about 600 px).
STYLE = {
    "font.size": 14,
    "axes.titlesize": 14,
    "axes.labelsize": 14,
    "xtick.labelsize": 13,
    "ytick.labelsize": 13,
    "legend.fontsize": 12,
}


def book_style() -> None:
    """Every chapter's figures in the book's type sizes (`STYLE`); a notebook calls it once."""
    plt.rcParams.update(STYLE)
