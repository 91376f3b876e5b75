"""A sweep as one parent run that accounts for every job, ends on every exit path, and picks up where an
earlier launch stopped."""

import csv
import os
import signal
import statistics
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from imdb_exp.analysis.summary import ONLY_REPLICATES
from imdb_exp.cli.main import run_job
from imdb_exp.run import resume
from imdb_exp.run.train import train
from imdb_exp.runtime import process
from imdb_exp.runtime.interrupts import Interrupted, Interrupts
from imdb_exp.sweeps import multirun
from imdb_exp.tracking import record
from imdb_exp.training import checkpoints
from tests.support.commands import run_cli, start_cli, wait_for_epochs
from tests.support.presets import DEBUG
from tests.support.servers import mlflow_server
from tests.support.store import recorded_runs, steps


def sweep_runs(home: Path) -> tuple[MlflowClient, list, list]:
    client, runs = recorded_runs(home / "mlflow.db")
    return (
        client,
        [r for r in runs if record.SWEEP in r.data.tags],
        [r for r in runs if record.SWEEP not in r.data.tags],
    )


def results_table(client, parent, tmp_path) -> list[list[str]]:
    path = client.download_artifacts(parent.info.run_id, record.SWEEP_RESULTS_CSV, str(tmp_path / parent.info.run_id))
    return list(csv.reader(Path(path).read_text().splitlines()))


@pytest.mark.slow
@pytest.mark.e2e
def test_a_job_that_cannot_start_is_a_failed_run_under_its_parent(tmp_path, archive, isolated_home):
    # Each value is fine with the first of the other (what is checked before the sweep starts); the
    # last pairing is not: patience watches a validation split that val_size=0 leaves out.
    sweep = ["trainer.patience=null,2", "data.val_size=0.25,0"]
    result = run_cli("-m", *sweep, "trainer.epochs=1", f"data.archive={archive}", *DEBUG, cwd=tmp_path)
    assert result.returncode == 1
    refused = "trainer.patience=2 watches the validation loss, but data.val_size=0 holds no reviews out"
    assert f"imdb-exp: error: {refused}" in result.stderr  # the job's own line
    assert "imdb-exp: error: 1 of 4 sweep jobs failed: patience=2 val_size=0 (failed)" in result.stderr
    client, (parent,), jobs = sweep_runs(isolated_home)
    assert parent.info.status == "FAILED"
    assert parent.data.tags[record.FAILURE_REASON] == "1 of 4 sweep jobs failed: patience=2 val_size=0 (failed)"
    assert [j.data.tags[record.PARENT] for j in jobs] == [parent.info.run_id] * 4
    assert [j.info.status for j in jobs] == ["FINISHED"] * 3 + ["FAILED"]
    assert jobs[3].data.tags[record.FAILURE_REASON].startswith(f"ConfigError: {refused}")
    header, *rows = results_table(client, parent, tmp_path)
    assert [(row[1], row[2]) for row in rows][3] == ("patience=2 val_size=0 (failed)", "FAILED")
    assert rows[3][header.index("note")].startswith(f"ConfigError: {refused}")


