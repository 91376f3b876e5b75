"""Matplotlib figures of a run: learning curves as the source notebooks draw them, and test verdicts.

Figures are built as plain ``Figure`` objects rather than through pyplot: no GUI backend is
involved and nothing stays registered after the figure is saved, which matters in long sweeps.
"""

import textwrap

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from imdb_exp.analysis import evaluation
from imdb_exp.analysis.evaluation import RocCurve
from imdb_exp.data.labels import THRESHOLD
from imdb_exp.tracking import record


def _run_figure(width: float, height: float) -> Figure:
    """An empty figure for one plot of a run, its margins fixed in inches and wide enough for the labels.
    Every run saves five; a "tight" layout would measure each label in an extra drawing pass
    (docs/benchmarks.md measures the cost)."""
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=0.95 / width, right=1 - 0.25 / width, bottom=0.6 / height, top=1 - 0.4 / height)
    return fig


def learning_curve(history: dict[str, list[float]], metric: str) -> Figure:
    """``metric`` per epoch for training (dots) and validation (line), when validation ran."""
    fig = _run_figure(6, 4)
    ax = fig.subplots()
    epochs = range(1, len(history[metric]) + 1)
    ax.plot(epochs, history[metric], "o", label=f"training {metric}")
    if f"val_{metric}" in history:
        ax.plot(epochs, history[f"val_{metric}"], "-", label=f"validation {metric}")
    ax.set(xlabel="epoch", ylabel=metric, title=f"Training and validation {metric}")
    ax.legend()
    return fig


def probability_distribution(labels: np.ndarray, probabilities: np.ndarray) -> Figure:
    """Violins of the predicted probability of "positive", for negative and positive reviews."""
    fig = _run_figure(6, 4)
    ax = fig.subplots()
    groups = [probabilities[labels == c] for c in (0, 1)]
    present = [i for i, group in enumerate(groups) if len(group)]
    ax.violinplot([groups[i] for i in present], positions=present, showmedians=True)
    ax.axhline(THRESHOLD, color="grey", linestyle=":", linewidth=1)
    ax.set(xticks=[0, 1], xticklabels=["negative reviews", "positive reviews"], ylim=(0, 1))
    ax.set(ylabel="predicted probability of positive", title="Test predictions by true label")
    return fig


def confusion_matrix(counts: np.ndarray) -> Figure:
    fig = _run_figure(4.5, 4)
    ax = fig.subplots()
    ax.imshow(counts, cmap="Blues")
    for (row, col), count in np.ndenumerate(counts):
        color = "white" if count > counts.max() / 2 else "black"
        ax.text(col, row, f"{count:,}", ha="center", va="center", color=color)
    names = ["negative", "positive"]
    ax.set(xticks=[0, 1], xticklabels=names, yticks=[0, 1], yticklabels=names)
    ax.set(xlabel="predicted", ylabel="true", title="Test confusion matrix")
    return fig


def roc_curve(curve: RocCurve) -> Figure:
    fig = _run_figure(4.5, 4.5)
    ax = fig.subplots()
    ax.plot(curve.false_positive_rate, curve.true_positive_rate, label=f"AUC = {curve.auc:.4f}")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="Test ROC curve", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="lower right")
    return fig


# A run's evaluation figures: artifact path -> how it is drawn from the test labels and probabilities.
EVALUATION_FIGURES = {
    record.PROBABILITIES_FIGURE: probability_distribution,
    record.CONFUSION_FIGURE: lambda y, p: confusion_matrix(evaluation.confusion_matrix(y, p)),
    record.ROC_FIGURE: lambda y, p: roc_curve(evaluation.roc_curve(y, p)),
}


def sweep_comparison(curves: list[list[float]], rows: list[dict]) -> Figure:
    """Above: every job's validation accuracy per epoch (a pruned or failed job's dashed); below: the test
    accuracy of every job that has one, the others said in words. Each job keeps one colour in both, and
    the lower plot's labels, the jobs' names, are the legend: it reads at 16 jobs or more."""
    palette = colormaps["tab10" if len(rows) <= 10 else "tab20"]
    colours = [palette(i % palette.N) for i in range(len(rows))]
    fig = Figure(figsize=(10, 4.3 + 0.3 * len(rows)), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=(3.5, 0.8 + 0.3 * len(rows)))
    above, below = top.subplots(), bottom.subplots()
    for row, values, colour in zip(rows, curves, colours, strict=True):
        style = "o-" if row["status"] == "FINISHED" and not row["pruned"] else "x--"
        above.plot(range(1, len(values) + 1), values, style, color=colour)
    above.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy per job")
    above.xaxis.set_major_locator(MaxNLocator(integer=True))
    _test_accuracy_bars(below, rows, colours)
    return fig


