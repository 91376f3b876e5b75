"""The record contract: every tag a run carries, every artifact path it writes, and how each is read
back. Writers and readers (a run, a sweep, a search, resume, the ensemble, compare, the tests) name
them from here only, so that what a run records is one list, and a reader cannot drift from a writer.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing MLflow takes a second; Hydra lists the sweeper plugin, which reads this, at every start
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

# -- Tags of every run: what it is --------------------------------------------------------------------

DATA, MODEL, OPTIMIZER = "data", "model", "optimizer"  # the config-group choices
CHOSEN_GROUPS = (DATA, MODEL, OPTIMIZER)
OVERRIDES = "overrides"  # the command line's overrides, less those that only say how it was launched
CONFIG_GROUP = "config_group"  # equal across the seeds and folds of one configuration: the UI's group-by
CONFIG_HASH = "config_hash"  # the run's identity (config/identity.py)
PACKAGE_VERSION, KERAS_VERSION = "imdb_exp.version", "keras.version"
# "true" on a run that learned from the test reviews' text (data.unlabeled with test; never their
# labels): its test metrics are not comparable with those of a run that did not.
TRANSDUCTIVE = "transductive"
GIT_COMMIT = "mlflow.source.git.commit"  # MLflow's own tag, which its UI shows as the run's source version


def backend_version(backend: str) -> str:
    return f"{backend}.version"


NOTE = "mlflow.note.content"  # MLflow's own: the run's description, Markdown the UI renders

# -- Tags of every run: how it ended, or was continued ------------------------------------------------

FAILURE_REASON = "failure_reason"
STARTED_OVER_FROM = "imdb_exp.started_over_from"  # a run that had to start over names the run it replaces
CHECKPOINT = "imdb_exp.checkpoint"  # "SLOT EPOCH": the slot of its last whole checkpoint on the server

# -- Tags of a sweep's jobs and a search's trials -----------------------------------------------------

PARENT = "mlflow.parentRunId"  # MLflow's own: nests the run under its sweep in the UI
JOB = "sweep_job"  # the job's number in its sweep (Hydra's job.num)
DEVICE = "cuda_visible_devices"  # the GPU a parallel sweep's job ran on, the only one it saw (runtime/devices.py)
STUDY, TRIAL = "optuna.study", "optuna.trial"
PRUNED_AT_EPOCH = "optuna.pruned_at_epoch"  # a trial its search stopped: FINISHED, with no final model

# -- Tags of a sweep's parent run ---------------------------------------------------------------------

SWEEP = "sweep"  # the sweep's overrides as typed
_JOB_PREFIX = "job."  # job.N = the run id of job N: every job counts itself, wherever it ran
BEST_RUN_ID, BEST_JOB = "best_run_id", "best_job"  # the best job's run and its name

# -- Tags of an ensemble's run ------------------------------------------------------------------------

MEMBERS, WEIGHTS = "ensemble.members", "ensemble.weights"

# -- Artifacts of a run -------------------------------------------------------------------------------

CONFIG = "config.yaml"  # the whole resolved config
MODEL_SUMMARY = "model_summary.txt"
LOSS_CURVE, ACCURACY_CURVE = "curves/loss.png", "curves/accuracy.png"
PROBABILITIES_FIGURE = "evaluation/probabilities.png"
CONFUSION_FIGURE = "evaluation/confusion_matrix.png"
ROC_FIGURE = "evaluation/roc_curve.png"
PREDICTIONS = "evaluation/predictions.npz"  # every validation and test review's index, label, probability
MISCLASSIFIED = "evaluation/misclassified.md"
VOCABULARY = "vocabulary.tsv"
TENSORBOARD = "tensorboard"
CHECKPOINT_FOLDER = "checkpoint"  # the two slots a run's checkpoint takes turns in on a tracking server
JOB_LOGS = "logs"  # a sweep job's log, one file per attempt
EVALUATION_FIGURES = (PROBABILITIES_FIGURE, CONFUSION_FIGURE, ROC_FIGURE)
# What every finished run of the aclimdb source has, besides its config, summary and logged model.
FINISHED_RUN_ARTIFACTS = (
    LOSS_CURVE,
    ACCURACY_CURVE,
    *EVALUATION_FIGURES,
    PREDICTIONS,
    MISCLASSIFIED,
    VOCABULARY,
)

# -- Artifacts of a sweep's parent run ----------------------------------------------------------------

SWEEP_COMPARISON = "sweep/comparison.png"
SWEEP_RESULTS_CSV, SWEEP_RESULTS_MD = "sweep/results.csv", "sweep/results.md"  # a row per job
SWEEP_SUMMARY_CSV, SWEEP_SUMMARY_MD = "sweep/summary.csv", "sweep/summary.md"  # a row per configuration
SWEEP_SUMMARY_FIGURE = "sweep/summary.png"
SEARCH_HISTORY, SEARCH_IMPORTANCES = "search/history.png", "search/importances.png"


# -- Written and read back ---------------------------------------------------------------------------


def job_tag(job: str) -> str:
    return f"{_JOB_PREFIX}{job}"


def count_job(client: "MlflowClient", parent_run_id: str, job: str | None, run_id: str) -> None:
    """Job ``job`` of sweep ``parent_run_id`` counts itself, with the run that stands for it."""
    client.set_tag(parent_run_id, job_tag(job or run_id), run_id)


def counted_jobs(parent: "Run") -> dict[str, str]:
    """Job -> the run it counted itself with, in job order (numbers first)."""
    tags = parent.data.tags
    counted = {key.removeprefix(_JOB_PREFIX): run_id for key, run_id in tags.items() if key.startswith(_JOB_PREFIX)}
    order = sorted(counted, key=lambda job: (not job.isdigit(), int(job) if job.isdigit() else job))
    return {job: counted[job] for job in order}


def parent_of(run: "Run") -> str | None:
    return run.data.tags.get(PARENT)


def is_sweep(run: "Run") -> bool:
    return SWEEP in run.data.tags


def transductive(run: "Run") -> bool:
    return run.data.tags.get(TRANSDUCTIVE) == "true"


def pruned_at(run: "Run") -> int | None:
    """The epoch after which its search pruned the run; None for a run that was not pruned."""
    epoch = run.data.tags.get(PRUNED_AT_EPOCH)
    return None if epoch is None else int(epoch)


def why_nothing_kept(run: "Run") -> str | None:
    """Why the run kept no model or test predictions, where its status or its search says so (None
    for a finished run that was not pruned), as the rest of a sentence that begins "run ID"."""
    if is_sweep(run):
        return "is a sweep's parent run: its jobs keep the models and predictions (give their run ids)"
    if run.info.status != "FINISHED":
        return f"is {run.info.status}: a run keeps its model and predictions when it finishes"
    if (epoch := pruned_at(run)) is not None:
        return f"was pruned by its search after epoch {epoch}: a pruned trial keeps no model or predictions"
    return None


def failure(run: "Run") -> str:
    """The first line of why the run failed or was stopped; empty where it says nothing."""
    reason = run.data.tags.get(FAILURE_REASON, "")
    return reason.splitlines()[0] if reason else ""


def checkpoint_slot(run: "Run") -> tuple[str, int] | None:
    """The slot of the run's last whole checkpoint on the server, and its epoch; None without one."""
    named = run.data.tags.get(CHECKPOINT, "").split()
    return (named[0], int(named[1])) if named else None


def logged_model_uri(run: "Run") -> str | None:
    """The URI of the model the run logged (MLflow 3 records it among the run's outputs); None without one."""
    outputs = run.outputs.model_outputs if run.outputs else []
    return f"models:/{outputs[-1].model_id}" if outputs else None


def checkpoint_tag(slot: str, epoch: int) -> str:
    return f"{slot} {epoch}"


def checkpoint_artifact(slot: str) -> str:
    return f"{CHECKPOINT_FOLDER}/{slot}.npz"
