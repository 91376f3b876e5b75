"""A run's identity: the config_hash ignores how a run was launched, names no module, and is the hash
recorded before the callbacks were named by their names."""

import pytest
from omegaconf import OmegaConf

from imdb_exp.config import identity


def test_the_config_hash_ignores_how_a_run_was_launched_but_not_what_it_is(compose_cfg):
    plain = identity.config_hash(compose_cfg())
    assert identity.config_hash(compose_cfg("tracking.parent_run_id=abc", "retrain=true")) == plain
    assert identity.config_hash(compose_cfg("trainer.epochs=5")) != plain


# config_hash of these configs as the commit before runs were identified by names (9fee773) recorded them.
HASHES_RECORDED_BEFORE = [
    ([], "8bbf0ae874f026ac24f8"),
    (["model=lstm", "optimizer=adam", "trainer.seed=3"], "6589f476966acd068b6c"),
    (["callbacks=[default,tensorboard]", "model=nbsvm"], "4a8e96c20438c48e3e11"),
    *(
        ([f"model={model}"], recorded)
        for model, recorded in {
            "bigru": "53dbe31861c401d4f7bb",
            "cnn": "19f155ed822131c604d5",
            "cnn_lstm": "00b8cd2877ee652a7899",
            "fasttext": "89817cbeaa87dde81c9a",
            "lstm": "08fde0f0b00fc216ec05",
            "lstm_dropout": "57b7e03a7c0a5c7f44ed",
            "nbsvm": "63686de08e128073dea1",
            "ngram": "de98b760b37d21199821",
            "pretrained": "b1fa1f6e97c6d6c5cdd7",
            "transformer": "91f223fc3f0a1e0575df",
        }.items()
    ),
]


@pytest.mark.parametrize("overrides, recorded", HASHES_RECORDED_BEFORE)
def test_a_runs_identity_names_no_module_and_is_the_hash_recorded_before(compose_cfg, overrides, recorded):
    cfg = compose_cfg(*overrides)
    assert "_target_" not in OmegaConf.to_yaml(identity.values(cfg))  # what the run records names no class
    assert identity.config_hash(cfg) == recorded
