"""A multirun as one MLflow parent run whose jobs are its child runs, compared when it ends.

Hydra calls this callback in the launching process: before the first job it creates the parent
run and exports its id in IMDB_EXP_SWEEP_RUN_ID, which each job (same process or a launched
worker) turns into the `mlflow.parentRunId` tag that nests it in the MLflow UI.
"""

import csv
import io
import os

from hydra.experimental.callback import Callback
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from imdb_exp import plots, store

PARENT_ENV = "IMDB_EXP_SWEEP_RUN_ID"
COLUMNS = ["run", "overrides", "status", "test_accuracy", "test_auc", "test_loss", "best_val_accuracy", "fit_seconds"]


class SweepParentRun(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self.client = MlflowClient(store.resolve_uri(config.tracking.uri))
        experiment = store.experiment_id(self.client, config.tracking.experiment)
        sweep = " ".join(config.hydra.overrides.task)
        run = self.client.create_run(experiment, run_name=f"sweep {sweep}"[:250], tags={"sweep": sweep})
        self.run_id = os.environ[PARENT_ENV] = run.info.run_id

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        os.environ.pop(PARENT_ENV, None)
        children = self.client.search_runs(
            [self.client.get_run(self.run_id).info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{self.run_id}'",
            order_by=["start_time ASC"],
        )
        varying = varying_overrides([child.data.tags.get("overrides", "") for child in children])
        rows, curves = [], {}
        for child, overrides in zip(children, varying, strict=True):
            val_accuracy = self._history(child.info.run_id, "val_accuracy")
            rows.append(row(child, overrides, val_accuracy))
            curves[overrides or child.info.run_name] = val_accuracy
        self.client.log_figure(self.run_id, plots.sweep_comparison(curves, rows), "sweep/comparison.png")
        self.client.log_text(self.run_id, to_csv(rows), "sweep/results.csv")
        self.client.log_text(self.run_id, to_markdown(rows), "sweep/results.md")
        self._name_the_best(children, rows)
        failed = [row for row in rows if row["status"] != "FINISHED"]
        self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.FAILED if failed else RunStatus.FINISHED))
        if failed:
            names = "; ".join(f"{row['overrides'] or row['run']} ({row['status']})" for row in failed)
            raise SystemExit(f"imdb-exp: error: {len(failed)} of {len(rows)} sweep jobs failed: {names}")

    def _name_the_best(self, children, rows: list[dict]) -> None:
        """Tag the parent with the job of the highest best validation accuracy, and say it."""
        scored = [(row["best_val_accuracy"], child, row) for child, row in zip(children, rows, strict=True)]
        scored = [entry for entry in scored if entry[0] is not None]
        if not scored:
            return
        value, child, row = max(scored, key=lambda entry: entry[0])
        self.client.set_tag(self.run_id, "best_run_id", child.info.run_id)
        self.client.set_tag(self.run_id, "best_overrides", row["overrides"])
        self.client.log_metric(self.run_id, "best_val_accuracy", value)
        print(
            f"imdb-exp: best of {len(rows)} jobs: {row['overrides'] or row['run']} (run {child.info.run_id}), "
            f"best_val_accuracy={value:.4f}, test_accuracy={_cell(row['test_accuracy'])}"
        )

    def _history(self, run_id: str, metric: str) -> list[float]:
        return [m.value for m in sorted(self.client.get_metric_history(run_id, metric), key=lambda m: m.step)]


def varying_overrides(jobs: list[str]) -> list[str]:
    """Each job's overrides less those that all jobs share: what tells the jobs apart."""
    split = [job.split() for job in jobs]
    shared = set.intersection(*map(set, split)) if split else set()
    return [" ".join(o for o in overrides if o not in shared) for overrides in split]


def row(run, overrides: str, val_accuracy: list[float]) -> dict:
    metrics = run.data.metrics
    return {
        "run": run.info.run_name,
        "overrides": overrides,
        "status": run.info.status,
        **{key: metrics.get(key) for key in ("test_accuracy", "test_auc", "test_loss")},
        "best_val_accuracy": max(val_accuracy, default=None),
        "fit_seconds": metrics.get("fit_seconds"),
    }


def _cell(value) -> str:
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS)
    writer.writeheader()
    writer.writerows({key: _cell(row[key]) for key in COLUMNS} for row in rows)
    return out.getvalue()


def to_markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(row[key]) for key in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"
