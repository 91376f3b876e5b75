"""Whole runs through train(): real fits on the synthetic archive, recorded in a real SQLite MLflow store."""

from dataclasses import dataclass, fields
from importlib.metadata import version
from pathlib import Path

import keras
import mlflow
import optuna
import pytest
from hydra import compose, initialize_config_module

from imdb_exp.analysis import plots
from imdb_exp.config import families
from imdb_exp.config.schema import DataConfig
from imdb_exp.data.corpus import DataError
from imdb_exp.models import builders
from imdb_exp.run.train import train
from imdb_exp.serving.classifier import uses_keras_hub
from imdb_exp.sweeps import search
from imdb_exp.tracking import active_run, record
from imdb_exp.training import checkpoints
from imdb_exp.training.guards import NonFiniteLoss
from tests.support.presets import DEBUG
from tests.support.store import recorded_runs, runs
from tests.support.studies import study_in


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
    own = {f"model.{f.name}" for f in fields(families.MODEL_FAMILIES[model])}
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
    @families.model_family("mean_embedding", encoding="padded")
    @dataclass
    class MeanEmbeddingConfig(families.ModelConfig):
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
        del families.MODEL_FAMILIES["mean_embedding"], builders.BUILDERS["mean_embedding"]
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


def test_an_unusable_store_fails_before_any_data_is_read(compose_cfg, archive, isolated_home, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    cfg = compose_cfg(f"tracking.uri=sqlite:///{blocker}/sub/mlflow.db", f"data.archive={archive}")
    with pytest.raises(active_run.TrackingError, match="cannot be used"):
        train(cfg, {})
    assert not (isolated_home / "cache").exists()  # the reviews were not read


def test_an_archive_that_is_not_there_fails_before_a_run_opens(compose_cfg, isolated_home, tmp_path):
    cfg = compose_cfg(f"data.archive={tmp_path / 'nowhere.tar.gz'}")
    with pytest.raises(DataError, match="nowhere.tar.gz does not exist"):
        train(cfg, {})
    assert not (isolated_home / "mlflow.db").exists()  # no FAILED run left in the store


NEW_FAMILIES = ["transformer", "bigru", "cnn", "fasttext"]


@pytest.mark.slow
@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_each_new_family_fits_evaluates_and_serves_raw_text(family, archive, isolated_home):
    with initialize_config_module("imdb_exp.conf", version_base="1.3"):
        train(compose("config", [f"model={family}", f"data.archive={archive}", *DEBUG]), {"model": family})
    _, (run,) = recorded_runs(isolated_home / "mlflow.db")
    assert run.info.status == "FINISHED" and 0 <= run.data.metrics["test_accuracy"] <= 1
    assert run.data.params["model.family"] == family and run.data.tags[record.MODEL] == family
    import mlflow
    import pandas as pd

    saved = mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/{family}/artifacts/model.keras")
    assert uses_keras_hub(saved) == (family == "transformer")  # only then does serving import keras-hub
    served = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/{family}")  # the model is named after it
    answer = served.predict(pd.DataFrame({"review": ["A great film!", "An awful, boring waste."]}))
    assert answer["label"].isin(["positive", "negative"]).all() and answer["probability"].between(0, 1).all()


@pytest.mark.slow
def test_checkpoints_can_be_switched_off(compose_cfg, archive, isolated_home, monkeypatch):
    monkeypatch.setattr(checkpoints, "save", lambda *args: pytest.fail("a checkpoint was written"))
    train(compose_cfg(f"data.archive={archive}", *DEBUG, "trainer.epochs=2", "trainer.checkpoint=false"), {})
    _, (run,) = recorded_runs(isolated_home / "mlflow.db")
    assert run.info.status == "FINISHED" and run.data.metrics["epochs_trained"] == 2


@pytest.mark.slow
def test_debug_overfit_learns_its_few_batches_by_heart(compose_cfg, archive, isolated_home):
    cfg = compose_cfg("debug=overfit", "model=dense", f"data.archive={archive}", "data.val_size=0.25",
                      "tracking.log_model=false")  # fmt: skip
    train(cfg, {})
    client, (run,) = recorded_runs(isolated_home / "mlflow.db")
    accuracy = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "accuracy"), key=lambda m: m.step)]
    assert len(accuracy) == 40 and accuracy[-1] >= 0.99 and accuracy[0] < 0.9


@pytest.mark.slow
def test_a_diverging_run_is_failed_with_the_reason_as_a_tag(compose_cfg, archive, isolated_home):
    cfg = compose_cfg(f"data.archive={archive}", *DEBUG, "optimizer.name=sgd", "optimizer.learning_rate=1e30")
    with pytest.raises(NonFiniteLoss):
        train(cfg, {})
    _, (run,) = recorded_runs(isolated_home / "mlflow.db")
    assert run.info.status == "FAILED"
    assert run.data.tags[record.FAILURE_REASON].startswith("NonFiniteLoss: training loss became")


@pytest.mark.slow
def test_a_hopeless_trial_is_pruned_finished_and_tagged_not_failed(tmp_path, compose_cfg, archive, isolated_home):
    study = study_in(tmp_path, pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    study.set_user_attr(search.PRUNER_ATTR, {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 1})
    good = study.ask()
    for epoch in range(1, 6):
        good.report(1.0, step=epoch)
    study.tell(good, 1.0)
    hopeless = study.ask()
    plumbing = [f"trial.study={study.study_name}", f"trial.storage={tmp_path / 'journal.log'}", "trial.number=1"]
    cfg = compose_cfg(f"data.archive={archive}", *DEBUG, "trainer.epochs=5", "optimizer.learning_rate=1e-7", *plumbing)
    assert train(cfg, {}) == search.Pruned(epoch=1)
    _, (run,) = recorded_runs(isolated_home / "mlflow.db")
    assert run.info.status == "FINISHED" and run.data.tags[record.PRUNED_AT_EPOCH] == "1"
    assert (run.data.tags[record.STUDY], run.data.tags[record.TRIAL]) == ("s", "1")
    assert "test_accuracy" not in run.data.metrics and not checkpoints.path(run.info.run_id).exists()
    assert study.trials[1].intermediate_values == {1: pytest.approx(run.data.metrics["val_accuracy"])}
    assert hopeless.number == 1
