"""A multirun as one MLflow parent run that accounts for every job and ends however the sweep ends.

Hydra calls the callback in the launching process. Before the first job it creates the parent run
and adds `tracking.parent_run_id=ID` to the overrides every job is composed with: the jobs find
their parent in their own config, wherever a launcher runs them (another process, a Ray worker on
another machine). Each job counts itself on the parent as a tag `job.N` = its run id: the run it
trained, the earlier run it continued or found already done, or a FAILED run saying why it could
not start. The parent's table is made from those tags when the sweep ends, or when the command
stops early (cli.main calls `end_unfinished`).
"""

import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from hydra.experimental.callback import Callback
from mlflow.entities import Param, RunStatus
from mlflow.tracking.context.registry import resolve_tags
from omegaconf import DictConfig, OmegaConf, read_write

from imdb_exp.analysis import plots, summary
from imdb_exp.errors import ConfigError, UserError, first_line, hydra_in_one_line, refuse
from imdb_exp.runtime import interrupts
from imdb_exp.runtime.process import between_jobs
from imdb_exp.runtime.redaction import as_tag, redact
from imdb_exp.sweeps import launchers, plan, results, stopping, study_storage
from imdb_exp.tracking import naming, record, store
from imdb_exp.tracking.active_run import readable
from imdb_exp.training import checkpoints, shared_checkpoints

log = logging.getLogger(__name__)

LOST = (
    "still RUNNING when its sweep ended: the process training it was lost (its node lost, a SIGKILL, or a retry "
    "that started the job over); "
)
ABANDONED = "its sweep process was killed outright (a SIGKILL, out of memory); the sweep launched again is run {}"


