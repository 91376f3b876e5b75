"""A multirun as one MLflow parent run that accounts for every job and ends however the sweep ends.

Hydra calls the callback in the launching process. Before the first job it creates the parent run
and adds `tracking.parent_run_id=ID` to the overrides every job is composed with: the jobs find
their parent in their own config, wherever a launcher runs them (another process, a Ray worker on
another machine). Each job counts itself on the parent as a tag `job.N` = its run id: the run it
trained, the earlier run it continued or found already done, or a FAILED run saying why it could
not start. The parent's table is made from those tags when the sweep ends, or when the command
stops early (cli.main calls `end_unfinished`).
"""

import csv
import io
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from hydra.experimental.callback import Callback
from mlflow.entities import RunStatus
from omegaconf import DictConfig, OmegaConf, read_write

from imdb_exp.analysis import plots, summary
from imdb_exp.config.schema import run_name
from imdb_exp.errors import ConfigError, first_line
from imdb_exp.runtime.interrupts import held_off
from imdb_exp.runtime.process import between_jobs
from imdb_exp.runtime.redaction import as_tag, redact
from imdb_exp.sweeps import study_storage
from imdb_exp.tracking import record, store

log = logging.getLogger(__name__)

OBJECTIVE = "final_val_accuracy"  # what sweeps rank by: the validation accuracy of the model each job keeps
COLUMNS = [
    "job",
    "run",
    "overrides",
    "status",
    "test_accuracy",
    "test_auc",
    "test_loss",
    OBJECTIVE,
    "best_epoch",
    "fit_seconds",
    "note",
]

LOST = (
    "still RUNNING when its sweep ended: the process training it was lost (its node lost, a SIGKILL, or a retry "
    "that started the job over); launching the sweep again, or imdb-exp resume=RUN_ID, continues it"
)


def is_search(config: DictConfig) -> bool:
    """Whether the sweeper optimizes the jobs' return value (Optuna) rather than listing combinations."""
    return "direction" in config.hydra.sweeper


