"""The logged model: raw text in, probability out, the same through Python, imdb-exp-predict and the registry."""

import functools
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient

from imdb_exp.config import schema
from imdb_exp.data import splits
from imdb_exp.errors import UserError
from imdb_exp.models import builders
from imdb_exp.run.train import train
from imdb_exp.serving.classifier import read_vocabulary_tsv
from imdb_exp.tracking import record, store
from tests.support.commands import run_cli
from tests.support.presets import DEBUG
from tests.support.store import recorded_runs

REVIEWS = ["A great, wonderful and superb film!", "An awful, boring and terrible waste.", "The plot of the movie."]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, archive):
    """One dense run with a registered model, shared by this module's tests."""
    home = tmp_path_factory.mktemp("serving-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IMDB_EXP_HOME", str(home))
        from hydra import compose, initialize_config_module

        with initialize_config_module("imdb_exp.conf", version_base="1.3"):
            cfg = compose(
                "config",
                [f"data.archive={archive}", *DEBUG, "trainer.epochs=20", "tracking.register_model=imdb-sentiment"],
            )
        train(cfg, {})
    uri = f"sqlite:///{home / 'mlflow.db'}"
    _, (run,) = recorded_runs(uri)
    return home, uri, run


def model_of(uri: str, run) -> str:
    """The URI of the model ``run`` logged, as imdb-exp-predict finds it."""
    return record.logged_model_uri(MlflowClient(uri).get_run(run.info.run_id))


def predict_in_process(uri, model_uri):
    store.activate(uri)
    return mlflow.pyfunc.load_model(model_uri).predict(pd.DataFrame({"review": REVIEWS}))


@pytest.mark.slow
def test_logged_model_classifies_raw_text(trained_run):
    _, uri, run = trained_run
    predictions = predict_in_process(uri, model_of(uri, run))
    assert predictions["label"].tolist()[:2] == ["positive", "negative"]
    (logged,) = MlflowClient(uri).search_logged_models([run.info.experiment_id])
    assert logged.name == "dense"  # named after its family, not "model"
    assert not {"backend", "encoding", "maxlen", "num_words"} & set(run.data.params)  # its settings: an artifact
    assert predictions["probability"][0] - predictions["probability"][1] > 0.4


