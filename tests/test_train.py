"""A real fit on the synthetic archive, recorded in a real SQLite MLflow store."""

import gc
import subprocess
import warnings
import weakref
from dataclasses import dataclass, fields
from importlib.metadata import version
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest
from hydra import compose, initialize_config_module

from imdb_exp.analysis import plots
from imdb_exp.config import schema
from imdb_exp.config.schema import DataConfig, LstmConfig, NgramConfig, OptimizerConfig
from imdb_exp.models import builders
from imdb_exp.models.layers import MaskedSum
from imdb_exp.run.train import train
from imdb_exp.runtime import process
from imdb_exp.runtime.redaction import redact
from imdb_exp.tracking import active_run, lineage, record, store
from tests.conftest import DEBUG, recorded_runs


def runs(home):
    return recorded_runs(home / "mlflow.db")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["dense", "lstm", "cnn_lstm", "ngram"])
def test_a_run_records_config_curves_and_test_metrics(compose_cfg, archive, isolated_home, model, monkeypatch):
    # Several samples even in a short run on a loaded machine (the first is logged only after an interval).
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    cfg = compose_cfg(f"model={model}", f"data.archive={archive}", *DEBUG, "trainer.epochs=3")
    best_val = train(cfg, {"data": "x", "model": model, "optimizer": "y"})
    client, (run,) = runs(isolated_home)
    assert run.info.status == "FINISHED"
    assert run.data.tags[record.MODEL] == model and run.data.params["trainer.epochs"] == "3"
    for metric in ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, metric)] == [1, 2, 3]
    # No early stopping: the model kept, tested and ranked is the last epoch's.
    val_accuracy = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert best_val == run.data.metrics["final_val_accuracy"] == max(val_accuracy, key=lambda m: m.step).value
    # The run records its own family's keys and no other's (MLflow's compare view stays honest).
    own = {f"model.{f.name}" for f in fields(schema.MODEL_FAMILIES[model])}
    assert {key for key in run.data.params if key.startswith("model.")} == own
    assert ("model.hidden_units" in own) == (model == "dense") and ("model.lstm_units" in own) == ("lstm" in model)
    metrics = run.data.metrics
    assert {"test_loss", "test_accuracy", "data_prep_seconds", "fit_seconds", "best_epoch"} <= set(metrics)
    assert metrics["epochs_trained"] == 3
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)} | {
        a.path for a in client.list_artifacts(run.info.run_id, "curves")
    }
    assert {record.CONFIG, record.MODEL_SUMMARY, record.LOSS_CURVE, record.ACCURACY_CURVE} <= artifacts
    assert any(name.startswith("system/") for name in metrics)
    inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"imdb-training", "imdb-validation", "imdb-test"}
    assert str(Path(archive).resolve()) in inputs["imdb-test"].dataset.source
    assert len({i.dataset.digest for i in inputs.values()}) == 3
    # Which code made it: the package, Keras and backend versions, and the commit of this checkout.
    tags = run.data.tags
    assert tags[record.PACKAGE_VERSION] == version("imdb-exp") and tags[record.KERAS_VERSION] == keras.__version__
    backend = run.data.params["trainer.backend"]
    assert tags[f"{backend}.version"] == version(backend)
    # Artifacts sit beside the default store, not in the working directory's ./mlruns.
    assert run.info.artifact_uri.startswith((isolated_home / "artifacts").as_uri())


@pytest.mark.slow
def test_a_model_family_added_from_outside_runs_end_to_end(tmp_path, archive, isolated_home):
    # A node, a builder and a YAML file, all from here: nothing in schema.py or train.py knows of it.
    @schema.model_family("mean_embedding", encoding="padded")
    @dataclass
    class MeanEmbeddingConfig(schema.ModelConfig):
        family: str = "mean_embedding"
        embedding_dim: int = 4

    @builders.builds("mean_embedding")
    def mean_embedding(cfg: MeanEmbeddingConfig, data: DataConfig) -> keras.Model:
        return keras.Sequential(
            [
                keras.Input((data.maxlen,), dtype="int32"),
                keras.layers.Embedding(data.num_words, cfg.embedding_dim),
                keras.layers.GlobalAveragePooling1D(),
                keras.layers.Dense(1, activation="sigmoid"),
            ]
        )

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mean.yaml").write_text(
        "# @package _global_\ndefaults:\n  - /model_schema@model: mean_embedding\n  - override /data: padded\n"
        "  - _self_\nmodel:\n  embedding_dim: 6\n"
    )
    try:
        with initialize_config_module("imdb_exp.conf", version_base="1.3"):
            overrides = [f"hydra.searchpath=[file://{tmp_path}]", "model=mean", f"data.archive={archive}", *DEBUG]
            train(compose("config", overrides), {"model": "mean"})
    finally:
        del schema.MODEL_FAMILIES["mean_embedding"], builders.BUILDERS["mean_embedding"]
    _, (run,) = runs(isolated_home)
    assert run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics
    assert {k: v for k, v in run.data.params.items() if k.startswith("model.")} == {
        "model.family": "mean_embedding",
        "model.loss": "binary_crossentropy",
        "model.embedding_dim": "6",
    }


