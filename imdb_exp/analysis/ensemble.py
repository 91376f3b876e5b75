"""imdb-exp-ensemble ID...: runs combined by greedy ensemble selection on their validation predictions.

Each ID is a run, or a sweep's parent run (its FINISHED jobs, pruned trials left out). Starting from
nothing, each round adds the member (again, if it is best) whose addition gives the average of the
chosen members' validation probabilities the highest accuracy, ties broken by the lower log loss
(Caruana et al., "Ensemble selection from libraries of models", 2004), and of the rounds keeps the
one whose ensemble scored best; a member's weight is how often it was chosen up to that round. The
combination is kept only where it gets more validation reviews right than its best member beyond
chance (McNemar's exact test at 5%); otherwise the best member alone is the ensemble: greedy rounds
on a few thousand reviews also fit their noise (scripts/ensemble_holdout.py measures it). Only the
validation reviews choose: the test reviews are read once, for the chosen combination.

The ensemble is an MLflow run of its own: tags naming its members and weights, validation and test
metrics, the evaluation figures and predictions of any run, and a servable model (raw text in, the
members' models inside) that imdb-exp-predict and `mlflow models serve` use like any other.
"""

import tempfile
from dataclasses import dataclass

import mlflow
import numpy as np
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from imdb_exp.analysis import compare, evaluation, plots, predictions
from imdb_exp.analysis.predictions import Predictions, PredictionsError, Scored
from imdb_exp.data.labels import called_positive
from imdb_exp.runtime import process
from imdb_exp.serving import logged_model
from imdb_exp.tracking import active_run, naming, record, store

ROUNDS = 25


def members_of(client: MlflowClient, ids: list[str]) -> list[Run]:
    """The runs ``ids`` name: a run itself, or a sweep's parent run's jobs that kept a model and
    predictions (FINISHED, not pruned), each once."""
    members: dict[str, Run] = {}
    for run_id in ids:
        run = client.get_run(run_id)
        if record.is_sweep(run):
            jobs = [client.get_run(job_run_id) for job_run_id in record.counted_jobs(run).values()]
            members |= {job.info.run_id: job for job in jobs if not record.why_nothing_kept(job)}
        else:
            members[run_id] = run
    return list(members.values())


def check_alike(predicted: list[Predictions], names: list[str]) -> None:
    """PredictionsError naming the first member whose validation or test reviews differ from the first's."""
    first = predicted[0]
    for member, name in zip(predicted[1:], names[1:], strict=True):
        if member.source != first.source:
            raise PredictionsError(f"{name} was tested on other data than {names[0]}")
        if member.val is None or first.val is None:
            raise PredictionsError(f"{names[0] if first.val is None else name} held out no validation reviews")
        for split in ("val", "test"):
            if not np.array_equal(getattr(member, split).rows, getattr(first, split).rows):
                raise PredictionsError(
                    f"{name}'s {split} reviews are not {names[0]}'s (e.g. another data.val_size, data.val_holdout "
                    "or data.split_seed): an ensemble is chosen on reviews every member held out"
                )


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def accuracy_first(labels: np.ndarray, probabilities: np.ndarray) -> tuple[float, ...]:
    """Accuracy, ties broken by the lower log loss."""
    return float(np.mean(called_positive(probabilities) == labels.astype(bool))), -log_loss(labels, probabilities)


def lowest_log_loss(labels: np.ndarray, probabilities: np.ndarray) -> tuple[float, ...]:
    return (-log_loss(labels, probabilities),)


# What a round maximises (--metric): a higher tuple is better.
METRICS = {"accuracy": accuracy_first, "log_loss": lowest_log_loss}


def select(val: list[Scored], rounds: int = ROUNDS, metric: str = "accuracy") -> np.ndarray:
    """How often each member is chosen: greedy rounds (with replacement) on validation, and of those
    the round whose ensemble scored best, so that it is never below its best member there."""
    labels, counts, total = val[0].labels, np.zeros(len(val), np.int64), np.zeros(len(val[0].labels))
    best_score, best_counts, score = None, counts, METRICS[metric]
    for chosen in range(rounds):
        scores = [score(labels, (total + member.probabilities) / (chosen + 1)) for member in val]
        best = max(range(len(val)), key=scores.__getitem__)
        counts[best] += 1
        total += val[best].probabilities
        if best_score is None or scores[best] > best_score:
            best_score, best_counts = scores[best], counts.copy()
    return best_counts


def beyond_chance(val: list[Scored], counts: np.ndarray) -> tuple[np.ndarray, float]:
    """``counts`` where their combination gets more validation reviews right than the best member
    alone, beyond chance (McNemar's exact test at compare.LEVEL), else the best member alone; with the
    test's p-value."""
    best = max(range(len(val)), key=lambda i: accuracy_first(val[i].labels, val[i].probabilities))
    right, right_best = combined(val, counts / counts.sum()).correct(), val[best].correct()
    p = compare.mcnemar_p(right, right_best)
    if right.sum() > right_best.sum() and p < compare.LEVEL:
        return counts, p
    return np.eye(len(val), dtype=np.int64)[best], p


def combined(split: list[Scored], weights: np.ndarray) -> Scored:
    probabilities = sum(w * s.probabilities.astype(np.float64) for w, s in zip(weights, split, strict=True))
    return Scored(split[0].rows, split[0].labels, probabilities)