@pytest.mark.e2e
@pytest.mark.parametrize(
    "sweep, said",
    [
        (["trainer.seed=0,abc"], "Error merging override trainer.seed=abc: Value 'abc' of type 'str' could not be"),
        (["optimizer=adam,rmsprop", "trainer.epochs=1,-1"], "trainer.epochs=-1 must be > 0"),
        (["model=dense,lstmm"], "In 'config': Could not find 'model/lstmm' Available options in 'model': bigru cnn"),
        (["optimizer=adam,rmsprop", "data.archive=/no/such/archive"], "data.archive=/no/such/archive does not exist"),
        # A search's space: each choice and the ends of each range, and the sweeper's own settings.
        (["hparams_search=dense", "model.dropout=interval(0.5,1.5)"], "model.dropout=1.5 must be in [0, 1)"),
        (["hparams_search=dense", "trainer.batch_size=choice(0,128)"], "trainer.batch_size=0 must be > 0"),
        (
            ["hparams_search=dense", "optimizer.learnig_rate=interval(1e-4,1e-3)"],
            "Could not override 'optimizer.learnig",
        ),
        (
            ["hparams_search=dense", "optimizer.learning_rate=interval(1e-2,1e-4)"],
            "optimizer.learning_rate=interval(1e-2,1e-4): `low <= high` must hold",
        ),
        (["hparams_search=dense", "hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials=0: a search runs at least 1"),
        (["hparams_search=dense", "hydra.sweeper.pruner=hyperband"], "hydra.sweeper.pruner cannot be made"),
        (["hparams_search=dense", "trainer.epochs=range(5,1)"], "trainer.epochs=range(5,1) holds no value to search"),
        (
            ["hparams_search=dense", "model.dropout=tag(lgo,interval(0,0.3))"],
            "model.dropout=tag(lgo,interval(0,0.3)): tag",
        ),
        (["hparams_search=dense", "data.val_size=interval(0.1,0.3)"], "a search ranks trials by their validation"),
        (
            ["hparams_search=dense", "hydra.sweeper.n_jobs=0"],
            "hydra.sweeper.n_jobs=0: a search runs at least 1 trial at",
        ),
        (["hydra/launcher=joblib", "hydra.launcher.n_jobs=0", "trainer.seed=0,1"], "hydra.launcher.n_jobs=0: joblib"),
    ],
    ids=[
        "type",
        "range",
        "option",
        "archive",
        "search-range",
        "search-choice",
        "search-key",
        "search-ends",
        "search-trials",
        "search-pruner",
        "search-empty-range",
        "search-tag",
        "search-val-size",
        "search-workers",
        "joblib-workers",
    ],  # fmt: skip
)
def test_a_swept_value_no_job_could_run_with_is_refused_before_the_sweep_opens_a_run(
    tmp_path, isolated_home, sweep, said
):
    result = run_cli("-m", *sweep, cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"imdb-exp: error: {said}")
    assert not (isolated_home / "mlflow.db").exists()  # no parent, no job
    assert not (isolated_home / "optuna-journal.log").exists()  # no study, not even an empty journal


@pytest.mark.e2e
def test_a_search_without_a_validation_split_is_refused(tmp_path, isolated_home):
    result = run_cli("-m", "hparams_search=dense", "data.val_size=0", cwd=tmp_path)
    assert result.returncode == 2
    assert "imdb-exp: error: a search ranks trials by their validation accuracy, and data.val_size=0" in result.stderr
    assert not (isolated_home / "mlflow.db").exists()


@pytest.mark.slow
@pytest.mark.e2e
def test_a_sweep_stopped_by_a_signal_ends_killed_and_a_relaunch_finishes_it_without_training_again(
    tmp_path, archive, isolated_home
):
    args = ["-m", "optimizer=rmsprop,adam", f"data.archive={archive}", *DEBUG, "trainer.epochs=60"]
    args += ["tracking.log_model=false"]
    process = start_cli(*args, cwd=tmp_path)
    wait_for_epochs(process, isolated_home / "mlflow.db", 2, run_tag=("optimizer", "adam"))  # in the second job
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    client, (parent,), (rmsprop, adam) = sweep_runs(isolated_home)
    assert (parent.info.status, rmsprop.info.status, adam.info.status) == ("KILLED", "FINISHED", "KILLED")
    assert [row[2] for row in results_table(client, parent, tmp_path)[1:]] == ["FINISHED", "KILLED"]
    assert adam.info.run_name == "adam (stopped)"  # the name says it, where a chart's legend shows no status
    assert parent.info.run_name == "sweep optimizer, 2 jobs (stopped)"
    assert parent.data.tags[record.FAILURE_REASON] == adam.data.tags[record.FAILURE_REASON] == "stopped by SIGTERM"

    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"imdb-exp: already done: run {rmsprop.info.run_id} FINISHED" in again.stdout
    client, (_, second), jobs = sweep_runs(isolated_home)
    assert [j.info.run_id for j in jobs] == [rmsprop.info.run_id, adam.info.run_id]  # no new job runs
    continued = client.get_run(adam.info.run_id)
    assert continued.info.status == "FINISHED" and continued.data.tags[record.PARENT] == second.info.run_id
    assert steps(client, adam.info.run_id, "val_loss") == list(range(1, 61))
    header, *rows = results_table(client, second, tmp_path)
    assert [(row[1], row[2]) for row in rows] == [("rmsprop", "FINISHED"), ("adam", "FINISHED")]
    assert rows[0][header.index("note")].startswith("already done") and rows[1][header.index("note")] == ""
    assert second.info.status == "FINISHED"


@pytest.mark.slow
@pytest.mark.e2e
def test_a_job_repeating_the_previous_ones_config_counts_it_even_while_its_records_are_being_written(
    tmp_path, archive, isolated_home
):
    # The first job's records are written while a later job trains: when the second job asks for
    # earlier runs of its config, the first is still RUNNING with its checkpoint. It was continued
    # (two jobs in one run), or, its checkpoint going meanwhile, ended FAILED as damaged.
    result = run_cli("-m", "trainer.seed=3,3", f"data.archive={archive}", *DEBUG, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    _, runs = recorded_runs(isolated_home / "mlflow.db")
    (first,) = [run for run in runs if record.SWEEP not in run.data.tags]
    assert first.info.status == "FINISHED"
    assert f"already done: run {first.info.run_id} FINISHED" in result.stdout
    assert "continuing run" not in result.stdout + result.stderr


@pytest.mark.slow
def test_a_jobs_run_stays_held_until_its_records_are_written(compose_cfg, archive, isolated_home, monkeypatch):
    # Meanwhile the run is RUNNING with its checkpoint: a parallel launcher's worker meeting the same
    # config took it for one cut off and continued it, while this process went on to end it.
    monkeypatch.setattr(multirun, "launched_here", lambda: True)  # the sweep's process: it goes on at once
    try:
        train(compose_cfg(f"data.archive={archive}", *DEBUG), {})
        client, (run,) = recorded_runs(isolated_home / "mlflow.db")
        assert run.info.status == "RUNNING" and checkpoints.path(run.info.run_id).is_file()  # records not yet written
        assert resume.why_not_continuable(client, run) == "another live process is training it"
    finally:
        process.between_jobs.writer.wait()
    written = client.get_run(run.info.run_id)
    assert written.info.status == "FINISHED" and not checkpoints.is_live(run.info.run_id)


@pytest.mark.slow
def test_a_sweep_job_counts_an_earlier_finished_run_of_its_config_unless_told_to_retrain(
    compose_cfg, archive, isolated_home, capsys
):
    args = [f"data.archive={archive}", *DEBUG, "tracking.log_model=false"]
    earlier = train(compose_cfg(*args), {})
    client, (done,) = recorded_runs(isolated_home / "mlflow.db")
    parent = client.create_run(done.info.experiment_id).info.run_id
    job = {record.JOB: "0"}
    as_job = compose_cfg(*args, f"tracking.parent_run_id='{parent}'")
    assert run_job(as_job, job, Interrupts()) == earlier == done.data.metrics["final_val_accuracy"]
    assert f"already done: run {done.info.run_id} FINISHED" in capsys.readouterr().out
    assert client.get_run(parent).data.tags["job.0"] == done.info.run_id
    assert len(recorded_runs(isolated_home / "mlflow.db")[1]) == 2  # the earlier run and the parent, nothing new

    run_job(compose_cfg(*args, f"tracking.parent_run_id='{parent}'", "retrain=true"), job, Interrupts())
    _, (_, _, retrained) = recorded_runs(isolated_home / "mlflow.db")
    assert retrained.data.tags[record.PARENT] == parent and "tracking.parent_run_id" not in retrained.data.params
    assert client.get_run(parent).data.tags["job.0"] == retrained.info.run_id


@pytest.mark.slow
@pytest.mark.e2e
def test_every_source_experiment_runs_from_one_glob(tmp_path, archive, isolated_home):
    # The experiments' own sizes (10,000 validation reviews, 20 epochs) cut down to the synthetic archive.
    # retrain: cut down alike, some experiments become the same config, which a sweep would train once.
    small = ["data.val_size=0.25", "trainer.epochs=1", "tracking.log_model=false", "retrain=true"]
    result = run_cli("-m", "+experiment=glob(*)", f"data.archive={archive}", *DEBUG, *small, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    _, runs = recorded_runs(isolated_home / "mlflow.db")
    jobs = [r for r in runs if record.SWEEP not in r.data.tags]
    experiments = sorted(p.stem for p in Path(__file__).parents[2].joinpath("conf", "experiment").glob("*.yaml"))
    assert sorted(r.data.tags[record.OVERRIDES].split()[0] for r in jobs) == [f"+experiment={e}" for e in experiments]
    assert {r.info.status for r in jobs} == {"FINISHED"}


@pytest.mark.slow
@pytest.mark.e2e
def test_a_sweep_is_one_parent_run_with_nested_jobs_and_a_comparison(tmp_path, archive, isolated_home):
    result = run_cli(
        "-m",
        "model=dense",
        "optimizer=rmsprop,adam",
        "trainer.seed=1,2",
        f"data.archive={archive}",
        *DEBUG,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "INFO mlflow" not in result.stderr  # its bookkeeping as the sweep's run makes the store's tables
    client, (parent,) = recorded_runs(isolated_home / "mlflow.db", "tags.sweep != ''")
    _, children = recorded_runs(isolated_home / "mlflow.db", f"tags.{record.PARENT} = '{parent.info.run_id}'")
    assert len(children) == 4 and parent.info.status == "FINISHED"
    assert sorted(c.data.tags[record.OPTIMIZER] for c in children) == ["adam", "adam", "rmsprop", "rmsprop"]
    listed = {a.path for a in client.list_artifacts(parent.info.run_id, record.SWEEP)}
    assert listed == {f"sweep/{name}" for name in ("comparison.png", "results.csv", "results.md")} | {
        f"sweep/summary.{kind}"
        for kind in ("csv", "md", "png")  # two seeds per optimizer: summarised below
    }
    table = client.download_artifacts(parent.info.run_id, record.SWEEP_RESULTS_CSV, str(tmp_path))
    lines = Path(table).read_text().splitlines()
    assert lines[0].startswith("job,run,status,test_accuracy") and len(lines) == 5
    table = [line.split(",") for line in lines[1:]]
    # Jobs are named by what sets them apart (model=dense and the data settings are shared).
    assert {r[1] for r in table} == {f"{o} seed={s}" for o in ("rmsprop", "adam") for s in (1, 2)}
    assert [r[0] for r in table] == ["0", "1", "2", "3"] and {r[2] for r in table} == {"FINISHED"}
    assert sorted(r[3] for r in table) == sorted(f"{c.data.metrics['test_accuracy']:.4f}" for c in children)
    assert parent.info.run_name == "sweep optimizer x seed, 4 jobs"
    assert result.stdout.strip().splitlines()[-2].startswith(f"imdb-exp: sweep run {parent.info.run_id}")
    assert not (tmp_path / "mlruns").exists()  # the runs went to the default store, wherever the command ran
    summary_csv = client.download_artifacts(parent.info.run_id, record.SWEEP_SUMMARY_CSV, str(tmp_path))
    header, *summary = csv.reader(Path(summary_csv).read_text().splitlines())
    assert header[:4] == ["configuration", "n", "test_accuracy_mean", "test_accuracy_sd"]
    assert [row[:2] for row in summary] == [["rmsprop", "2"], ["adam", "2"]]  # what tells them apart
    for name in ("ci_low", "ci_high", "diff_vs_best", "p_vs_best"):
        assert f"test_accuracy_{name}" in header
    low, high = (header.index(f"test_accuracy_ci_{side}") for side in ("low", "high"))
    assert all(float(row[low]) <= float(row[2]) <= float(row[high]) for row in summary)
    # The seeds of one configuration share a group (MLflow's group-by); the configurations differ.
    groups = {c.data.tags[record.OPTIMIZER]: set() for c in children}
    for child in children:
        groups[child.data.tags[record.OPTIMIZER]].add(child.data.tags[record.CONFIG_GROUP])
    (rmsprop,), (adam,) = groups["rmsprop"], groups["adam"]
    assert rmsprop.split()[:2] == ["dense", "rmsprop"] and adam.split()[:2] == ["dense", "adam"] and "seed" not in adam
    for configuration, _, mean, sd, *_ in summary:
        accuracies = [
            c.data.metrics["test_accuracy"] for c in children if configuration.endswith(c.data.tags[record.OPTIMIZER])
        ]
        assert (float(mean), float(sd)) == pytest.approx(
            (statistics.fmean(accuracies), statistics.stdev(accuracies)), abs=1e-4
        )


@pytest.mark.slow
@pytest.mark.e2e
def test_a_seed_sweep_that_counts_an_earlier_run_of_its_own_is_summarised_over_every_seed(
    tmp_path, archive, isolated_home
):
    # The earlier run trained at the default seed without naming it: its overrides hold no trainer.seed.
    args = [f"data.archive={archive}", *DEBUG, "tracking.log_model=false"]
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    result = run_cli("-m", "trainer.seed=0,1", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "already done" in result.stdout
    client, (parent,) = recorded_runs(isolated_home / "mlflow.db", "tags.sweep != ''")
    summary_csv = client.download_artifacts(parent.info.run_id, record.SWEEP_SUMMARY_CSV, str(tmp_path))
    header, *summary = csv.reader(Path(summary_csv).read_text().splitlines())
    assert [row[:2] for row in summary] == [[ONLY_REPLICATES, "2"]]  # both seeds, the earlier run's among them


@pytest.mark.slow
@pytest.mark.e2e
def test_eight_parallel_jobs_share_one_sqlite_store_and_one_failure_stays_contained(tmp_path, archive, isolated_home):
    # Eight worker processes write to one SQLite file at once; the seventh job diverges.
    rates = "0.01,0.02,0.03,0.04,0.05,0.06,1e30,0.07"
    result = run_cli(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=8",
        "optimizer.name=sgd",
        f"optimizer.learning_rate={rates}",
        f"data.archive={archive}",
        *DEBUG,
        "tracking.log_model=false",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "1 of 8 sweep jobs failed: lr=1e+30 (failed)" in result.stderr
    assert "database is locked" not in result.stderr
    _, (parent,) = recorded_runs(isolated_home / "mlflow.db", "tags.sweep != ''")
    _, children = recorded_runs(isolated_home / "mlflow.db", f"tags.{record.PARENT} = '{parent.info.run_id}'")
    assert sorted(c.info.status for c in children) == ["FAILED"] + ["FINISHED"] * 7
    assert len({c.info.run_id for c in children}) == 8 and parent.info.status == "FAILED"
    (reason,) = [c.data.tags[record.FAILURE_REASON] for c in children if c.info.status == "FAILED"]
    assert reason.startswith("NonFiniteLoss: training loss became")


@pytest.mark.slow
@pytest.mark.e2e
def test_parallel_jobs_each_take_one_of_the_visible_devices_and_record_it(tmp_path, archive, isolated_home):
    overrides = [
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "trainer.seed=0,1,2",
        f"data.archive={archive}",
    ]
    env = {"CUDA_VISIBLE_DEVICES": "0,1"}
    result = run_cli(*overrides, *DEBUG, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    _, jobs = recorded_runs(isolated_home / "mlflow.db", f"tags.{record.JOB} != ''")
    devices = {int(job.data.tags[record.JOB]): job.data.tags[record.DEVICE] for job in jobs}
    # Two workers hold one device each; the third job runs in whichever worker is free, on its device.
    assert {devices[0], devices[1]} == {"0", "1"} and devices[2] in {"0", "1"}
    assert not any(key.startswith("trainer.one_device") for key in jobs[0].data.params)  # not a training setting

    off = run_cli(
        *overrides, "trainer.one_device_per_job=false", f"data.archive={archive}", *DEBUG, cwd=tmp_path, env=env
    )
    assert off.returncode == 0 and "already done" in off.stdout + off.stderr  # the same runs: identity unchanged


@pytest.mark.slow
@pytest.mark.e2e
def test_a_sweep_against_a_tracking_server_records_all_its_runs_there(tmp_path, archive, isolated_home):
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path) as url:
        result = run_cli(
            "-m",
            "optimizer=rmsprop,adam",
            f"tracking.uri={url}",
            f"data.archive={archive}",
            *DEBUG,
            "tracking.log_model=false",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        client, (parent,) = recorded_runs(url, "tags.sweep != ''")
        _, children = recorded_runs(url, f"tags.{record.PARENT} = '{parent.info.run_id}'")
        assert sorted(c.data.tags[record.OPTIMIZER] for c in children) == ["adam", "rmsprop"]
        assert {c.info.status for c in children} == {"FINISHED"}
        assert record.LOSS_CURVE in {a.path for a in client.list_artifacts(children[0].info.run_id, "curves")}
    assert not (isolated_home / "mlflow.db").exists()  # nothing went to the default store


@pytest.mark.slow
@pytest.mark.e2e
def test_a_password_in_any_url_of_a_sweep_is_shown_nowhere_and_each_jobs_log_goes_with_its_run(
    tmp_path, archive, isolated_home
):
    storage = "postgresql://bob:secret@127.0.0.1:1/optuna"  # a key the config takes; no search reads it here
    result = run_cli(
        "-m", "optimizer=rmsprop,adam", f"trial.storage={storage}", f"data.archive={archive}", *DEBUG, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Hydra lists each job's overrides, with their colons escaped
    assert "postgresql\\://***@127.0.0.1\\:1/optuna" in result.stdout + result.stderr
    assert "secret" not in result.stdout + result.stderr
    client, runs = recorded_runs(isolated_home / "mlflow.db")
    for run in runs:
        recorded = [run.info.run_name, *run.data.params.values(), *run.data.tags.values()]
        assert not [value for value in recorded if "secret" in value]
        for artifact in (record.CONFIG, *(a.path for a in client.list_artifacts(run.info.run_id, record.JOB_LOGS))):
            if record.SWEEP not in run.data.tags:
                text = Path(client.download_artifacts(run.info.run_id, artifact, str(tmp_path / run.info.run_id)))
                assert "secret" not in text.read_text()
    jobs = [run for run in runs if record.SWEEP not in run.data.tags]
    for job in jobs:  # what the job logged, wherever it ran, is read from its run
        (log,) = client.list_artifacts(job.info.run_id, record.JOB_LOGS)
        text = Path(client.download_artifacts(job.info.run_id, log.path, str(tmp_path / "logs"))).read_text()
        assert f"run {job.info.run_name}:" in text and "test_accuracy=" in text


@pytest.mark.slow
def test_a_signal_while_a_sweep_ends_waits_for_its_table_and_its_run_then_stops_the_command(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("imdb-exp", artifact_location=(tmp_path / "artifacts").as_uri())
    ending = multirun.SweepParentRun()
    ending.client, ending.run_id = client, client.create_run(experiment).info.run_id
    job = client.create_run(experiment, tags={record.PARENT: ending.run_id}).info.run_id
    record.count_job(client, ending.run_id, "0", job)

    def last_records() -> None:  # the last job's, still being written when the signal comes
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)
        client.set_terminated(job, "FINISHED")

    process.between_jobs.writer.hand_over(job, last_records)
    with Interrupts().handled(), pytest.raises(Interrupted):
        ending.end()
    assert client.get_run(job).info.status == "FINISHED"  # waited for, not taken for a lost job
    assert client.get_run(ending.run_id).info.status == "FINISHED"
    assert [a.path for a in client.list_artifacts(ending.run_id, record.SWEEP)] == [
        record.SWEEP_COMPARISON,
        record.SWEEP_RESULTS_CSV,
        record.SWEEP_RESULTS_MD,
    ]


def test_a_cut_off_job_is_told_how_to_continue_a_grids_job_by_launching_again_a_trial_only_by_resume(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("e")
    job = client.create_run(experiment)
    trial = client.create_run(experiment, tags={record.STUDY: "dense-0", record.TRIAL: "4"})
    assert (
        multirun.how_to_continue(job, saved=False) == "it left no checkpoint: launching the sweep again trains it anew"
    )
    assert multirun.how_to_continue(trial, saved=False) == "it left no checkpoint"
    assert (
        multirun.how_to_continue(job, saved=True)
        == "launching the sweep again, or imdb-exp resume=RUN_ID, continues it"
    )
    assert multirun.how_to_continue(trial, saved=True) == (
        "imdb-exp resume=RUN_ID continues it (the search launched again asks its study for new trials)"
    )