@pytest.mark.slow
def test_dense_model_learns_the_planted_sentiment_words(compose_cfg, archive, isolated_home):
    cfg = compose_cfg(f"data.archive={archive}", *DEBUG, "trainer.epochs=20")
    train(cfg, {})
    _, (run,) = runs(isolated_home)
    assert run.data.metrics["test_accuracy"] >= 0.9


@pytest.mark.slow
def test_same_seed_gives_the_same_test_metrics(compose_cfg, archive, isolated_home):
    cfg = compose_cfg(f"data.archive={archive}", *DEBUG)
    train(cfg, {})
    train(cfg, {})
    _, (first, second) = runs(isolated_home)
    assert first.data.metrics["test_loss"] == second.data.metrics["test_loss"]


def test_a_job_collects_the_last_jobs_garbage_and_freezes_what_lives_on():
    class Node:
        pass

    gc.freeze()  # what an earlier job left frozen
    cycle = Node()
    cycle.itself = cycle  # garbage only a collection frees, as a finished job's model is
    gone, kept = weakref.ref(cycle), Node()
    del cycle
    try:
        process.start_job(keras)
        assert gone() is None
        assert not any(o is kept for o in gc.get_objects())  # frozen: no longer walked
    finally:
        gc.unfreeze()
    assert any(o is kept for o in gc.get_objects())


def test_the_commit_of_a_checkout_is_tagged_and_a_folder_outside_git_gets_no_commit(tmp_path):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    for command in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "a commit"]):
        subprocess.run(git + command, check=True)
    head = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    assert lineage.provenance("tensorflow", checkout)[record.GIT_COMMIT] == head
    outside = tmp_path / "outside"
    outside.mkdir()
    tags = lineage.provenance("tensorflow", outside)
    assert record.GIT_COMMIT not in tags and tags[record.KERAS_VERSION] == keras.__version__


def test_clipnorm_bounds_each_weights_step():
    def largest_step(clipnorm):
        keras.utils.set_random_seed(0)
        data = DataConfig(encoding="padded", num_words=50, maxlen=20)
        model = builders.compile_model(
            builders.lstm(LstmConfig(embedding_dim=4, lstm_units=3), data),
            LstmConfig(),
            OptimizerConfig(name="sgd", learning_rate=1.0, clipnorm=clipnorm),
        )
        before = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
        model.train_on_batch(np.random.default_rng(0).integers(3, 50, (8, 20)), np.ones(8, np.float32))
        after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
        return max(np.linalg.norm(a - b) for a, b in zip(after, before, strict=True))

    # sgd at learning rate 1 moves a weight by its gradient. The embedding's gradient is clipped per
    # batch of looked-up rows, so a word seen twice can move it a little past the bound.
    assert largest_step(None) > 0.1
    assert largest_step(0.01) < 0.013


def test_mixed_precision_computes_in_bfloat16_but_sums_and_answers_in_float32():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = builders.build(NgramConfig(bigrams=10), DataConfig(encoding="padded", num_words=50, maxlen=20))
        embedding = next(layer for layer in model.layers if isinstance(layer, keras.layers.Embedding))
        assert (embedding.compute_dtype, embedding.variable_dtype) == ("bfloat16", "float32")
        assert keras.backend.standardize_dtype(model(np.ones((2, 20), "int32")).dtype) == "float32"
        # A thousand terms: summed in bfloat16 (8 bits of mantissa) the total would be off by whole units.
        term = float(keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.cast(1.0039, "bfloat16"), "float32")))
        total = MaskedSum()(keras.ops.full((1, 1000, 1), term, dtype="bfloat16"))
        assert keras.backend.standardize_dtype(total.dtype) == "float32"
        assert keras.ops.convert_to_numpy(total)[0, 0] == pytest.approx(1000 * term)
    finally:
        keras.config.set_dtype_policy("float32")