def _test_accuracy_bars(ax, rows: list[dict], colours: list) -> None:
    """Bars for the jobs with a test accuracy, on an axis kept to their values; the others in words."""
    scored = [row["test_accuracy"] for row in rows if row["test_accuracy"] is not None]
    low, high = (min(scored), max(scored)) if scored else (0.0, 1.0)
    margin = max((high - low) * 0.15, 0.005)
    start = max(low - margin, 0.0)
    for y, (row, colour) in enumerate(zip(rows, colours, strict=True)):
        value = row["test_accuracy"]
        if value is None:
            why = textwrap.shorten(row["note"] or row["status"].lower(), 80, placeholder=" ...")
            # Kept inside the plot and out of its layout: a long reason made the layout collapse the axes.
            ax.text(start, y, f"  no test accuracy: {why}", va="center", fontsize="small", style="italic",
                    color="grey", clip_on=True, in_layout=False)  # fmt: skip
            continue
        ax.barh(y, value - start, left=start, color=colour)
        ax.text(value, y, f" {value:.4f}", va="center", fontsize="small")
    ax.set(yticks=range(len(rows)), xlim=(start, min(high + 3 * margin, 1.0)), ylim=(len(rows) - 0.5, -0.5))
    ax.set(xlabel="test accuracy", title="Test accuracy per job")
    ax.set_yticklabels([row["run"] for row in rows], fontsize="small")
    for label, colour in zip(ax.get_yticklabels(), colours, strict=True):
        label.set_color(colour)


def seed_bands(bands: dict[str, tuple[list[float], list[float]]]) -> Figure:
    """Each configuration's validation accuracy per epoch: the mean over its seeds, and a band of +-1 sd."""
    fig = Figure(figsize=(7, 4.5), layout="tight")
    ax = fig.subplots()
    for name, (means, sds) in bands.items():
        epochs = np.arange(1, len(means) + 1)
        mean, sd = np.asarray(means), np.asarray(sds)
        (line,) = ax.plot(epochs, mean, "o-", label=name)
        ax.fill_between(epochs, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)
    ax.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy over seeds (mean ± sd)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if bands:
        ax.legend(fontsize="small", loc="best")
    return fig


def search_history(values: list[float | None], direction: str, pruned: dict[int, float] | None = None) -> Figure:
    """A search's trials in order: each finished trial's value, the best so far as a step line, and each
    pruned trial (``pruned``: trial -> its last reported value) marked apart, never counted as a best."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    done = [(number, value) for number, value in enumerate(values) if value is not None]
    if done:
        numbers, scores = zip(*done, strict=True)
        pick = max if direction == "maximize" else min
        best = [pick(scores[: i + 1]) for i in range(len(scores))]
        ax.plot(numbers, scores, "o", label="finished trial")
        ax.step(numbers, best, where="post", label="best so far")
    if pruned:
        ax.plot(list(pruned), list(pruned.values()), "x", color="grey", label="pruned (value when pruned)")
    if done or pruned:
        ax.legend(fontsize="small", loc="best")
    ax.set(xlabel="trial", ylabel="objective (validation accuracy)", title="Optimisation history")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def param_importances(importances: dict[str, float]) -> Figure:
    """How much each searched parameter decides the objective, as Optuna's default evaluator has it."""
    fig = Figure(figsize=(7, 1.5 + 0.4 * max(1, len(importances))), layout="tight")
    ax = fig.subplots()
    names = list(importances)
    ax.barh(range(len(names)), [importances[name] for name in names])
    ax.set(yticks=range(len(names)), xlabel="importance", title="Parameter importances", xlim=(0, 1))
    ax.set_yticklabels(names, fontsize="small")
    ax.invert_yaxis()
    return fig