class SweepParentRun(Callback):
    """Hydra reports an exception from a callback as a warning and carries on; these hooks end the
    command instead (SystemExit), so that no sweep runs without its parent or ends without its table."""

    name, varies, searching = "sweep", (), False  # what on_multirun_start learns of the sweep
    let_go_of_lock: Callable[[], None] | None = None  # the sweep's lock, held while it runs: see _abandoned

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        try:
            launchers.check_settings(config.hydra.launcher)
        except ConfigError as err:
            _refused(err)
        if plan.is_search(config):
            _refuse_unsound_search(config)
        else:
            _refuse_values_no_job_can_run(plan.each_value(config))
        try:
            self._start(config)
        except Exception as err:
            raise SystemExit(f"imdb-exp: error: the sweep's MLflow run cannot be created: {describe(err)}") from err

    def _start(self, config: DictConfig) -> None:
        self.searching, self.varies = plan.is_search(config), plan.varied_keys(config)
        store.bound_server_waits(config.tracking.server_timeout)
        store.check_server_answers(store.resolve_uri(config.tracking.uri))
        self.client = store.client(config.tracking.uri)
        experiment = store.experiment_id(self.client, config.tracking.experiment)
        self.name = naming.sweep_name(self.varies, plan.job_count(config), self.searching)
        # The command as typed, Hydra's settings too (a search's n_trials, its sampler's seed), so it can be run again.
        typed = [*config.hydra.overrides.task, *(o for o in config.hydra.overrides.hydra if o != "hydra.mode=MULTIRUN")]
        swept = redact(" ".join(typed))
        tags = resolve_tags({record.SWEEP: swept, record.NOTE: f"**{self.name}**: running `imdb-exp -m {swept}`"})
        abandoned = self._abandoned(experiment, swept)
        self.run_id = self.client.create_run(experiment, run_name=self.name, tags=tags).info.run_id
        try:
            self.let_go_of_lock = checkpoints.hold(self.run_id)
            for run in abandoned:
                self._end_abandoned(run)
            with read_write(config.hydra.overrides.task):  # the sweeper reads these after this callback
                config.hydra.overrides.task.append(f"tracking.parent_run_id='{self.run_id}'")
                config.hydra.overrides.task.append(f"tracking.sweep_varies=[{','.join(map(repr, self.varies))}]")
        except BaseException as err:  # a start cut short leaves no parent RUNNING
            status = RunStatus.KILLED if was_interrupted(err) else RunStatus.FAILED
            self.client.set_terminated(self.run_id, RunStatus.to_string(status))
            self._let_go()
            raise
        between_jobs.sweep = self
        if launchers.runs_jobs_in_workers(config.hydra.launcher) and not self.searching:
            # A search's own trial workers stop asking for trials and wait for the running ones.
            stopping.hold(self.client, self.run_id)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if (held := stopping.let_go()) is not None:
            raise held  # the command's handler ends the sweep, KILLED with its table, and exits as the signal asks
        try:
            rows = self.end()
        except Exception as err:
            raise SystemExit(f"imdb-exp: error: the sweep's MLflow run cannot be completed: {describe(err)}") from err
        if failed := failed_jobs(rows):
            raise SystemExit(f"imdb-exp: error: {failed}")

    def end(self, stopped_by: BaseException | None = None) -> list[dict]:
        """Writes the results table, figure and description, names the best job, and ends the parent
        run: KILLED or FAILED when ``stopped_by`` ended the sweep early, else FAILED if a job did not
        finish (and FAILED if the table itself cannot be written). Its last lines name the parent."""
        between_jobs.sweep = None  # ended once; a failure in here is reported, not tried again
        stopping.let_go()  # a signal held is raised by whoever called (on_multirun_end, end_unfinished)
        with interrupts.held_off():  # a signal meanwhile stops the command once the table is written and the run ended
            rows = self._end(stopped_by)
        parent = self.client.get_run(self.run_id)
        print(f"imdb-exp: sweep run {self.run_id} ({parent.info.run_name}) {parent.info.status}")
        print(f"imdb-exp: {store.where_to_see(self.client.tracking_uri, parent.info.experiment_id, self.run_id)}")
        return rows

    def _end(self, stopped_by: BaseException | None) -> list[dict]:
        status = RunStatus.FAILED
        try:
            between_jobs.writer.wait()  # the jobs of this process end their runs once their records are written
            self._end_cut_off_jobs(self.run_id, stopped_by=stopped_by)
            rows = self._write_results()
            if stopped_by is not None:
                status = RunStatus.KILLED if was_interrupted(stopped_by) else RunStatus.FAILED
                reason = why_stopped(stopped_by) if status == RunStatus.KILLED else describe(stopped_by)
                self.client.set_tag(self.run_id, record.FAILURE_REASON, as_tag(reason))
            elif failed := failed_jobs(rows):
                self.client.set_tag(self.run_id, record.FAILURE_REASON, as_tag(failed))
            else:
                status = RunStatus.FINISHED
            return rows
        finally:
            try:
                self.client.set_terminated(self.run_id, RunStatus.to_string(status))
                if status != RunStatus.FINISHED:  # as its jobs' names say it, where a chart's legend shows no status
                    outcome = "stopped" if status == RunStatus.KILLED else "failed"
                    self.client.update_run(self.run_id, name=naming.ended_name(self.name, outcome))
            finally:
                self._let_go()

    def _let_go(self) -> None:
        """The sweep's lock, its file removed first (a parent has no checkpoint to keep it for): a launch
        of the same sweep never finds it free."""
        if self.let_go_of_lock is not None:
            self.let_go_of_lock()
            self.let_go_of_lock = None

    def _abandoned(self, experiment: str, swept: str) -> list:
        """Earlier parents of this same sweep left RUNNING by a process killed outright: their lock is
        left and free. Launched again, the sweep ends them KILLED, and their jobs still RUNNING as lost;
        its jobs then continue those that have a checkpoint."""
        running = f"attributes.status = 'RUNNING' and tags.{record.SWEEP} != ''"
        return [
            run
            for run in self.client.search_runs([experiment], running)
            if run.data.tags[record.SWEEP] == swept and checkpoints.was_abandoned(run.info.run_id)
        ]

    def _end_abandoned(self, run) -> None:
        """An abandoned parent KILLED, saying which run took over; its jobs still RUNNING as lost, but
        for those a live process still trains (a worker that outlived its launcher ends its own run)."""
        run_id = run.info.run_id
        if self.client.get_run(run_id).info.status != "RUNNING" or not checkpoints.was_abandoned(run_id):
            return  # ended meanwhile, by its own process or by another launch of the same sweep
        self._end_cut_off_jobs(run_id, leave_live=True)
        reached = naming.sweep_name(self.varies, len(record.counted_jobs(run)), self.searching)  # as a stopped one
        reason = ABANDONED.format(self.run_id)
        self.client.set_tag(run_id, record.NOTE, f"**{reached}**: {reason}")  # no longer "running ..."
        self._end_with_reason(run, RunStatus.KILLED, reason, reached)
        checkpoints.discard(run_id)

    def _end_cut_off_jobs(self, parent_id: str, leave_live: bool = False, stopped_by: BaseException | None = None):
        """A job run still RUNNING once its sweep is over lost the process that trained it: KILLED with the
        signal's reason where one stopped the sweep (joblib ends its workers with it); else FAILED, lost
        (its node lost, a SIGKILL; or a launcher's retry started the job over as a new run). Never left
        RUNNING under an ended parent; its checkpoint, if any, still continues it."""
        experiment = self.client.get_run(parent_id).info.experiment_id
        running = f"tags.{record.PARENT} = '{parent_id}' and attributes.status = 'RUNNING'"
        for run in self.client.search_runs([experiment], running):
            run_id = run.info.run_id
            if leave_live and checkpoints.is_live(run_id):
                continue
            saved = shared_checkpoints.exists(run)
            if stopped_by is not None and was_interrupted(stopped_by):
                reason = f"{why_stopped(stopped_by)}, its process ended with its sweep; {how_to_continue(run, saved)}"
                self._end_with_reason(run, RunStatus.KILLED, reason, outcome="stopped")  # as a job stopped in turn
            else:
                self._end_with_reason(run, RunStatus.FAILED, LOST + how_to_continue(run, saved))
            if not saved and not checkpoints.is_live(run_id):
                checkpoints.discard(run_id)  # the lock file its process left: nothing will take it

    def _end_with_reason(self, run, status: int, reason: str, name: str | None = None, outcome: str = "") -> None:
        """Another process's run ended for it: its reason, its status, and its name saying how it ended."""
        outcome = outcome or ("killed" if status == RunStatus.KILLED else "failed")
        self.client.set_tag(run.info.run_id, record.FAILURE_REASON, reason)
        self.client.set_terminated(run.info.run_id, RunStatus.to_string(status))
        self.client.update_run(run.info.run_id, name=naming.ended_name(name or run.info.run_name, outcome))

    def _write_results(self) -> list[dict]:
        jobs = list(self._jobs().items())
        rows = [results.row(job, run, self.run_id) for job, run in jobs]
        curves = [self._history(row["run_id"], "val_accuracy") for row in rows]
        if rows:  # a sweep Hydra stopped before its first job has nothing to draw
            self.client.log_figure(self.run_id, plots.sweep_comparison(curves, rows), record.SWEEP_COMPARISON)
        self._log_table(rows, results.COLUMNS, record.SWEEP_RESULTS_CSV, record.SWEEP_RESULTS_MD)
        over_seeds = None  # what the seeds or folds of each configuration tell apart, where the sweep has them
        if summary.replicates_vary(self.varies):
            over_seeds = self._summarise_replicates(rows, curves)
        self._name_the_best(rows)
        self.client.log_batch(self.run_id, params=_params(results.common_params([run for _, run in jobs])))
        if (counted := naming.sweep_name(self.varies, len(rows), self.searching)) != self.name:  # a glob's jobs
            self.name = counted
            self.client.update_run(self.run_id, name=counted)
        self.client.set_tag(self.run_id, record.NOTE, results.description(self.name, rows, over_seeds))
        return rows

    def _summarise_replicates(self, rows: list[dict], curves: list[list[float]]) -> str:
        """Over the seeds or folds of each configuration: a table, its verdict in words (returned), and
        the validation curves as bands. A run two jobs counted (the same config twice) counts once."""
        once = {row["run_id"]: (row, curve) for row, curve in zip(rows, curves, strict=True)}
        rows, curves = [row for row, _ in once.values()], [curve for _, curve in once.values()]
        configurations = summary.by_configuration(rows)
        csv_text = results.to_csv(configurations, summary.COLUMNS)
        self.client.log_text(self.run_id, csv_text, record.SWEEP_SUMMARY_CSV)
        table, verdict = results.to_markdown(configurations, summary.COLUMNS), summary.in_words(configurations)
        self.client.log_text(self.run_id, f"{table}\n{verdict}", record.SWEEP_SUMMARY_MD)
        bands = {
            f"{entry['configuration']} (n={entry['n']})": summary.curve_bands(runs)
            for entry, runs in summary.curves_by_configuration(rows, curves, configurations)
        }
        self.client.log_figure(self.run_id, plots.seed_bands(bands), record.SWEEP_SUMMARY_FIGURE)
        return verdict

    def _log_table(self, rows: list[dict], columns: list[str], csv_path: str, markdown_path: str) -> None:
        self.client.log_text(self.run_id, results.to_csv(rows, columns), csv_path)
        self.client.log_text(self.run_id, results.to_markdown(rows, columns), markdown_path)

    def _jobs(self) -> dict[str, object]:
        """The run each job counted itself with, in job order."""
        counted = record.counted_jobs(self.client.get_run(self.run_id))
        return {job: self.client.get_run(run_id) for job, run_id in counted.items()}

    def _name_the_best(self, rows: list[dict]) -> None:
        """Tag the parent with the job that finished with the highest validation accuracy, and say it."""
        best = results.best(rows)
        if best is None:
            return
        objective = results.OBJECTIVE
        self.client.set_tag(self.run_id, record.BEST_RUN_ID, best["run_id"])
        self.client.set_tag(self.run_id, record.BEST_JOB, best["run"])
        self.client.log_metric(self.run_id, "best_val_accuracy", readable(best[objective]))
        print(
            f"imdb-exp: best of {naming.counted(len(rows), 'job')} ({results.tally(rows)}): {best['run']} "
            f"(run {best['run_id']}), "
            f"{objective}={best[objective]:.4f}, test_accuracy={results.cell(best['test_accuracy'])}"
        )

    def _history(self, run_id: str, metric: str) -> list[float]:
        return [m.value for m in sorted(self.client.get_metric_history(run_id, metric), key=lambda m: m.step)]


