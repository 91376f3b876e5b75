"""One small builder per model family, registered under the family's name (its config node, with
the encoding it reads, is in schema.py); compiling a model for its optimizer and loss."""

import dataclasses
import math
import warnings
from collections.abc import Callable

import keras
import numpy as np
from keras import layers

from imdb_exp.config.families import (
    BigruConfig,
    CnnConfig,
    CnnLstmConfig,
    DenseConfig,
    DocvecConfig,
    FasttextConfig,
    LstmConfig,
    ModelConfig,
    NbsvmConfig,
    NbsvmDocvecConfig,
    NgramConfig,
    PretrainedConfig,
    TransformerConfig,
)
from imdb_exp.config.schema import DataConfig, OptimizerConfig
from imdb_exp.data.splits import Dataset
from imdb_exp.errors import ConfigError, first_line
from imdb_exp.models.doc_vectors import DocVectors, NbVoteBesideVector
from imdb_exp.models.layers import HashedBigrams, MaskedSum, NbVote, NgramBag, NgramSlots, UnpackBits
from imdb_exp.runtime.process import between_jobs

BUILDERS: dict[str, Callable[[ModelConfig, DataConfig], keras.Model]] = {}


def builds(family: str):
    """Function decorator: the builder of model family ``family``."""

    def register(build: Callable[[ModelConfig, DataConfig], keras.Model]):
        BUILDERS[family] = build
        return build

    return register


def build(spec: ModelConfig, data: DataConfig) -> keras.Model:
    if spec.family not in BUILDERS:
        raise ConfigError(f"model family {spec.family!r} has no builder; choose one of: {', '.join(BUILDERS)}")
    return BUILDERS[spec.family](spec, data)


def _probability() -> layers.Layer:
    # float32 also under mixed precision: a bfloat16 probability has only 2-3 significant digits.
    return layers.Dense(1, activation="sigmoid", dtype="float32")


@builds("dense")
def dense(spec: DenseConfig, data: DataConfig) -> keras.Model:
    hidden = []
    for units in spec.hidden_units:
        hidden.append(layers.Dense(units, activation=spec.activation))
        hidden += [layers.Dropout(spec.dropout)] if spec.dropout else []
    return keras.Sequential(
        [
            keras.Input(shape=(math.ceil(data.num_words / 8),), dtype="uint8"),
            UnpackBits(data.num_words),
            *hidden,
            _probability(),
        ],
        name="dense",
    )


def _recurrent(spec: LstmConfig, data: DataConfig, front: list[layers.Layer], name: str) -> keras.Model:
    around = [layers.Dropout(spec.dropout)] if spec.dropout else []
    return keras.Sequential(
        [
            keras.Input(shape=(data.maxlen,), dtype="int32"),
            layers.Embedding(data.num_words, spec.embedding_dim),
            *front,
            *around,
            layers.LSTM(spec.lstm_units, dropout=spec.lstm_dropout, recurrent_dropout=spec.recurrent_dropout),
            *around,
            _probability(),
        ],
        name=name,
    )


@builds("lstm")
def lstm(spec: LstmConfig, data: DataConfig) -> keras.Model:
    return _recurrent(spec, data, [], "lstm")


@builds("cnn_lstm")
def cnn_lstm(spec: CnnLstmConfig, data: DataConfig) -> keras.Model:
    front = [
        layers.Conv1D(spec.conv_filters, spec.conv_kernel_size, padding="same", activation="relu"),
        layers.MaxPooling1D(spec.pool_size),
    ]
    return _recurrent(spec, data, front, "cnn_lstm")


@builds("nbsvm")
def nbsvm(spec: NbsvmConfig, data: DataConfig) -> keras.Model:
    """A linear model on NB-weighted word n-grams (layers.NgramSlots, layers.NbVote), trained from scratch."""
    return keras.Sequential(
        [
            keras.Input(shape=(data.maxlen,), dtype="int32"),
            NgramSlots(spec.features, spec.max_n),
            NbVote(spec.features, spec.interpolation, spec.l2),
            layers.Activation("sigmoid", dtype="float32"),
        ],
        name="nbsvm",
    )


