"""Each model option builds a network that reads its data; what compiling and the dtype policy make of it."""

import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

from imdb_exp.config import families, schema
from imdb_exp.config.families import LstmConfig, NgramConfig, PretrainedConfig
from imdb_exp.config.schema import DataConfig, OptimizerConfig
from imdb_exp.data import splits
from imdb_exp.data.corpus import Reviews
from imdb_exp.models import builders
from imdb_exp.models.layers import MaskedSum

CONF = Path(__file__).parents[2] / "conf"


@pytest.mark.parametrize("model", sorted(p.stem for p in (CONF / "model").glob("*.yaml")))
def test_each_model_option_builds_a_model_that_reads_the_data_it_brings(compose_cfg, model, tiny_preset):
    preset = [f"model.preset={tiny_preset}"] if model == "pretrained" else []
    settings = schema.validate(compose_cfg(f"model={model}", "debug=tiny", *preset))
    assert isinstance(settings.model, families.MODEL_FAMILIES[settings.model.family])
    network = builders.build(settings.model, settings.data)
    reviews = Reviews.from_lists([[1, 5, 9], [1, 4]], [1, 0], texts=["A great film.", "Awful!"])
    x = splits.ENCODERS[settings.data.encoding](reviews, settings.data)
    assert network.predict(x, verbose=0).shape == (2, 1)


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


def test_a_sequence_longer_than_a_presets_positions_is_capped_to_them_and_a_shorter_one_is_not(tiny_preset):
    preset = PretrainedConfig(preset=str(tiny_preset))  # a backbone of 64 positions
    assert builders.sequence_cap(preset, DataConfig(encoding="text", maxlen=128)) == 64
    assert builders.sequence_cap(preset, DataConfig(encoding="text", maxlen=40)) is None
    assert builders.sequence_cap(LstmConfig(), DataConfig(encoding="padded", maxlen=5000)) is None


def test_a_job_takes_the_fixed_part_from_the_one_before_only_when_its_dataset_and_settings_are_alike(monkeypatch):
    """What a search's trials that vary only the trained part share: the fixed layers' adapted weights
    and the dataset through them, not learned again."""
    rng = np.random.default_rng(0)
    x = np.sort(rng.integers(0, 60, (40, 12)), axis=1).astype(np.int32)
    split = splits.Split(x, (rng.random(40) > 0.5).astype(np.float32), np.arange(40))
    dataset = splits.Dataset(split, None, split, None)
    data = DataConfig(encoding="padded", num_words=60, maxlen=12)
    adapted = []
    monkeypatch.setattr(builders.NgramSlots, "adapt", lambda self, ids, real=builders.NgramSlots.adapt: (
        adapted.append(self.features), real(self, ids))[1])  # fmt: skip

    def prepared(features: int):
        model = builders.build(families.NbsvmConfig(features=features, max_n=2), data)
        trained, mapped = builders.prepare(model, dataset)
        return keras.ops.convert_to_numpy(model.layers[0].keys), mapped.train.x

    first_table, first_rows = prepared(50)
    again_table, again_rows = prepared(50)
    assert adapted == [50]  # adapted once: the second job took the table and the rows the first made
    np.testing.assert_array_equal(again_table, first_table)
    assert again_rows is first_rows
    prepared(40)
    assert adapted == [50, 40]  # other settings: adapted anew
    builders.prepare(
        builders.build(families.NbsvmConfig(features=40, max_n=2), data), splits.Dataset(split, None, split, None)
    )
    assert adapted == [50, 40, 40]  # another dataset (even of the same arrays): adapted anew