def how_to_continue(run, saved: bool) -> str:
    """How a job run cut off continues, if it ``saved`` a checkpoint: a search launched again asks its
    study for new trials rather than continuing its trials."""
    trial = record.STUDY in run.data.tags
    if not saved:
        return "it left no checkpoint" if trial else "it left no checkpoint: launching the sweep again trains it anew"
    if trial:
        return "imdb-exp resume=RUN_ID continues it (the search launched again asks its study for new trials)"
    return "launching the sweep again, or imdb-exp resume=RUN_ID, continues it"


def _params(values: dict[str, str]) -> list[Param]:
    return [Param(key, value) for key, value in values.items()]


def _refuse_unsound_search(config: DictConfig) -> None:
    """Ends the command (exit status 2) before any run is made, for a search that could not be sound:
    its settings, the ends of its space, then the study it would continue (opened only once the rest
    passed, so that a refused command leaves no storage made)."""
    from imdb_exp.sweeps import search

    try:
        search.check_settings(config.hydra.sweeper)
        if not config.data.val_size:
            raise ConfigError(
                "a search ranks trials by their validation accuracy, and data.val_size=0 holds no reviews out "
                "(the test set is never used to choose); set data.val_size"
            )
        study_storage.refuse_storage_out_of_reach(config.hydra.sweeper.storage, config.hydra.launcher)
        fixed, space = search.fixed_and_space(config.hydra.sweeper.params or {}, config.hydra.overrides.task)
        _refuse_values_no_job_can_run(search.each_end(fixed, space))
        if "data.val_size" in space:
            raise ConfigError(
                "a search ranks trials by their validation accuracy, on the same validation reviews: "
                "data.val_size cannot be searched; give it one value"
            )
        search.check_continued(search.study_of(config, fixed, space), config.hydra.sweeper.direction, space)
    except ConfigError as err:
        _refused(err)