def log_ensemble(
    client: MlflowClient,
    runs: list[Run],
    predicted: list[Predictions],
    weights: np.ndarray,
    metric: str,
    p_value: float,
    sweep: str | None,
) -> Run:
    """The ensemble's MLflow run, in the first member's experiment, nested under ``sweep`` if one;
    each member's weight a metric named after it."""
    val = combined([k.val for k in predicted], weights)
    test = combined([k.test for k in predicted], weights)
    chosen = [(run, w) for run, w in zip(runs, weights, strict=True) if w > 0]
    name = naming.ensemble_name([r.info.run_name for r, _ in chosen])
    with mlflow.start_run(experiment_id=runs[0].info.experiment_id, run_name=name, tags=_tags(runs, sweep)) as run:
        mlflow.set_tag(record.NOTE, _description(name, runs, weights))
        active_run.log_metrics(_weights_by_member(runs, weights))
        mlflow.log_params(
            {
                "ensemble.rounds": ROUNDS,
                "ensemble.candidates": len(runs),
                "ensemble.metric": metric,
                "trainer.backend": runs[0].data.params["trainer.backend"],  # what serves it, as for its members
            }
        )
        active_run.log_metrics(
            {"ensemble_val_p_value": p_value}  # of the selection against its best member
            | evaluation.test_metrics(test.labels, test.probabilities)
            | {"test_loss": log_loss(test.labels, test.probabilities)}
            | {
                "final_val_accuracy": float(np.mean(val.correct())),
                "final_val_loss": log_loss(val.labels, val.probabilities),
            }
        )
        for path, draw in plots.EVALUATION_FIGURES.items():
            active_run.log_figure(draw(test.labels, test.probabilities), path)
        predictions.log(Predictions(predicted[0].source, test, val))
        log_servable(client, chosen)
    return client.get_run(run.info.run_id)


def _weights_by_member(runs: list[Run], weights: np.ndarray) -> dict[str, float]:
    """``weight/NAME`` of each candidate (its run id's start where two share a name)."""
    names = [run.info.run_name for run in runs]
    named = [
        name if names.count(name) == 1 else f"{name} {run.info.run_id[:8]}"
        for name, run in zip(names, runs, strict=True)
    ]
    return {naming.metric_key(f"weight/{name}"): float(w) for name, w in zip(named, weights, strict=True)}


def _tags(runs: list[Run], sweep: str | None) -> dict[str, str]:
    """Its members and family; its parent, the sweep they come from, if one; transductive where any
    member is (it may then have chosen that member for what it learned from the test text)."""
    nested = {record.PARENT: sweep} if sweep else {}
    transductive = {record.TRANSDUCTIVE: "true"} if any(map(record.transductive, runs)) else {}
    return {record.MEMBERS: ",".join(r.info.run_id for r in runs), record.MODEL: "ensemble"} | nested | transductive


def _description(name: str, runs: list[Run], weights: np.ndarray) -> str:
    """The run's note: each candidate linked to its page, with its weight (0: not chosen)."""
    lines = [f"**{name}**, chosen on validation predictions (greedy selection, {ROUNDS} rounds).", "",
             "| member | weight |", "| --- | --- |"]  # fmt: skip
    for run, weight in zip(runs, weights, strict=True):
        page = store.run_page(run.info.experiment_id, run.info.run_id)
        lines.append(f"| [{run.info.run_name}]({page}) | {weight:.2f} |")
    return "\n".join(lines) + "\n"


def log_servable(client: MlflowClient, chosen: list[tuple[Run, float]]) -> None:
    """Each chosen member's logged model inside one model that averages their probabilities."""
    backend = chosen[0][0].data.params["trainer.backend"]
    with tempfile.TemporaryDirectory() as folder:
        artifacts = {
            f"member_{i}": mlflow.artifacts.download_artifacts(record.logged_model_uri(run), dst_path=f"{folder}/{i}")
            for i, (run, _) in enumerate(chosen)
        }
        weights = {"weights": [float(w) for _, w in chosen]}
        logged_model.log_pyfunc("ensemble", "served_ensemble.py", artifacts, weights, backend)


@dataclass(frozen=True)
class Candidates:
    runs: list[Run]
    predicted: list[Predictions]  # each run's predictions
    names: list[str]  # "run ID (NAME)", as the output names them
    sweep: str | None  # the sweep's parent run the ensemble belongs under, if one holds them all


def candidates(client: MlflowClient, ids: list[str]) -> Candidates:
    """The runs ``ids`` name with their predictions, once each is known to be a fit member (two or more,
    alike in their reviews and backend, each with a logged model); PredictionsError names the first that is
    not. Keras is then loaded on their backend."""
    runs = members_of(client, ids)
    if len(runs) < 2:
        raise PredictionsError(f"{len(runs)} finished run(s) among {' '.join(ids)}: an ensemble needs two")
    predicted = [predictions.of_run(client, run.info.run_id) for run in runs]
    names = [f"run {run.info.run_id} ({run.info.run_name})" for run in runs]
    check_alike(predicted, names)
    backends = {run.data.params["trainer.backend"] for run in runs}
    if len(backends) > 1:
        raise PredictionsError(f"the members ran on {' and '.join(sorted(backends))}: one process serves one backend")
    process.use_backend(backends.pop())  # Keras loads the members' models once, its notices dropped
    for run, name in zip(runs, names, strict=True):
        if record.logged_model_uri(run) is None:
            raise PredictionsError(f"{name} logged no model (tracking.log_model=false): it cannot be served")
    return Candidates(runs, predicted, names, sweep_of(client, ids, runs))


def sweep_of(client: MlflowClient, ids: list[str], runs: list[Run]) -> str | None:
    """The one sweep named (its jobs may be runs an earlier launch trained, nested there), else the
    one sweep every member is nested under."""
    if len(set(ids)) == 1 and record.is_sweep(client.get_run(ids[0])):
        return ids[0]
    parents = {record.parent_of(run) for run in runs}
    return parents.pop() if len(parents) == 1 else None