class SweepParentRun(Callback):
    """Hydra reports an exception from a callback as a warning and carries on; these hooks end the
    command instead (SystemExit), so that no sweep runs without its parent or ends without its table."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        try:
            self._start(config)
        except Exception as err:
            raise SystemExit(f"imdb-exp: error: the sweep's MLflow run cannot be created: {describe(err)}") from err

    def _start(self, config: DictConfig) -> None:
        if is_search(config):
            _refuse_unsound_search(config)
        store.bound_server_waits(config.tracking.server_timeout)
        store.check_server_answers(store.resolve_uri(config.tracking.uri))
        self.client = store.client(config.tracking.uri)
        experiment = store.experiment_id(self.client, config.tracking.experiment)
        sweep = redact(" ".join(config.hydra.overrides.task))
        run = self.client.create_run(experiment, run_name=f"sweep {sweep}"[:250], tags={record.SWEEP: sweep})
        self.run_id = run.info.run_id
        with read_write(config.hydra.overrides.task):  # the sweeper reads these after this callback
            config.hydra.overrides.task.append(f"tracking.parent_run_id='{self.run_id}'")
        between_jobs.sweep = self

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        try:
            rows = self.end()
        except Exception as err:
            raise SystemExit(f"imdb-exp: error: the sweep's MLflow run cannot be completed: {describe(err)}") from err
        failed = [row for row in rows if row["status"] != "FINISHED"]
        if failed:
            names = "; ".join(f"{row['overrides'] or row['run']} ({row['status']})" for row in failed)
            raise SystemExit(f"imdb-exp: error: {len(failed)} of {len(rows)} sweep jobs failed: {names}")

    def end(self, stopped_by: BaseException | None = None) -> list[dict]:
        """Writes the results table and figure, names the best job, and ends the parent run:
        KILLED or FAILED when ``stopped_by`` ended the sweep early, else FAILED if a job did not finish
        (and FAILED if the table itself cannot be written)."""
        between_jobs.sweep = None  # ended once; a failure in here is reported, not tried again
        with held_off():  # a signal meanwhile stops the command once the table is written and the run ended
            return self._end(stopped_by)

    def _end(self, stopped_by: BaseException | None) -> list[dict]:
        status = RunStatus.FAILED
        try:
            between_jobs.writer.wait()  # the jobs of this process end their runs once their records are written
            self._end_lost_jobs()
            rows = self._write_results()
            if stopped_by is not None:
                self.client.set_tag(self.run_id, record.FAILURE_REASON, as_tag(describe(stopped_by)))
                status = RunStatus.KILLED if was_interrupted(stopped_by) else RunStatus.FAILED
            elif all(row["status"] == "FINISHED" for row in rows):
                status = RunStatus.FINISHED
            return rows
        finally:
            self.client.set_terminated(self.run_id, RunStatus.to_string(status))

    def _end_lost_jobs(self) -> None:
        """A job run still RUNNING once its sweep is over lost the process that trained it (its node lost,
        a SIGKILL; or a launcher's retry started the job over as a new run): FAILED with that reason,
        never left RUNNING under an ended parent. Its checkpoint, if any, still continues it."""
        experiment = self.client.get_run(self.run_id).info.experiment_id
        running = f"tags.{record.PARENT} = '{self.run_id}' and attributes.status = 'RUNNING'"
        for run in self.client.search_runs([experiment], running):
            self.client.set_tag(run.info.run_id, record.FAILURE_REASON, LOST)
            self.client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))

    def _write_results(self) -> list[dict]:
        jobs = self._jobs()
        varying = varying_overrides([run.data.tags.get(record.OVERRIDES, "") for run in jobs.values()])
        rows = [
            row(job, run, overrides, self.run_id) for (job, run), overrides in zip(jobs.items(), varying, strict=True)
        ]
        curves = [self._history(row["run_id"], "val_accuracy") for row in rows]
        by_name = {row["overrides"] or row["run"]: curve for row, curve in zip(rows, curves, strict=True)}
        self.client.log_figure(self.run_id, plots.sweep_comparison(by_name, rows), record.SWEEP_COMPARISON)
        self._log_table(rows, COLUMNS, record.SWEEP_RESULTS_CSV, record.SWEEP_RESULTS_MD)
        if summary.replicates_vary(varying):
            self._summarise_replicates(rows, curves)
        self._name_the_best(rows)
        return rows

    def _summarise_replicates(self, rows: list[dict], curves: list[list[float]]) -> None:
        """Over the seeds or folds of each configuration: a table, its verdict in words, and the
        validation curves as bands."""
        configurations = summary.by_configuration(rows)
        self.client.log_text(self.run_id, to_csv(configurations, summary.COLUMNS), record.SWEEP_SUMMARY_CSV)
        table, verdict = to_markdown(configurations, summary.COLUMNS), summary.in_words(configurations)
        self.client.log_text(self.run_id, f"{table}\n{verdict}", record.SWEEP_SUMMARY_MD)
        runs_of: dict[str, list[list[float]]] = {}
        for row, curve in zip(rows, curves, strict=True):
            if summary.finished(row) and curve:
                runs_of.setdefault(summary.configuration(row["overrides"]), []).append(curve)
        bands = {
            f"{name or summary.ONLY_REPLICATES} (n={len(runs)})": summary.curve_bands(runs)
            for name, runs in runs_of.items()
        }
        self.client.log_figure(self.run_id, plots.seed_bands(bands), record.SWEEP_SUMMARY_FIGURE)

    def _log_table(self, rows: list[dict], columns: list[str], csv_path: str, markdown_path: str) -> None:
        self.client.log_text(self.run_id, to_csv(rows, columns), csv_path)
        self.client.log_text(self.run_id, to_markdown(rows, columns), markdown_path)

    def _jobs(self) -> dict[str, object]:
        """The run each job counted itself with, in job order."""
        counted = record.counted_jobs(self.client.get_run(self.run_id))
        return {job: self.client.get_run(run_id) for job, run_id in counted.items()}

    def _name_the_best(self, rows: list[dict]) -> None:
        """Tag the parent with the finished job of the highest validation accuracy, and say it."""
        scored = [row for row in rows if row["status"] == "FINISHED" and row[OBJECTIVE] is not None]
        if not scored:
            return
        best = max(scored, key=lambda row: row[OBJECTIVE])
        self.client.set_tag(self.run_id, record.BEST_RUN_ID, best["run_id"])
        self.client.set_tag(self.run_id, record.BEST_OVERRIDES, best["overrides"])
        self.client.log_metric(self.run_id, "best_val_accuracy", best[OBJECTIVE])
        print(
            f"imdb-exp: best of {len(rows)} jobs: {best['overrides'] or best['run']} (run {best['run_id']}), "
            f"{OBJECTIVE}={best[OBJECTIVE]:.4f}, test_accuracy={_cell(best['test_accuracy'])}"
        )

    def _history(self, run_id: str, metric: str) -> list[float]:
        return [m.value for m in sorted(self.client.get_metric_history(run_id, metric), key=lambda m: m.step)]


def _refuse_unsound_search(config: DictConfig) -> None:
    """Ends the command (exit status 2) before any run is made, for a search that could not be sound."""
    try:
        if not config.data.val_size:
            raise ConfigError(
                "a search ranks trials by their validation accuracy, and data.val_size=0 holds no reviews out "
                "(the test set is never used to choose); set data.val_size"
            )
        study_storage.refuse_storage_out_of_reach(config.hydra.sweeper.storage, config.hydra.launcher)
    except ConfigError as err:
        print(f"imdb-exp: error: {err}", file=sys.stderr)
        sys.exit(2)


def open_parent_run_id() -> str | None:
    """The parent run of the sweep this process launched and has not ended, if any."""
    return between_jobs.sweep.run_id if between_jobs.sweep is not None else None


def launched_here() -> bool:
    """Whether the current job was launched by this process (Hydra's basic launcher), which ends the
    sweep's run after waiting for the jobs' records; a launcher's worker process did not."""
    return between_jobs.sweep is not None


def end_unfinished(stopped_by: BaseException) -> None:
    """Ends the parent run of a sweep that ``stopped_by`` cut short (a signal, a job's or Hydra's error)."""
    if between_jobs.sweep is not None:
        between_jobs.sweep.end(stopped_by)


def was_interrupted(err: BaseException) -> bool:
    """Ctrl-C or a kill, also as the exit status a job ended the process with (128 + SIGINT or SIGTERM)."""
    return isinstance(err, KeyboardInterrupt) or (isinstance(err, SystemExit) and err.code in (130, 143))


def describe(err: BaseException) -> str:
    # Hydra reports an error and exits 1: the error itself is the context of that SystemExit.
    error = err.__context__ if isinstance(err, SystemExit) and err.__context__ is not None else err
    # Hydra's composition errors say what failed; their cause says why (the first line of it).
    why = f": {first_line(error.__cause__)}" if error.__cause__ and str(error.__cause__) else ""
    return f"{type(error).__name__}: {error}{why}"


def varying_overrides(jobs: list[str]) -> list[str]:
    """Each job's overrides less those that all jobs share: what tells the jobs apart."""
    split = [job.split() for job in jobs]
    shared = set.intersection(*map(set, split)) if split else set()
    return [" ".join(o for o in overrides if o not in shared) for overrides in split]


def row(job: str, run, overrides: str, parent_run_id: str) -> dict:
    metrics = run.data.metrics
    if record.parent_of(run) != parent_run_id:
        note = "already done (an earlier run of this config)"
    elif (epoch := record.pruned_at(run)) is not None:
        note = f"pruned after epoch {epoch}"
    else:
        note = record.failure(run)
    return {
        "job": job,
        "run": run.info.run_name,
        "run_id": run.info.run_id,
        "overrides": overrides,
        "status": run.info.status,
        **{key: metrics.get(key) for key in ("test_accuracy", "test_auc", "test_loss", OBJECTIVE)},
        "best_epoch": int(metrics["best_epoch"]) if "best_epoch" in metrics else None,
        "fit_seconds": metrics.get("fit_seconds"),
        "note": note,
    }


def _cell(value) -> str:
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def to_csv(rows: list[dict], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({key: _cell(row[key]) for key in columns} for row in rows)
    return out.getvalue()


def to_markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(_cell(row[key]).replace("|", "/") for key in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def count_done_job(cfg: DictConfig, tags: dict[str, str], run) -> float | None:
    """Counts an earlier FINISHED run of exactly this job's config as the job, instead of training it again."""
    client = store.client(cfg.tracking.uri)
    record.count_job(client, cfg.tracking.parent_run_id, tags.get(record.JOB), run.info.run_id)
    print(
        f"imdb-exp: already done: run {run.info.run_id} FINISHED with this exact config; not trained again "
        "(retrain=true trains it anyway)"
    )
    return run.data.metrics.get(OBJECTIVE)


def record_unstarted_job(cfg: DictConfig, tags: dict[str, str], err: BaseException) -> None:
    """A FAILED run, under the sweep's run, for a job that failed before its own run opened."""
    parent_run_id = cfg.tracking.parent_run_id
    client = store.client(cfg.tracking.uri)
    parent = client.get_run(parent_run_id)
    if record.job_tag(tags.get(record.JOB)) in parent.data.tags:
        return  # its run opened, and holds the failure
    run = client.create_run(
        parent.info.experiment_id,
        run_name=run_name(tags, cfg),
        tags=tags | {record.PARENT: parent_run_id, record.FAILURE_REASON: as_tag(describe(err))},
    )
    client.log_text(run.info.run_id, redact(OmegaConf.to_yaml(cfg)), record.CONFIG)
    client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
    record.count_job(client, parent_run_id, tags.get(record.JOB), run.info.run_id)


def attach_job_log(cfg: DictConfig, tags: dict[str, str]) -> None:
    """What the job logged (Hydra's log file of it, on whichever machine it ran) as an artifact
    logs/TIME-NAME of the run the job counted itself with; each attempt of a continued run keeps its own."""
    files = [handler for handler in logging.getLogger().handlers if isinstance(handler, logging.FileHandler)]
    try:
        client = store.client(cfg.tracking.uri)
        run_id = client.get_run(cfg.tracking.parent_run_id).data.tags.get(record.job_tag(tags.get(record.JOB)))
        if not files or run_id is None:
            return
        if record.parent_of(client.get_run(run_id)) != cfg.tracking.parent_run_id:
            return  # an earlier sweep's run, counted as done: its own log stays
        attached = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        for handler in files:
            handler.flush()
            path = Path(handler.baseFilename)
            client.log_text(
                run_id, redact(path.read_text(errors="replace")), f"{record.JOB_LOGS}/{attached}-{path.name}"
            )
    except Exception as err:  # the job's result stands without its log
        log.warning("the job's log could not be attached to its run: %s", describe(err))