def _refused(err: Exception) -> NoReturn:
    """Ends the command in one line, exit status 2, before the sweep's run is made."""
    refuse("imdb-exp", str(err) if isinstance(err, ConfigError) else hydra_in_one_line(err))


def open_parent_run_id() -> str | None:
    """The parent run of the sweep this process launched and has not ended, if any."""
    return between_jobs.sweep.run_id if between_jobs.sweep is not None else None


def launched_here() -> bool:
    """Whether the current job was launched by this process (Hydra's basic launcher), which ends the
    sweep's run after waiting for the jobs' records; a launcher's worker process did not."""
    return between_jobs.sweep is not None


def end_unfinished(stopped_by: BaseException) -> BaseException:
    """Ends the parent run of a sweep that ``stopped_by`` cut short (a signal, a job's or Hydra's error);
    what stopped it: a SIGINT the sweep held rather than the launcher's failure that followed it (a
    Ctrl-C that reached an idle joblib worker breaks joblib's pool)."""
    sweep = between_jobs.sweep
    if sweep is None:
        return stopped_by
    if (held := stopping.let_go()) is not None and not was_interrupted(stopped_by):
        stopped_by = held
    sweep.end(stopped_by)
    return stopped_by


def was_interrupted(err: BaseException) -> bool:
    """Ctrl-C, a kill or a hang-up, also as the exit status a job ended the process with (128 + the signal)."""
    return isinstance(err, KeyboardInterrupt) or (isinstance(err, SystemExit) and err.code in (129, 130, 143))


