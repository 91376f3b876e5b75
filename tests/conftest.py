"""Shared fixtures: a synthetic archive in the real aclImdb layout, an isolated store and cache,
and Hydra composition of the shipped config tree. Helpers that are not fixtures are in tests/support/."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from imdb_exp.config import schema
from imdb_exp.runtime import process
from imdb_exp.sweeps import launchers
from tests.support.archives import NEGATIVE, NEUTRAL, POSITIVE, write_archive

schema.register()  # the structured-config schema conf/config.yaml names first
process.configure()  # as the command does before any job (train() itself configures nothing)
launchers.register()  # the project's launcher defaults, as the imdb-exp command composes them


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Path:
    return write_archive(tmp_path_factory.mktemp("data") / "aclImdb_v1.tar.gz", {"train": 100, "test": 60})


@pytest.fixture(scope="session")
def tiny_preset(tmp_path_factory) -> Path:
    """A tiny BERT saved as a keras-hub preset folder (backbone and word-piece tokenizer of the synthetic
    reviews' words): the pretrained family's real loading code, with nothing to download."""
    import keras_hub

    folder = tmp_path_factory.mktemp("preset")
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *NEUTRAL, ".", ",", "!"]
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary), num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
        max_sequence_length=64,
    )  # fmt: skip
    backbone.save_to_preset(str(folder))
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(str(folder))
    return folder


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch) -> Path:
    """Every test gets its own store and cache; nothing touches ~/.imdb-exp or a real server."""
    home = tmp_path / "imdb-exp-home"
    monkeypatch.setenv("IMDB_EXP_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


@pytest.fixture
def compose_cfg():
    def _compose(*overrides: str):
        with initialize_config_module("imdb_exp.conf", version_base="1.3"):
            return compose("config", overrides=list(overrides), return_hydra_config=False)

    return _compose
