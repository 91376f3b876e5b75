"""The installed imdb-exp command end to end, in a subprocess, from an unrelated working directory."""

import contextlib
import os
import pty
import shlex
import signal
import sys
import tarfile
import time
from importlib.metadata import version
from pathlib import Path

import pytest

from imdb_exp.tracking import record
from tests.support.commands import run_cli, start_cli, wait_for_epochs
from tests.support.presets import DEBUG
from tests.support.store import epochs_logged, recorded_runs


@pytest.mark.e2e
def test_help_lists_the_users_groups_and_the_config_as_written_at_once(tmp_path):
    started = time.monotonic()
    result = run_cli("--help", cwd=tmp_path)
    seconds = time.monotonic() - started
    assert result.returncode == 0
    models = (
        "model: bigru, cnn, cnn_lstm, dense, docvec, fasttext, lstm, lstm_dropout, nbsvm, nbsvm_docvec, ngram, "
        "pretrained, transformer"
    )
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
    assert unknown.returncode == 2 and unknown.stderr.splitlines() == [
        "imdb-exp: error: In 'config': Could not find 'model/nope' Available options in 'model': bigru cnn cnn_lstm "
        "dense docvec fasttext lstm lstm_dropout nbsvm nbsvm_docvec ngram pretrained transformer"
    ]


@pytest.mark.e2e
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
@pytest.mark.e2e
def test_a_run_prints_its_own_lines_without_start_up_chatter_or_logging_warnings(tmp_path, archive, isolated_home):
    result = run_cli(f"data.archive={archive}", *DEBUG, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "test_accuracy=" in output
    noises = ("oneDNN", "cpu_feature_guard", "cuInit", "absl::InitializeLog", "UserWarning", "CloudPickle", "it/s]")
    for noise in noises:
        assert noise not in output, f"{noise!r} in the output:\n{output[-3000:]}"


@pytest.mark.slow
@pytest.mark.e2e
def test_the_same_training_settings_typed_in_another_order_share_one_configuration_tag(
    tmp_path, archive, isolated_home
):
    first = ("optimizer=adam", "trainer.epochs=2", f"data.archive={archive}", *DEBUG)
    second = (
        *DEBUG,
        f"data.archive={archive}",
        "tracking.misclassified_reviews=3",
        "trainer.epochs=2",
        "optimizer=adam",
    )
    for overrides in (first, second):
        result = run_cli(*overrides, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    _, runs = recorded_runs(isolated_home / "mlflow.db")
    assert len(runs) == 2 and {run.data.tags[record.CONFIG_GROUP] for run in runs} == {"dense adam debug=tiny epochs=2"}


@pytest.mark.e2e
def test_version(tmp_path):
    result = run_cli("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"imdb-exp {version('imdb-exp')}"


@pytest.mark.e2e
@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["model=lstmm"], "In 'config': Could not find 'model/lstmm' Available options in 'model': bigru cnn"),
        (["trainer.epoch=3"], "Could not override 'trainer.epoch': Key 'epoch' not in 'TrainerConfig'"),
        (["trainer.epochs=abc"], "Error merging override trainer.epochs=abc: Value 'abc' of type 'str' could not"),
        # In a sweep, a key or option that is not swept, and one of Hydra's own groups.
        (["-m", "trainer.epoch=3", "optimizer=adam,rmsprop"], "Could not override 'trainer.epoch'"),
        (["-m", "model=lstmm", "trainer.seed=0,1"], "In 'config': Could not find 'model/lstmm'"),
        (
            ["-m", "hydra/launcher=jobllib", "trainer.seed=0,1"],
            "In 'hydra/config': Could not find 'hydra/launcher/jobllib'",
        ),
    ],
)
def test_unknown_options_keys_and_types_are_said_in_one_line_before_anything_opens(
    tmp_path, isolated_home, arguments, expected
):
    result = run_cli(*arguments, cwd=tmp_path)
    assert result.returncode == 2
    (said,) = result.stderr.splitlines()
    assert said.startswith(f"imdb-exp: error: {expected}") and "+trainer" not in said
    assert not (isolated_home / "mlflow.db").exists()


