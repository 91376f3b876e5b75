"""A sweep over seeds or folds, summarised: one row per configuration (its runs' config_group tag, the
same across seeds, folds and split seeds) with the number of finished runs, the mean and standard deviation of what they
measured, a 95% interval of the mean, and Welch's test against the best configuration.

With data.split_seed fixed, the seeds differ only in the initial weights, the order of the batches
and dropout: the spread is the training's own variance on one validation split. Over folds
(data.folds, data.fold) the validation reviews differ too.
"""

import math
import statistics
import warnings

from imdb_exp.analysis import transduction
from imdb_exp.config.identity import override_key

# Keys whose values repeat one configuration: the weights' seed, the fold held out, the split's seed.
REPLICATES = ("trainer.seed", "data.fold", "data.split_seed")
MEASURES = ("test_accuracy", "test_auc", "final_val_accuracy", "fit_seconds")
COMPARED = ("test_accuracy", "final_val_accuracy")  # with a 95% interval and a test against the best
COMPARISON = ("ci_low", "ci_high", "diff_vs_best", "p_vs_best")
COLUMNS = [
    "configuration",
    "n",
    *(f"{m}_{stat}" for m in MEASURES for stat in ("mean", "sd", *(COMPARISON if m in COMPARED else ()))),
]
LEVEL = 0.05  # the significance level the words in summary.md use


ONLY_REPLICATES = "all"  # the configuration's name in a sweep that varies only seeds or folds
# The name of the one configuration whose label has nothing the others lack: it keeps its presets'
# values where the others set their own (a sweep over data.unlabeled=[],[test] labels the first so).
AT_PRESETS = "presets"


def shown_names(labels: list[str]) -> dict[str, str]:
    """Each configuration's label less the words all of them share: what tells them apart."""
    words = [label.split() for label in labels]
    shared = set.intersection(*map(set, words)) if words else set()
    unnamed = ONLY_REPLICATES if len(labels) == 1 else AT_PRESETS
    return {
        label: " ".join(w for w in split if w not in shared) or unnamed
        for label, split in zip(labels, words, strict=True)
    }


def replicates_vary(varies: list[str]) -> bool:
    """Whether a sweep that varies these keys repeats configurations over seeds or folds. Asked of the
    sweep, not of its runs' overrides: a job whose config an earlier run of its own had already
    trained counts that run, whose overrides need not name the seed (it may have been the default)."""
    return any(override_key(key) in REPLICATES for key in varies)


def finished(row: dict) -> bool:
    """A job that ended with a model: FINISHED and not pruned (a pruned trial has no test metrics)."""
    return row["status"] == "FINISHED" and row["test_accuracy"] is not None


def by_configuration(rows: list[dict]) -> list[dict]:
    """One summary row per configuration, in the order the jobs came; n counts its finished runs."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["configuration"], []).append(row)
    summary, samples, names = [], [], shown_names(list(groups))
    for label, members in groups.items():
        done = [row for row in members if finished(row)]
        entry = {"configuration": names[label], "label": label, "n": len(done)}
        entry["transductive"], values_of = any(row.get("transductive") for row in members), {}
        for measure in MEASURES:
            values = values_of[measure] = [row[measure] for row in done if row[measure] is not None]
            entry[f"{measure}_mean"] = statistics.fmean(values) if values else None
            entry[f"{measure}_sd"] = statistics.stdev(values) if len(values) > 1 else None
            if measure in COMPARED:
                entry[f"{measure}_ci_low"], entry[f"{measure}_ci_high"] = interval(values)
        summary.append(entry)
        samples.append(values_of)
    for measure in COMPARED:
        _compare_with_the_best(summary, [values[measure] for values in samples], measure)
    return summary


def interval(values: list[float]) -> tuple[float | None, float | None]:
    """The 95% confidence interval of the mean (Student's t, n - 1 degrees of freedom); None below n = 2."""
    if len(values) < 2:
        return None, None
    from scipy import stats

    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    mean = statistics.fmean(values)
    return mean - half, mean + half


def _compare_with_the_best(summary: list[dict], samples: list[list[float]], measure: str) -> None:
    """Each configuration's difference of means from the one with the highest mean, and Welch's t-test
    p-value for it (unequal variances; two-sided); None where a side has fewer than 2 runs."""
    from scipy import stats

    means = [entry[f"{measure}_mean"] for entry in summary]
    if all(mean is None for mean in means):  # no configuration finished a run: nothing to compare
        for entry in summary:
            entry[f"{measure}_diff_vs_best"] = entry[f"{measure}_p_vs_best"] = None
        return
    best = max(range(len(summary)), key=lambda i: -math.inf if means[i] is None else means[i])
    for entry, values in zip(summary, samples, strict=True):
        entry[f"{measure}_diff_vs_best"] = None if not values else statistics.fmean(values) - means[best]
        comparable = entry is not summary[best] and len(values) > 1 and len(samples[best]) > 1
        with warnings.catch_warnings():  # runs of nearly equal values: SciPy warns, and its p-value is NaN (None)
            warnings.simplefilter("ignore", RuntimeWarning)
            p = stats.ttest_ind(values, samples[best], equal_var=False).pvalue if comparable else None
        entry[f"{measure}_p_vs_best"] = None if p is None or math.isnan(p) else float(p)


def in_words(summary: list[dict]) -> str:
    """Which configurations a test at the 5% level tells apart from the best, per compared measure."""
    lines = []
    for measure in COMPARED:
        ranked = [entry for entry in summary if entry[f"{measure}_mean"] is not None]
        if not ranked:
            continue
        best = max(ranked, key=lambda entry: entry[f"{measure}_mean"])
        lines.append(f"- {measure}: best `{best['configuration']}`, mean {best[f'{measure}_mean']:.4f} "
                     f"(n={best['n']}).")  # fmt: skip
        for entry in ranked:
            if entry is best:
                continue
            p, diff = entry[f"{measure}_p_vs_best"], entry[f"{measure}_diff_vs_best"]
            name = f"`{entry['configuration']}` ({diff:+.4f})"
            if p is None:
                lines.append(f"  - {name}: too few runs to test (n={entry['n']}).")
            elif p < LEVEL:
                lines.append(f"  - {name}: lower beyond chance (Welch p={p:.3g} < {LEVEL}).")
            else:
                lines.append(f"  - {name}: not distinguishable from the best at {LEVEL:.0%} (Welch p={p:.3g}).")
    transductive = [f"`{entry['configuration']}`" for entry in summary if entry.get("transductive")]
    if lines and transductive and len(transductive) < len(summary):
        lines.append(f"- Warning: {', '.join(transductive)} {transduction.LEARNED_FROM_TEST}: "
                     "test metrics are not comparable with the others'.")  # fmt: skip
    return "\n".join(lines) + "\n" if lines else ""


def curves_by_configuration(rows: list[dict], curves: list[list[float]], summary: list[dict]):
    """(summary entry, the validation curves of its finished runs), for each configuration with some."""
    for entry in summary:
        runs = [c for row, c in zip(rows, curves, strict=True)
                if row["configuration"] == entry["label"] and finished(row) and c]  # fmt: skip
        if runs:
            yield entry, runs


def curve_bands(curves: list[list[float]]) -> tuple[list[float], list[float]]:
    """Mean and sd per epoch over runs' curves; runs stopped early count for the epochs they had."""
    means, sds = [], []
    for epoch in range(max(map(len, curves), default=0)):
        values = [curve[epoch] for curve in curves if len(curve) > epoch]
        means.append(statistics.fmean(values))
        sds.append(statistics.stdev(values) if len(values) > 1 else 0.0)
    return means, sds