def _over_doc_vectors(spec: DocvecConfig, data: DataConfig, with_slots: bool, head: list, name: str) -> keras.Model:
    """Padded ids -> n-gram slots -> document vectors (with the slots, where the head reads both) -> ``head``."""
    vectors = DocVectors(
        spec.features, spec.dim, spec.learn_epochs, spec.negatives, spec.inference_steps, spec.inference_l2,
        # run.train.build has just seeded numpy's generator with trainer.seed
        seed=int(np.random.randint(2**31 - 1)), threads=spec.learn_threads, with_slots=with_slots,
        dtype="float32",  # under mixed precision too: infer, outside Keras's autocast, must give what call gives
    )  # fmt: skip
    ids = keras.Input(shape=(data.maxlen,), dtype="int32")
    return keras.Sequential([ids, NgramSlots(spec.features, spec.max_n), vectors, *head], name=name)


@builds("docvec")
def docvec(spec: DocvecConfig, data: DataConfig) -> keras.Model:
    """A logistic regression on document vectors over the review's n-grams (models/doc_vectors.py)."""
    return _over_doc_vectors(spec, data, False, [_probability()], "docvec")


@builds("nbsvm_docvec")
def nbsvm_docvec(spec: NbsvmDocvecConfig, data: DataConfig) -> keras.Model:
    """nbsvm's NB-weighted n-grams and docvec's document vector, both of one review, in one logistic regression."""
    both = NbVoteBesideVector(spec.features, spec.dim, spec.interpolation, spec.l2, spec.vector_weight)
    return _over_doc_vectors(spec, data, True, [both, layers.Activation("sigmoid", dtype="float32")], "nbsvm_docvec")


@builds("ngram")
def ngram(spec: NgramConfig, data: DataConfig) -> keras.Model:
    """A bag of words and word pairs; with embedding_dim=1 a logistic regression on n-gram presence."""
    return keras.Sequential(
        [
            keras.Input(shape=(data.maxlen,), dtype="int32"),
            NgramBag(data.num_words, spec.bigrams),
            layers.Embedding(data.num_words + spec.bigrams, spec.embedding_dim, mask_zero=True),
            MaskedSum(),
            _probability(),
        ],
        name="ngram",
    )


@builds("transformer")
def transformer(spec: TransformerConfig, data: DataConfig) -> keras.Model:
    """Encoder blocks over word and position embeddings (keras-hub's layers), then the mean over the words.

    Padding is masked explicitly, in attention and in the mean (an embedding's mask_zero would reach
    the position embedding too, which does not take masks and warns at every trace)."""
    import keras_hub  # a second to import: only the families that use it do

    ids = keras.Input(shape=(data.maxlen,), dtype="int32")
    words = keras.ops.not_equal(ids, 0)
    x = keras_hub.layers.TokenAndPositionEmbedding(data.num_words, data.maxlen, spec.embedding_dim)(ids)
    for _ in range(spec.blocks):
        x = keras_hub.layers.TransformerEncoder(spec.intermediate_dim, spec.num_heads, dropout=spec.dropout)(
            x, padding_mask=words
        )
    x = layers.Dropout(spec.dropout)(layers.GlobalAveragePooling1D()(x, mask=words))
    x = layers.Dropout(spec.dropout)(layers.Dense(spec.hidden_units, activation="relu")(x))
    return keras.Model(ids, _probability()(x), name="transformer")


