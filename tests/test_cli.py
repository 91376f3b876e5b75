"""The installed command end to end, in a subprocess, from an unrelated working directory."""

import csv
import statistics
import time
from importlib.metadata import version
from pathlib import Path

import pytest

from imdb_exp.tracking import record
from tests.conftest import DEBUG, mlflow_server, recorded_runs, run_cli


def test_help_lists_the_users_groups_and_the_config_as_written_at_once(tmp_path):
    started = time.monotonic()
    result = run_cli("--help", cwd=tmp_path)
    seconds = time.monotonic() - started
    assert result.returncode == 0
    models = "model: bigru, cnn, cnn_lstm, dense, fasttext, lstm, lstm_dropout, nbsvm, ngram, pretrained, transformer"
    groups = ("data: multihot, padded, text", models, "optimizer: adam, rmsprop", "debug: overfit, tiny")
    for line in groups:
        assert line in result.stdout
    assert "model_schema" not in result.stdout  # the schema's nodes are no choice for a user
    for line in ("val_size: 10000\n", "server_timeout: 60\n", "backend: ${oc.env:KERAS_BACKEND,tensorflow}"):
        assert line in result.stdout
    assert seconds < 3, f"--help took {seconds:.1f} s"  # MLflow and the backends are not imported for it

    with_overrides = run_cli("model=lstm", "--help", cwd=tmp_path)
    assert "encoding: padded" in with_overrides.stdout and "lstm_units: 100" in with_overrides.stdout
    unknown = run_cli("model=nope", "--help", cwd=tmp_path)
    assert unknown.returncode == 1 and "imdb-exp: error: In 'config': Could not find 'model/nope'" in unknown.stderr


def test_impossible_pairing_stops_with_one_line_and_no_run(tmp_path, isolated_home):
    result = run_cli("model=lstm", "data=multihot", "data.archive=/nonexistent.tar.gz", cwd=tmp_path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("imdb-exp: error:")]
    assert errors == [
        "imdb-exp: error: model family 'lstm' reads data=padded, but data=multihot was chosen; "
        "drop the data override or pick data=padded"
    ]
    assert "Traceback" not in result.stderr
    assert not (isolated_home / "mlflow.db").exists()