def _refuse_values_no_job_can_run(each_value: list[list[str]]) -> None:
    """A swept value of the wrong type or out of range (``trainer.epochs=1,-1``, a search's
    ``model.dropout=interval(0.5,1.5)``), or an archive that is not there, ends the command before the
    sweep's run opens, in one line and exit status 2 as for a single run; found as a job, it would
    come after the jobs before it, as a FAILED run or Hydra's report of its own. ``each_value``: the
    overrides of configs in which every value the sweep can give each key occurs (plan.each_value,
    search.each_end)."""
    from hydra import compose
    from hydra.errors import HydraException

    from imdb_exp.config import schema
    from imdb_exp.data import splits

    for overrides in each_value:
        try:
            splits.check_source(schema.validate(compose("config", overrides)).data)
        except (UserError, HydraException) as err:
            _refused(err)


def failed_jobs(rows: list[dict]) -> str | None:
    """Which jobs of a sweep did not finish, as the command's last line and the parent's failure_reason say it."""
    failed = [row for row in rows if row["status"] != "FINISHED"]
    if not failed:
        return None
    names = "; ".join(row["run"] for row in failed)  # each name says how it ended
    return f"{len(failed)} of {len(rows)} sweep jobs failed: {names}"


def why_stopped(err: BaseException) -> str:
    """A signal's reason, as a job's run says it (``stopped by SIGTERM``), also from the exit status a job
    ended the process with."""
    if isinstance(err, KeyboardInterrupt):
        return interrupts.reason(err)
    return f"stopped by {signal.Signals(err.code - 128).name}"


def describe(err: BaseException) -> str:
    # Hydra reports an error and exits 1: the error itself is the context of that SystemExit.
    error = err.__context__ if isinstance(err, SystemExit) and err.__context__ is not None else err
    # Hydra's composition errors say what failed; their cause says why (the first line of it).
    why = f": {first_line(error.__cause__)}" if error.__cause__ and str(error.__cause__) else ""
    return f"{type(error).__name__}: {error}{why}"


def count_done_job(cfg: DictConfig, tags: dict[str, str], run) -> float | None:
    """Counts an earlier FINISHED run of exactly this job's config as the job, instead of training it again."""
    client = store.client(cfg.tracking.uri)
    record.count_job(client, cfg.tracking.parent_run_id, tags.get(record.JOB), run.info.run_id)
    print(
        f"imdb-exp: already done: run {run.info.run_id} FINISHED with this exact config; not trained again "
        "(retrain=true trains it anyway)"
    )
    return run.data.metrics.get(results.OBJECTIVE)


def record_unstarted_job(cfg: DictConfig, tags: dict[str, str], err: BaseException) -> None:
    """A FAILED run, under the sweep's run, for a job that failed before its own run opened."""
    parent_run_id = cfg.tracking.parent_run_id
    client = store.client(cfg.tracking.uri)
    parent = client.get_run(parent_run_id)
    if record.job_tag(tags.get(record.JOB)) in parent.data.tags:
        return  # its run opened, and holds the failure
    run = client.create_run(
        parent.info.experiment_id,
        run_name=naming.ended_name(naming.run_name(tags, cfg), "failed"),
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