@builds("bigru")
def bigru(spec: BigruConfig, data: DataConfig) -> keras.Model:
    # Padding is masked: the backward direction would otherwise end its reading on hundreds of zeros.
    cell = {"gru": layers.GRU, "lstm": layers.LSTM}[spec.cell]
    around = [layers.Dropout(spec.dropout)] if spec.dropout else []
    return keras.Sequential(
        [
            keras.Input(shape=(data.maxlen,), dtype="int32"),
            layers.Embedding(data.num_words, spec.embedding_dim, mask_zero=True),
            *around,
            *(layers.Bidirectional(cell(spec.units, return_sequences=i < spec.layers - 1)) for i in range(spec.layers)),
            *around,
            _probability(),
        ],
        name="bigru",
    )


@builds("cnn")
def cnn(spec: CnnConfig, data: DataConfig) -> keras.Model:
    """Kim (2014): convolutions of several widths over the word vectors, each max-pooled over the review."""
    ids = keras.Input(shape=(data.maxlen,), dtype="int32")
    words = layers.Embedding(data.num_words, spec.embedding_dim)(ids)
    convolved = [layers.Conv1D(spec.filters, width, activation="relu")(words) for width in spec.kernel_sizes]
    pooled = [layers.GlobalMaxPooling1D()(features) for features in convolved]
    features = layers.Concatenate()(pooled) if len(pooled) > 1 else pooled[0]
    return keras.Model(ids, _probability()(layers.Dropout(spec.dropout)(features)), name="cnn")


@builds("fasttext")
def fasttext(spec: FasttextConfig, data: DataConfig) -> keras.Model:
    """Joulin et al. (2016): the mean of the word and word-pair vectors, then a linear classifier."""
    return keras.Sequential(
        [
            keras.Input(shape=(data.maxlen,), dtype="int32"),
            HashedBigrams(data.num_words, spec.buckets),
            layers.Embedding(data.num_words + spec.buckets, spec.embedding_dim, mask_zero=True),
            layers.GlobalAveragePooling1D(),
            _probability(),
        ],
        name="fasttext",
    )


@builds("pretrained")
def pretrained(spec: PretrainedConfig, data: DataConfig) -> keras.Model:
    """The preset's classifier (its backbone's weights, a new sigmoid head) with the preset's tokenizer
    inside: it takes raw text, cut to data.maxlen of its tokens, in fit, predict and the saved model."""
    import keras_hub

    try:
        preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(spec.preset, sequence_length=data.maxlen)
        return keras_hub.models.TextClassifier.from_preset(
            spec.preset, num_classes=1, activation="sigmoid", preprocessor=preprocessor, compile=False
        )
    except (ValueError, OSError) as err:
        raise unloadable(spec.preset, err) from None


def unloadable(preset: str, err: Exception) -> ConfigError:
    return ConfigError(
        f"model.preset={preset!r} could not be loaded ({first_line(err)}); give a keras-hub "
        "preset name (downloaded once, which needs network) or the folder of a saved preset"
    )


def sequence_cap(spec: ModelConfig, data: DataConfig) -> int | None:
    """The sequence length the model can take where data.maxlen is longer, else None: a pretrained
    preset's backbone has a fixed number of positions (read from the preset's config alone, before its
    weights or any data), and a longer sequence fails inside the first training step."""
    if spec.family != "pretrained":
        return None
    positions = preset_positions(spec.preset)
    return positions if positions is not None and data.maxlen > positions else None


def preset_positions(preset: str) -> int | None:
    """The positions of a keras-hub preset's backbone, from its config.json (a saved preset folder, or
    a preset name whose config keras-hub downloads); None where the config does not say."""
    from keras_hub.src.utils.preset_utils import load_json  # keras-hub's own reader of a preset's files

    try:
        config = load_json(preset)
    except (ValueError, OSError) as err:
        raise unloadable(preset, err) from None
    # A Keras preset names it in its backbone's config; a Hugging Face (Transformers) one at the top.
    return config.get("config", {}).get("max_sequence_length") or config.get("max_position_embeddings")


# Batch of the one pass of the fixed layers over a split: large, since nothing trains in it.
FIXED_BATCH = 512