@pytest.mark.slow
def test_the_logged_model_is_code_not_a_pickle_with_an_example_and_installable_requirements(trained_run, tmp_path):
    _, uri, run = trained_run
    store.activate(uri)
    local = mlflow.artifacts.download_artifacts(model_of(uri, run), dst_path=str(tmp_path))
    files = {path.name for path in Path(local).rglob("*")}
    assert "python_model.pkl" not in files and "served_model.py" in files  # MLflow's models from code
    example = mlflow.models.Model.load(local).load_input_example(local)
    assert list(example.columns) == ["review"]
    requirements = (Path(local) / "requirements.txt").read_text().split()
    assert any(r.startswith("keras==") for r in requirements)
    assert not [r for r in requirements if "+" in r]  # no local version labels, which PyPI cannot install


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("named_by", ["run id", "registry alias"])
def test_predict_command_prints_the_same_probabilities(trained_run, tmp_path, named_by):
    home, uri, run = trained_run
    expected = predict_in_process(uri, model_of(uri, run))
    reviews_file = tmp_path / "reviews.txt"
    reviews_file.write_text("\n".join(REVIEWS) + "\n")
    model = ["--run-id", run.info.run_id] if named_by == "run id" else ["--model", "models:/imdb-sentiment@candidate"]
    result = run_cli(
        *model,
        "--tracking-uri",
        uri,
        "--file",
        str(reviews_file),
        cwd=tmp_path,
        program="imdb-exp-predict",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [r[0] for r in rows] == expected["label"].tolist()
    assert [float(r[1]) for r in rows] == pytest.approx(expected["probability"].tolist(), abs=1e-6)


@pytest.mark.slow
def test_registered_model_and_run_artifacts(trained_run, tmp_path):
    _, uri, run = trained_run
    by_registry = predict_in_process(uri, "models:/imdb-sentiment/1")
    assert by_registry["label"].tolist()[:2] == ["positive", "negative"]
    # The new version carries the alias, so users name what to use rather than a number or a stage.
    assert str(MlflowClient(uri).get_model_version_by_alias("imdb-sentiment", "candidate").version) == "1"
    by_alias = predict_in_process(uri, "models:/imdb-sentiment@candidate")
    assert by_alias["probability"].tolist() == by_registry["probability"].tolist()
    client = MlflowClient(uri)
    metrics = run.data.metrics
    assert {"test_auc", "test_precision", "test_recall", "test_f1"} <= set(metrics)
    assert 0.5 < metrics["test_auc"] <= 1.0
    listed = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {*record.EVALUATION_FIGURES, record.MISCLASSIFIED} <= listed
    vocabulary_file = client.download_artifacts(run.info.run_id, record.VOCABULARY, str(tmp_path))
    assert Path(vocabulary_file).read_text().splitlines()[:2] == ["id\tword", "0\t<pad>"]  # the UI's column names
    vocabulary = read_vocabulary_tsv(vocabulary_file)
    assert set(vocabulary) >= {"great", "awful", "movie", "the"}


def trained_model_serves_raw_text(cfg, home) -> str:
    """Trains ``cfg``'s run; its logged model must call the sample reviews right. Returns the model's URI."""
    train(cfg, {})
    uri = f"sqlite:///{home / 'mlflow.db'}"
    _, (run,) = recorded_runs(uri)
    model_uri = model_of(uri, run)
    assert predict_in_process(uri, model_uri)["label"].tolist()[:2] == ["positive", "negative"]
    return model_uri


@pytest.mark.slow
def test_the_ngram_model_serves_raw_text_with_the_pairs_it_learned(compose_cfg, archive, isolated_home):
    cfg = compose_cfg("model=ngram", f"data.archive={archive}", *DEBUG, "trainer.epochs=10", "model.bigrams=500")
    trained_model_serves_raw_text(cfg, isolated_home)


@pytest.mark.slow
def test_the_nbsvm_model_keeps_the_ratios_of_its_training_rows_and_serves_raw_text(compose_cfg, archive, isolated_home):
    cfg = compose_cfg("model=nbsvm", f"data.archive={archive}", *DEBUG, "trainer.epochs=3", "model.features=3000")
    model_uri = trained_model_serves_raw_text(cfg, isolated_home)

    served = mlflow.pyfunc.load_model(model_uri).unwrap_python_model().model
    settings = schema.validate(cfg)
    dataset = splits.load_dataset(settings.data)

    def tables(model: keras.Model) -> list[np.ndarray]:
        """The n-gram table and the NB ratios: the weights that do not train."""
        return [keras.ops.convert_to_numpy(w) for w in model.non_trainable_weights]

    def adapted_to(train: splits.Split) -> keras.Model:
        model = builders.build(settings.model, settings.data)
        builders.prepare(model, splits.Dataset(train, None, dataset.test, None))
        return model

    assert [t.shape for t in tables(served)] == [(3000,), (3001,)]
    for logged, expected in zip(tables(served), tables(adapted_to(dataset.train)), strict=True):
        np.testing.assert_array_equal(logged, expected)
    # The validation rows would have changed them: the test can tell.
    with_validation = splits.Split(
        np.concatenate([dataset.train.x, dataset.val.x]), np.concatenate([dataset.train.y, dataset.val.y])
    )
    assert not np.array_equal(tables(served)[1], tables(adapted_to(with_validation))[1])


ODD_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
ANY_INPUT = st.one_of(
    st.lists(ODD_TEXT, max_size=4).map(lambda texts: pd.DataFrame({"review": texts})),
    st.lists(ODD_TEXT, max_size=4),
    ODD_TEXT,
    st.lists(st.one_of(st.none(), st.integers(), st.floats(), ODD_TEXT, st.lists(ODD_TEXT, max_size=2)), max_size=4),
    st.lists(ODD_TEXT, max_size=4).map(lambda texts: pd.DataFrame({"text": texts})),
    st.lists(st.lists(ODD_TEXT, min_size=2, max_size=2), max_size=3).map(np.array),
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, derandomize=True)
@given(ANY_INPUT)
def test_the_logged_model_answers_any_input_with_a_probability_per_review_or_one_clear_error(trained_run, model_input):
    """The fault round (issue 36): what a client may send the served model, any text, any shape."""
    _, uri, run = trained_run
    model = loaded_model(uri, model_of(uri, run))
    try:
        answer = model.predict(model_input)
    except (UserError, mlflow.exceptions.MlflowException) as err:
        assert str(err).strip() and "Traceback" not in str(err)
        return
    rows = 1 if isinstance(model_input, str) else len(model_input)
    assert len(answer) == rows and answer["probability"].between(0, 1).all()


@functools.cache
def loaded_model(uri: str, model_uri: str):
    store.activate(uri)
    return mlflow.pyfunc.load_model(model_uri)
