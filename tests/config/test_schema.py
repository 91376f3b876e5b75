"""The config tree: every option composes into valid settings, and bad values are refused early."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from imdb_exp.config import families, schema
from imdb_exp.errors import ConfigError

CONF = Path(__file__).parents[2] / "conf"


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_each_source_experiment_composes_into_valid_settings(compose_cfg, experiment):
    assert schema.validate(compose_cfg(f"+experiment={experiment}")).model.family in families.MODEL_FAMILIES


def test_command_line_wins_over_the_model_preset(compose_cfg):
    settings = schema.validate(compose_cfg("model=lstm", "optimizer=rmsprop", "trainer.epochs=1", "model.loss=mse"))
    assert (settings.optimizer.name, settings.trainer.epochs, settings.model.loss) == ("rmsprop", 1, "mse")


def test_a_run_of_one_family_holds_only_its_own_model_keys(compose_cfg):
    assert set(compose_cfg("model=dense").model) == {"family", "loss", "hidden_units", "activation", "dropout"}
    assert "hidden_units" not in compose_cfg("model=lstm").model


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model=lstm", "data=multihot"], "model family 'lstm' reads data=padded, but data=multihot was chosen"),
        (["model=ngram", "data.num_words=50000"], "model family 'ngram' takes data.num_words up to 46340, not 50000"),
        (["trainer.epochs=0"], "trainer.epochs=0 must be > 0"),
        (["trainer.batch_size=-1"], "trainer.batch_size=-1 must be > 0"),
        (["trainer.steps_per_epoch=0"], "trainer.steps_per_epoch must be > 0 or null"),
        (["data.num_words=3"], "must be > 3"),
        (["data.maxlen=0"], "data.maxlen=0 must be > 0"),
        (["model=lstm", "model.recurrent_dropout=1.0"], r"model.recurrent_dropout=1.0 must be in \[0, 1\)"),
        (["model=lstm", "model.lstm_units=0"], "model.lstm_units=0 must be > 0"),
        (["model.hidden_units=[16,0]"], r"model.hidden_units=\[16, 0\] must be > 0"),
        (["data.val_size=2.5"], "a fraction in"),
        (["data.val_size=1.0"], r"data.val_size=1.0 must be 0, a fraction in \(0, 1\), or a count written as a whole"),
        (["resume="], "resume= needs the id of the run to continue: resume=RUN_ID"),
        (["optimizer.learning_rate=0"], "must be > 0"),
        (["optimizer.clipnorm=0"], "optimizer.clipnorm=0.0 must be > 0 or null"),
        (["trainer.backend=mxnet"], "choose one of: tensorflow, jax, torch"),
        (["model.loss=hinge"], "choose one of: binary_crossentropy, mse"),
        (["model.family=lstm"], "model.family='lstm' does not name this model's family"),
        (
            ["data.unlabeled=[test]"],
            r"data.unlabeled=\['test'\]: model family 'dense' learns nothing from text without",
        ),
        (
            ["model=docvec", "data.unlabeled=[train]"],
            "data.unlabeled='train' is not allowed; choose one of: unsup, test",
        ),
        (["model=docvec", "data.unlabeled=[test,test]"], "names a source twice"),
        (["model=docvec", "data.unlabeled=[unsup]", "data.source=keras"], "keras.datasets.imdb has no unlabeled"),
        (["model=nbsvm_docvec", "model.vector_weight=0"], "model.vector_weight=0.0 must be > 0"),
        (["model=docvec", "model.features=20000000"], "must be < 2\\^24"),
        # With +, Hydra adds the key to the typed node; the run would silently train the default 4 epochs.
        (["+trainer.epoch=1"], "trainer.epoch is not a config key; the keys of trainer are: backend, batch_size, "),
        (["+model.lstm_units=8"], "model.lstm_units is not a config key; the keys of model are: activation, "),
        (["+extra=1"], "extra is not a config key; the keys of the config are: callbacks, data, model, "),
    ],
)
def test_out_of_range_values_and_impossible_pairings_are_refused(compose_cfg, overrides, message):
    with pytest.raises(ConfigError, match=message):
        schema.validate(compose_cfg(*overrides))


@pytest.mark.parametrize("override", ["trainer.epoch=3", "trainer.epochs=1.5", "model=lstmm", "model.lstm_units=8"])
def test_unknown_keys_wrong_types_and_options_fail_while_composing(compose_cfg, override):
    # model.lstm_units is a key of the LSTM families; the default model is dense.
    with pytest.raises((ConfigCompositionException, ConfigKeyError, ValidationError)):
        compose_cfg(override)


def test_patience_needs_a_validation_split(compose_cfg):
    with pytest.raises(ConfigError, match="trainer.patience=2 watches the validation loss, but data.val_size=0"):
        schema.validate(compose_cfg("trainer.patience=2", "data.val_size=0"))