def prepare(model: keras.Model, dataset: Dataset) -> tuple[keras.Model, Dataset]:
    """The part of ``model`` that trains, and the dataset it trains on.

    Layers that learn a table from the training reviews (``adapt``) see them before fit, and only
    them: never the validation or test reviews (a layer that LEARNS_FROM_UNLABELED also reads the
    text of data.unlabeled, which holds the test reviews' text only when asked for explicitly). The
    leading layers that are a fixed function of the ids once adapted (FIXED_AFTER_ADAPT: word ids to
    n-gram slots, slots to document vectors) map every split once, here, instead of at every step of
    every epoch; the rest of the model trains on what they return. Its layers are ``model``'s own, so
    ``model`` stays the whole model that serves raw text.
    """
    fixed = 0
    while fixed < len(model.layers) and getattr(model.layers[fixed], "FIXED_AFTER_ADAPT", False):
        fixed += 1
    dataset = _fixed_part_applied(model.layers[:fixed], dataset)
    rest = _reading(dataset.train.x, model.layers[fixed:], name=model.name) if fixed else model
    for layer in rest.layers:
        if hasattr(layer, "adapt"):
            layer.adapt(dataset.train.x, dataset.train.y)
    return rest, dataset


def _fixed_part_applied(stack: list[layers.Layer], dataset: Dataset) -> Dataset:
    """``dataset`` through the fixed layers ``stack``, each adapted first; taken from the previous job
    of this process where it adapted layers of the same settings on the same dataset (a search's
    trials mostly vary what trains: document vectors take minutes to learn and infer)."""
    settings = [{k: v for k, v in layer.get_config().items() if k != "name"} for layer in stack]
    done = between_jobs.fixed_part
    if done is not None and done[0] is dataset and done[1] == settings:
        for layer, weights in zip(stack, done[2], strict=True):
            layer.set_weights(weights)
        return done[3]
    between_jobs.fixed_part = None  # the old arrays go before the new ones are built
    source = dataset
    for i, layer in enumerate(stack):
        if getattr(layer, "LEARNS_FROM_UNLABELED", False):  # data.unlabeled's text: for learning without labels
            layer.adapt(dataset.train.x, dataset.unlabeled)
        else:
            layer.adapt(dataset.train.x)
        if not any(getattr(later, "LEARNS_FROM_UNLABELED", False) for later in stack[i + 1 :]):
            dataset = dataclasses.replace(dataset, unlabeled=None)  # no layer after this one learns from it
        if hasattr(layer, "infer"):  # its own pass, faster than predict's (DocVectors: rows compacted)
            dataset = dataset.mapped(layer.infer)
        else:
            one_layer = _reading(dataset.train.x, [layer])
            dataset = dataset.mapped(lambda x, apply=one_layer: apply.predict(x, batch_size=FIXED_BATCH, verbose=0))
    if stack:
        between_jobs.fixed_part = source, settings, [layer.get_weights() for layer in stack], dataset
    return dataset


def _reading(x, stack: list[layers.Layer], name: str | None = None) -> keras.Model:
    """A model of ``stack`` (layers already built, shared) whose input is rows like those of ``x``."""
    return keras.Sequential([keras.Input(x.shape[1:], dtype=str(x.dtype)), *stack], name=name)


def warn_if_slow(spec: ModelConfig, backend: str) -> None:
    """Python shows a warning once per process, so a sweep warns once."""
    if backend == "torch" and getattr(spec, "recurrent_dropout", 0):
        warnings.warn(
            "model.recurrent_dropout on trainer.backend=torch has no cuDNN kernel and runs each time step "
            "on its own, over 10x slower; prefer trainer.backend=jax",
            stacklevel=2,
        )


def compile_model(model: keras.Model, spec: ModelConfig, optimizer: OptimizerConfig) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.get(
            {
                "class_name": optimizer.name,
                "config": {"learning_rate": optimizer.learning_rate, "clipnorm": optimizer.clipnorm},
            }
        ),
        loss=spec.loss,
        # Named explicitly: with loss=mse the string "accuracy" would not mean binary accuracy.
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    return model
