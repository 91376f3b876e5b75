import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from imdb_exp import schema
from imdb_exp.models import FAMILIES, check_pairing
from imdb_exp.schema import ConfigError


@pytest.mark.parametrize(
    "model, family, encoding, num_words, optimizer, epochs, batch_size",
    [
        ("dense", "dense", "multihot", 10000, "rmsprop", 4, 512),
        ("lstm", "lstm", "padded", 5000, "adam", 3, 64),
        ("lstm_dropout", "lstm", "padded", 5000, "adam", 3, 64),
        ("cnn_lstm", "cnn_lstm", "padded", 5000, "adam", 3, 64),
        ("ngram", "ngram", "padded", 40000, "adam", 4, 64),
    ],
)
def test_each_model_brings_its_settings(compose_cfg, model, family, encoding, num_words, optimizer, epochs, batch_size):
    settings = schema.validate(compose_cfg(f"model={model}"))
    assert (settings.model.family, settings.data.encoding, settings.optimizer.name) == (family, encoding, optimizer)
    assert (settings.trainer.epochs, settings.trainer.batch_size) == (epochs, batch_size)
    assert settings.data.num_words == num_words
    assert FAMILIES[family] is check_pairing(settings.model, settings.data)


def test_lstm_dropout_and_cnn_front_end_settings(compose_cfg):
    dropout = schema.validate(compose_cfg("model=lstm_dropout")).model
    assert (dropout.lstm_dropout, dropout.recurrent_dropout, dropout.lstm_units) == (0.2, 0.2, 100)
    cnn = schema.validate(compose_cfg("model=cnn_lstm")).model
    assert (cnn.conv_filters, cnn.conv_kernel_size, cnn.pool_size, cnn.embedding_dim) == (32, 3, 2, 32)


def test_command_line_wins_over_the_model_preset(compose_cfg):
    settings = schema.validate(compose_cfg("model=lstm", "optimizer=rmsprop", "trainer.epochs=1", "model.loss=mse"))
    assert (settings.optimizer.name, settings.trainer.epochs, settings.model.loss) == ("rmsprop", 1, "mse")


def test_a_vocabulary_too_large_for_the_ngram_keys_is_refused(compose_cfg):
    settings = schema.validate(compose_cfg("model=ngram", "data.num_words=50000"))
    with pytest.raises(ConfigError, match="model family 'ngram' takes data.num_words up to 46340, not 50000"):
        check_pairing(settings.model, settings.data)


def test_explicit_impossible_pairing_is_named(compose_cfg):
    settings = schema.validate(compose_cfg("model=lstm", "data=multihot"))
    with pytest.raises(ConfigError, match="'lstm' reads data=padded, but data=multihot"):
        check_pairing(settings.model, settings.data)


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.epochs=0", "trainer.epochs=0 must be > 0"),
        ("trainer.batch_size=-1", "trainer.batch_size=-1 must be > 0"),
        ("data.num_words=3", "must be > 3"),
        ("data.maxlen=0", "data.maxlen=0 must be > 0"),
        ("model.recurrent_dropout=1.0", r"must be in \[0, 1\)"),
        ("data.val_size=2.5", "a fraction in"),
        ("optimizer.learning_rate=0", "must be > 0"),
        ("optimizer.clipnorm=0", "optimizer.clipnorm=0.0 must be > 0 or null"),
        ("trainer.backend=mxnet", "choose one of: tensorflow, jax, torch"),
        ("model.loss=hinge", "choose one of: binary_crossentropy, mse"),
    ],
)
def test_out_of_range_values_are_rejected_by_the_schema(compose_cfg, override, message):
    with pytest.raises(ConfigError, match=message):
        schema.validate(compose_cfg(override))


@pytest.mark.parametrize("override", ["trainer.epoch=3", "trainer.epochs=1.5", "model=lstmm"])
def test_unknown_keys_wrong_types_and_options_fail_while_composing(compose_cfg, override):
    with pytest.raises((ConfigCompositionException, ConfigKeyError, ValidationError)):
        compose_cfg(override)


@pytest.mark.parametrize(
    "experiment, family, encoding, epochs, val_size, extra",
    [
        ("dlwp_validation", "dense", "multihot", 20, 10000, {}),
        ("dlwp_final", "dense", "multihot", 4, 0, {}),
        ("lstm_plain", "lstm", "padded", 3, 0, {}),
        ("lstm_dropout_layers", "lstm", "padded", 3, 0, {"dropout": 0.2}),
        ("lstm_recurrent_dropout", "lstm", "padded", 3, 0, {"lstm_dropout": 0.2, "recurrent_dropout": 0.2}),
        ("lstm_cnn", "cnn_lstm", "padded", 3, 0, {"conv_filters": 32}),
    ],
)
def test_each_source_experiment_is_one_config(compose_cfg, experiment, family, encoding, epochs, val_size, extra):
    settings = schema.validate(compose_cfg(f"+experiment={experiment}"))
    assert (settings.model.family, settings.data.encoding) == (family, encoding)
    assert (settings.trainer.epochs, settings.data.val_size) == (epochs, val_size)
    assert {key: getattr(settings.model, key) for key in extra} == extra


def test_the_dlwp_variants_experiment_is_a_sweep_over_the_books_variations():
    with initialize_config_module("imdb_exp.conf", version_base="1.3"):
        cfg = compose("config", overrides=["+experiment=dlwp_variants"], return_hydra_config=True)
    assert dict(cfg.hydra.sweeper.params) == {
        "model.hidden_units": "[16],[16,16,16],[32,32],[64,64]",
        "model.loss": "binary_crossentropy,mse",
        "model.activation": "relu,tanh",
    }
