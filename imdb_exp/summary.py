"""A sweep over seeds, summarised: one row per configuration (a job's overrides less its seed) with
the number of finished runs and the mean and standard deviation of what they measured.

With data.split_seed fixed, the seeds differ only in the initial weights, the order of the batches
and dropout: the spread is the training's own variance on one validation split.
"""

import statistics

from imdb_exp.schema import override_key

SEED = "trainer.seed"
MEASURES = ("test_accuracy", "test_auc", "final_val_accuracy", "fit_seconds")
COLUMNS = ["configuration", "n", *(f"{m}_{stat}" for m in MEASURES for stat in ("mean", "sd"))]


def configuration(overrides: str) -> str:
    return " ".join(o for o in overrides.split() if override_key(o) != SEED)


def seeds_vary(overrides: list[str]) -> bool:
    seeds = {o for job in overrides for o in job.split() if override_key(o) == SEED}
    return len(seeds) > 1


def finished(row: dict) -> bool:
    """A job that ended with a model: FINISHED and not pruned (a pruned trial has no test metrics)."""
    return row["status"] == "FINISHED" and row["test_accuracy"] is not None


def by_configuration(rows: list[dict]) -> list[dict]:
    """One summary row per configuration, in the order the jobs came; n counts its finished runs."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(configuration(row["overrides"]), []).append(row)
    summary = []
    for name, members in groups.items():
        done = [row for row in members if finished(row)]
        entry = {"configuration": name, "n": len(done)}
        for measure in MEASURES:
            values = [row[measure] for row in done if row[measure] is not None]
            entry[f"{measure}_mean"] = statistics.fmean(values) if values else None
            entry[f"{measure}_sd"] = statistics.stdev(values) if len(values) > 1 else None
        summary.append(entry)
    return summary


def curve_bands(curves: list[list[float]]) -> tuple[list[float], list[float]]:
    """Mean and sd per epoch over runs' curves; runs stopped early count for the epochs they had."""
    means, sds = [], []
    for epoch in range(max(map(len, curves), default=0)):
        values = [curve[epoch] for curve in curves if len(curve) > epoch]
        means.append(statistics.fmean(values))
        sds.append(statistics.stdev(values) if len(values) > 1 else 0.0)
    return means, sds