@pytest.mark.slow
def test_a_run_prints_its_own_lines_without_start_up_chatter_or_logging_warnings(tmp_path, archive, isolated_home):
    result = run_cli(f"data.archive={archive}", *DEBUG, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "test_accuracy=" in output
    noises = ("oneDNN", "cpu_feature_guard", "cuInit", "absl::InitializeLog", "UserWarning", "CloudPickle", "it/s]")
    for noise in noises:
        assert noise not in output, f"{noise!r} in the output:\n{output[-3000:]}"


def test_version(tmp_path):
    result = run_cli("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"imdb-exp {version('imdb-exp')}"


@pytest.mark.slow
def test_every_source_experiment_runs_from_one_glob(tmp_path, archive, isolated_home):
    # The experiments' own sizes (10,000 validation reviews, 20 epochs) cut down to the synthetic archive.
    # retrain: cut down alike, some experiments become the same config, which a sweep would train once.
    small = ["data.val_size=0.25", "trainer.epochs=1", "tracking.log_model=false", "retrain=true"]
    result = run_cli("-m", "+experiment=glob(*)", f"data.archive={archive}", *DEBUG, *small, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    _, runs = recorded_runs(isolated_home / "mlflow.db")
    jobs = [r for r in runs if record.SWEEP not in r.data.tags]
    experiments = sorted(p.stem for p in Path(__file__).parents[1].joinpath("conf", "experiment").glob("*.yaml"))
    assert sorted(r.data.tags[record.OVERRIDES].split()[0] for r in jobs) == [f"+experiment={e}" for e in experiments]
    assert {r.info.status for r in jobs} == {"FINISHED"}


@pytest.mark.slow
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
    assert lines[0].startswith("job,run,overrides,status,test_accuracy") and len(lines) == 5
    table = [line.split(",") for line in lines[1:]]
    # Jobs are named by what sets them apart (model=dense and the data settings are shared).
    assert {r[2] for r in table} == {f"optimizer={o} trainer.seed={s}" for o in ("rmsprop", "adam") for s in (1, 2)}
    assert [r[0] for r in table] == ["0", "1", "2", "3"] and {r[3] for r in table} == {"FINISHED"}
    assert sorted(r[4] for r in table) == sorted(f"{c.data.metrics['test_accuracy']:.4f}" for c in children)
    assert not (tmp_path / "mlruns").exists()  # the runs went to the default store, wherever the command ran
    summary_csv = client.download_artifacts(parent.info.run_id, record.SWEEP_SUMMARY_CSV, str(tmp_path))
    header, *summary = csv.reader(Path(summary_csv).read_text().splitlines())
    assert header[:4] == ["configuration", "n", "test_accuracy_mean", "test_accuracy_sd"]
    assert [row[:2] for row in summary] == [["optimizer=rmsprop", "2"], ["optimizer=adam", "2"]]
    for name in ("ci_low", "ci_high", "diff_vs_best", "p_vs_best"):
        assert f"test_accuracy_{name}" in header
    low, high = (header.index(f"test_accuracy_ci_{side}") for side in ("low", "high"))
    assert all(float(row[low]) <= float(row[2]) <= float(row[high]) for row in summary)
    # The seeds of one configuration share a group (MLflow's group-by); the configurations differ.
    groups = {c.data.tags[record.OPTIMIZER]: set() for c in children}
    for child in children:
        groups[child.data.tags[record.OPTIMIZER]].add(child.data.tags[record.CONFIG_GROUP])
    (rmsprop,), (adam,) = groups["rmsprop"], groups["adam"]
    assert rmsprop != adam and "optimizer=rmsprop" in rmsprop.split() and "trainer.seed" not in rmsprop
    for configuration, _, mean, sd, *_ in summary:
        accuracies = [
            c.data.metrics["test_accuracy"] for c in children if configuration.endswith(c.data.tags[record.OPTIMIZER])
        ]
        assert (float(mean), float(sd)) == pytest.approx(
            (statistics.fmean(accuracies), statistics.stdev(accuracies)), abs=1e-4
        )


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model=lstmm", "Available options in 'model':"),
        ("trainer.epoch=3", "Key 'epoch' not in 'TrainerConfig'"),
        ("trainer.epochs=abc", "could not be converted to Integer"),
    ],
)
def test_unknown_options_keys_and_types_get_hydras_message_without_a_traceback(tmp_path, override, expected):
    result = run_cli(override, cwd=tmp_path)
    assert result.returncode == 1
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_range_errors_come_before_any_data_is_read(tmp_path):
    result = run_cli("trainer.epochs=0", "data.archive=/nonexistent.tar.gz", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "imdb-exp: error: trainer.epochs=0 must be > 0"


@pytest.mark.slow
def test_eight_parallel_jobs_share_one_sqlite_store_and_one_failure_stays_contained(tmp_path, archive, isolated_home):
    # Eight worker processes write to one SQLite file at once; the sixth job cannot start (a rate out
    # of range, refused in its worker) and the seventh diverges.
    rates = "0.01,0.02,0.03,0.04,0.05,-1,1e30,0.07"
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
    assert "2 of 8 sweep jobs failed: optimizer.learning_rate=-1 (FAILED); optimizer.learning_rate=1e+30 (FAILED)" in (
        result.stderr
    )
    assert "database is locked" not in result.stderr
    _, (parent,) = recorded_runs(isolated_home / "mlflow.db", "tags.sweep != ''")
    _, children = recorded_runs(isolated_home / "mlflow.db", f"tags.{record.PARENT} = '{parent.info.run_id}'")
    assert sorted(c.info.status for c in children) == ["FAILED"] * 2 + ["FINISHED"] * 6
    assert len({c.info.run_id for c in children}) == 8 and parent.info.status == "FAILED"
    reasons = sorted(c.data.tags[record.FAILURE_REASON] for c in children if c.info.status == "FAILED")
    assert reasons[0] == "ConfigError: optimizer.learning_rate=-1.0 must be > 0"
    assert reasons[1].startswith("NonFiniteLoss: training loss became")


@pytest.mark.slow
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
        assert f"run dense-{job.data.tags[record.OPTIMIZER]}" in text and "test_accuracy=" in text