def test_recurrent_dropout_on_torch_warns_that_it_is_slow():
    with pytest.warns(UserWarning, match="recurrent_dropout on trainer.backend=torch has no cuDNN kernel"):
        builders.warn_if_slow(LstmConfig(recurrent_dropout=0.2), "torch")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        builders.warn_if_slow(LstmConfig(recurrent_dropout=0.2), "jax")
        builders.warn_if_slow(LstmConfig(recurrent_dropout=0.0), "torch")


@pytest.mark.slow
def test_a_run_that_raises_is_recorded_failed(compose_cfg, archive, isolated_home, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("plotting broke")

    monkeypatch.setattr(plots, "learning_curve", broken)
    with pytest.raises(RuntimeError, match="plotting broke"):
        train(compose_cfg(f"data.archive={archive}", *DEBUG), {})
    _, (run,) = runs(isolated_home)
    assert run.info.status == "FAILED"
    assert "loss" in run.data.metrics  # what was logged before the failure is kept
    assert mlflow.active_run() is None


@pytest.mark.slow
def test_a_run_with_its_own_store_does_not_redirect_the_next_run(compose_cfg, archive, isolated_home, tmp_path):
    other = f"sqlite:///{tmp_path / 'other.db'}"
    train(compose_cfg(f"data.archive={archive}", *DEBUG, "trainer.epochs=1", f"tracking.uri={other}"), {})
    train(compose_cfg(f"data.archive={archive}", *DEBUG, "trainer.epochs=1"), {})
    _, in_default = runs(isolated_home)
    assert len(in_default) == 1
    (elsewhere,) = recorded_runs(other)[1]
    # Its artifacts sit beside its database too, not in ./mlruns of the working directory.
    assert elsewhere.info.artifact_uri.startswith((tmp_path / "artifacts").as_uri())


def test_tracking_uri_resolution_order(monkeypatch, isolated_home):
    assert store.resolve_uri(None) == f"sqlite:///{isolated_home.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert store.resolve_uri(None) == "http://127.0.0.1:5999"
    assert store.resolve_uri("sqlite:////elsewhere.db") == "sqlite:////elsewhere.db"


def test_an_unusable_store_fails_before_any_data_is_read(compose_cfg, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    cfg = compose_cfg(f"tracking.uri=sqlite:///{blocker}/sub/mlflow.db", "data.archive=/nonexistent.tar.gz")
    with pytest.raises(active_run.TrackingError, match="cannot be used"):
        train(cfg, {})


def test_a_password_in_the_tracking_uri_reaches_neither_params_nor_the_recorded_config(compose_cfg, isolated_home):
    cfg = compose_cfg("tracking.uri=http://bob:secret@mlflow.example:5000")
    uri = f"sqlite:///{isolated_home / 'mlflow.db'}"
    store.activate(uri)
    experiment = store.experiment_id(store.client(uri), "imdb-exp")  # artifacts beside the store, not ./mlruns
    with mlflow.start_run(experiment_id=experiment) as run:
        active_run.log_config(cfg, run)
    client, (recorded,) = runs(isolated_home)
    assert recorded.data.params["tracking.uri"] == "http://***@mlflow.example:5000"
    config_yaml = Path(client.download_artifacts(recorded.info.run_id, record.CONFIG, str(isolated_home))).read_text()
    assert "***@mlflow.example" in config_yaml and "secret" not in config_yaml
    assert "secret" not in store.where_to_see(cfg.tracking.uri, "1", recorded.info.run_id)


@pytest.mark.parametrize(
    "text, shown",
    [
        ("postgresql://bob:secret@db:5432/optuna", "postgresql://***@db:5432/optuna"),
        ("postgresql+psycopg://bob@db/optuna", "postgresql+psycopg://***@db/optuna"),
        (r"trial.storage=postgresql\://bob\:secret@db\:5432/x", r"trial.storage=postgresql\://***@db\:5432/x"),
        ("http://mlflow:5000/#/runs/a@b", "http://mlflow:5000/#/runs/a@b"),  # an @ past the host is no credential
        ("sqlite:////home/bob/mlflow.db", "sqlite:////home/bob/mlflow.db"),
    ],
)
def test_credentials_in_any_url_of_a_text_are_redacted(text, shown):
    assert redact(text) == shown