@pytest.mark.e2e
def test_range_errors_come_before_any_data_is_read(tmp_path):
    result = run_cli("trainer.epochs=0", "data.archive=/nonexistent.tar.gz", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "imdb-exp: error: trainer.epochs=0 must be > 0"


@pytest.mark.slow
@pytest.mark.e2e
def test_a_pretrained_preset_folder_is_fine_tuned_on_raw_text_and_its_model_answers_predict(
    tmp_path, archive, tiny_preset, isolated_home
):
    result = run_cli(
        "model=pretrained", f"model.preset={tiny_preset}", "debug=tiny", f"data.archive={archive}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    _, (run,) = recorded_runs(isolated_home / "mlflow.db")
    assert run.info.status == "FINISHED" and run.data.params["data.encoding"] == "text"
    assert run.data.params["model.preset"] == str(tiny_preset) and "test_accuracy" in run.data.metrics
    answer = run_cli("--run-id", run.info.run_id, "A fine film.", cwd=tmp_path, program="imdb-exp-predict")
    assert answer.returncode == 0, answer.stderr[-3000:]
    label, probability, text = answer.stdout.strip().split("\t")
    assert label in ("positive", "negative") and 0 <= float(probability) <= 1 and text == "A fine film."


@pytest.mark.e2e
@pytest.mark.slow
def test_reviews_longer_than_a_presets_positions_are_cut_to_them_and_the_run_records_the_length_it_used(
    tmp_path, archive, tiny_preset, isolated_home
):
    # The tiny preset's backbone has 64 positions; 128 tokens would fail inside the first training step.
    result = run_cli(
        "model=pretrained", f"model.preset={tiny_preset}", "debug=tiny", "data.maxlen=128",
        f"data.archive={archive}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "takes at most 64 tokens: data.maxlen=128 is cut to 64" in result.stdout + result.stderr
    _, (run,) = recorded_runs(isolated_home / "mlflow.db")
    assert run.info.status == "FINISHED" and run.data.params["data.maxlen"] == "64"
    review = " ".join(["a", "great", "film", "the", "plot", "was", "superb"] * 286)  # 2,002 words
    answer = run_cli("--run-id", run.info.run_id, review, cwd=tmp_path, program="imdb-exp-predict")
    assert answer.returncode == 0, answer.stderr[-3000:]
    label, probability, _ = answer.stdout.strip().split("\t")
    assert label in ("positive", "negative") and 0 <= float(probability) <= 1


@pytest.mark.e2e
def test_a_preset_that_cannot_be_loaded_is_one_clear_line(tmp_path, archive):
    preset = f"model.preset={tmp_path / 'nowhere'}"
    result = run_cli("model=pretrained", preset, "debug=tiny", f"data.archive={archive}", cwd=tmp_path)
    assert result.returncode != 0
    assert "model.preset=" in result.stderr and "could not be loaded" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.e2e
def test_pretrained_without_a_preset_and_text_from_keras_imdb_are_refused(tmp_path):
    missing = run_cli("model=pretrained", "debug=tiny", cwd=tmp_path)
    assert missing.returncode != 0 and "model.preset" in missing.stderr and "Traceback" not in missing.stderr
    keras_text = run_cli("model=pretrained", "model.preset=x", "data.source=keras", cwd=tmp_path)
    assert keras_text.returncode != 0 and "data.encoding=text needs data.source=aclimdb" in keras_text.stderr


@pytest.mark.slow
@pytest.mark.e2e
# SIGINT here; SIGTERM to a sweep's job is tested in sweeps/test_multirun.py (exit 143, the job KILLED).
@pytest.mark.parametrize("signum", [signal.SIGINT], ids=["SIGINT"])
def test_a_signal_during_training_kills_the_run_promptly_and_keeps_its_metrics(
    tmp_path, archive, isolated_home, signum
):
    process = start_cli(
        f"data.archive={archive}", *DEBUG, "trainer.epochs=1000", "tracking.log_model=false", cwd=tmp_path
    )
    database = isolated_home / "mlflow.db"
    wait_for_epochs(process, database, 2)
    sent = time.monotonic()
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - sent < 30
    assert process.returncode == 128 + signum, stderr[-3000:]
    assert stderr.count("imdb-exp: stopped by") == 1 and f"imdb-exp: stopped by {signal.Signals(signum).name}" in stderr
    client, (run,) = recorded_runs(database)
    assert run.info.status == "KILLED"
    # Its id, to resume it by, in the first line (all a SIGKILL leaves) and the last ones.
    (job_log,) = tmp_path.glob("**/*.log")
    run_id, logged = run.info.run_id, job_log.read_text()
    assert f"seed 0; run id {run_id}" in logged
    assert f"run {run_id} stopped: imdb-exp resume={run_id} continues it" in logged
    assert len(client.get_metric_history(run.info.run_id, "loss")) >= 2


@pytest.mark.slow
@pytest.mark.e2e
def test_closing_the_terminal_a_run_was_started_from_ends_the_run_killed_with_its_reason(
    tmp_path, archive, isolated_home
):
    # A shell in a pseudo-terminal starts the run; closing the terminal hangs the shell up, and the
    # shell passes SIGHUP on to its jobs, as when a terminal window is closed or an SSH session drops.
    command = [str(Path(sys.executable).with_name("imdb-exp")), f"data.archive={archive}", *DEBUG]
    command += ["trainer.epochs=1000", "tracking.log_model=false"]
    shell, terminal = pty.fork()
    if shell == 0:  # the child: an interactive shell on the terminal, in the test's environment
        os.chdir(tmp_path)
        # as a terminal's shell has it, whatever the test runner's own (under nohup, SIGHUP is
        # ignored, and an ignored signal stays ignored through exec, by bash and by imdb-exp)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        os.execvp("bash", ["bash", "--norc", "--noprofile", "-i"])
    os.write(terminal, (shlex.join(command) + "\n").encode())
    database = isolated_home / "mlflow.db"
    deadline = time.monotonic() + 120
    while epochs_logged(database) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        with contextlib.suppress(OSError):
            os.read(terminal, 65536)  # the run's lines, read so that the terminal never fills
    assert epochs_logged(database) >= 2, "training never logged 2 epochs"
    closed = time.monotonic()
    os.close(terminal)
    os.waitpid(shell, 0)
    while time.monotonic() - closed < 30:
        _, (run,) = recorded_runs(database)
        if run.info.status != "RUNNING":
            break
        time.sleep(0.2)
    assert run.info.status == "KILLED", run.data.tags.get(record.FAILURE_REASON)
    assert run.data.tags[record.FAILURE_REASON] == "stopped by SIGHUP"
    assert time.monotonic() - closed < 10


@pytest.mark.slow
@pytest.mark.e2e
def test_the_extracted_aclimdb_folder_trains_like_the_archive(tmp_path, archive, isolated_home):
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "extracted", filter="data")
    for source in (archive, tmp_path / "extracted" / "aclImdb"):
        result = run_cli(f"data.archive={source}", *DEBUG, "tracking.log_model=false", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    _, runs = recorded_runs(isolated_home / "mlflow.db")
    by_source = {run.data.params["data.archive"]: run for run in runs}
    from_archive, from_folder = by_source[str(archive)], by_source[str(tmp_path / "extracted" / "aclImdb")]
    for metric in ("test_accuracy", "test_loss", "final_val_accuracy"):
        assert from_folder.data.metrics[metric] == from_archive.data.metrics[metric]
