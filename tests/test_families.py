"""The model families past the notebooks': each fits and serves through the whole run, and the
pretrained one loads a keras-hub preset from a folder and serves raw text."""

import keras
import numpy as np
import pytest
from hydra import compose, initialize_config_module

from imdb_exp.models.layers import HashedBigrams
from imdb_exp.run.train import train
from imdb_exp.serving.classifier import uses_keras_hub
from imdb_exp.tracking import record
from tests.conftest import DEBUG, recorded_runs, run_cli

NEW_FAMILIES = ["transformer", "bigru", "cnn", "fasttext"]


def test_hashed_bigrams_give_each_word_pair_one_bucket_after_the_words_and_none_to_padding():
    layer = HashedBigrams(num_words=50, buckets=7)
    ids = np.array([[0, 0, 1, 10, 20, 10, 20], [1, 10, 20, 30, 10, 20, 49]], np.int32)
    out = keras.ops.convert_to_numpy(layer(ids))
    assert out.shape == (2, 13)
    np.testing.assert_array_equal(out[:, :7], ids)  # the words themselves come first
    pairs = out[:, 7:]
    assert (pairs[0, :2] == 0).all()  # pairs that hold padding
    assert ((pairs[0, 2:] >= 50) & (pairs[0, 2:] < 57)).all() and ((pairs[1] >= 50) & (pairs[1] < 57)).all()
    assert pairs[0, 3] == pairs[0, 5] == pairs[1, 1] == pairs[1, 4]  # (10, 20) wherever it occurs
    assert len(set(pairs[1].tolist())) > 1  # the pairs do not all fall into one bucket
    assert HashedBigrams.from_config(layer.get_config()).buckets == 7


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

    saved = mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/model/artifacts/model.keras")
    assert uses_keras_hub(saved) == (family == "transformer")  # only then does serving import keras-hub
    served = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    answer = served.predict(pd.DataFrame({"review": ["A great film!", "An awful, boring waste."]}))
    assert answer["label"].isin(["positive", "negative"]).all() and answer["probability"].between(0, 1).all()


@pytest.mark.slow
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


def test_a_preset_that_cannot_be_loaded_is_one_clear_line(tmp_path, archive):
    preset = f"model.preset={tmp_path / 'nowhere'}"
    result = run_cli("model=pretrained", preset, "debug=tiny", f"data.archive={archive}", cwd=tmp_path)
    assert result.returncode != 0
    assert "model.preset=" in result.stderr and "could not be loaded" in result.stderr
    assert "Traceback" not in result.stderr


def test_pretrained_without_a_preset_and_text_from_keras_imdb_are_refused(tmp_path):
    missing = run_cli("model=pretrained", "debug=tiny", cwd=tmp_path)
    assert missing.returncode != 0 and "model.preset" in missing.stderr and "Traceback" not in missing.stderr
    keras_text = run_cli("model=pretrained", "model.preset=x", "data.source=keras", cwd=tmp_path)
    assert keras_text.returncode != 0 and "data.encoding=text needs data.source=aclimdb" in keras_text.stderr
