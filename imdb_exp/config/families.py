"""One config node per model family: its own keys, their defaults and ranges, and the data encoding
its input layer reads. Registered with Hydra's ConfigStore as model_schema/NAME, which a model's YAML
file selects; models/builders.py has each family's builder, registered by the same name.

The nodes live here, in the config floor, rather than beside their builders: the config is composed
and checked before a Keras backend is chosen, and Keras reads its backend at its first import.
"""

import math
from dataclasses import dataclass, field
from typing import ClassVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from imdb_exp.config.checks import choice, dropout_rate, require


@dataclass
class ModelConfig:
    """What every model family has. A family's node adds its own keys (a run records only those) and
    is registered with ``model_family``; its YAML file in conf/model/ selects it with
    ``/model_schema@model: NAME`` in its defaults, and models.py has its builder."""

    encoding: ClassVar[str]  # the data.encoding its input layer reads
    max_num_words: ClassVar[int | None]  # the largest data.num_words it can take
    learns_from_unlabeled: ClassVar[bool] = False  # whether data.unlabeled gives it anything to learn from

    family: str = MISSING  # the family's name, which picks its builder
    loss: str = "binary_crossentropy"

    def __post_init__(self) -> None:
        require(
            MODEL_FAMILIES.get(self.family) is type(self),
            f"model.family={self.family!r} does not name this model's family; choose a model= option",
        )
        choice("model.loss", self.loss, ("binary_crossentropy", "mse"))
        for key, value in vars(self).items():
            if key.endswith("dropout"):
                dropout_rate(f"model.{key}", value)
            elif isinstance(value, int) and key != "family":
                require(value > 0, f"model.{key}={value} must be > 0")

    def unrepeatable_preparation(self) -> str | None:
        """Why preparing this model again (models/builders.prepare) would not give the same fixed part,
        or None: a checkpoint's epochs were fitted on top of the fixed part, and continue only on it."""
        return None


MODEL_FAMILIES: dict[str, type[ModelConfig]] = {}


def model_family(name: str, encoding: str, max_num_words: int | None = None):
    """Class decorator: the config node of model family ``name``, stored for Hydra as model_schema/NAME."""

    def register(node: type[ModelConfig]) -> type[ModelConfig]:
        node.encoding, node.max_num_words = encoding, max_num_words
        MODEL_FAMILIES[name] = node
        ConfigStore.instance().store(group="model_schema", name=name, node=node)
        return node

    return register


@model_family("dense", encoding="multihot")
@dataclass
class DenseConfig(ModelConfig):
    """The multi-hot MLP: one Dense layer per entry of hidden_units, each followed by Dropout if set."""

    family: str = "dense"
    hidden_units: list[int] = field(default_factory=lambda: [16, 16])
    activation: str = "relu"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(all(u > 0 for u in self.hidden_units), f"model.hidden_units={self.hidden_units} must be > 0")
        choice("model.activation", self.activation, ("relu", "tanh", "sigmoid", "gelu", "elu", "selu"))


@model_family("lstm", encoding="padded")
@dataclass
class LstmConfig(ModelConfig):
    """Embedding -> LSTM -> probability; dropout puts Dropout layers before and after the LSTM."""

    family: str = "lstm"
    embedding_dim: int = 32
    lstm_units: int = 100
    dropout: float = 0.0
    lstm_dropout: float = 0.0  # the LSTM's own input dropout
    recurrent_dropout: float = 0.0


@model_family("cnn_lstm", encoding="padded")
@dataclass
class CnnLstmConfig(LstmConfig):
    """The LSTM with a Conv1D + MaxPooling1D front end."""

    family: str = "cnn_lstm"
    conv_filters: int = 32
    conv_kernel_size: int = 3
    pool_size: int = 2


# A word pair's key, first * num_words + second, must fit in int32 on every backend.
@model_family("ngram", encoding="padded", max_num_words=math.isqrt(2**31 - 1))
@dataclass
class NgramConfig(ModelConfig):
    """Distinct words and word pairs, one learned weight each (embedding_dim=1), summed."""

    family: str = "ngram"
    embedding_dim: int = 1
    bigrams: int = 400000  # how many word pairs to keep: those in the most training reviews


@model_family("nbsvm", encoding="padded")
@dataclass
class NbsvmConfig(ModelConfig):
    """A linear model on Naive-Bayes-weighted word n-grams (layers.NgramSlots and layers.NbVote)."""

    family: str = "nbsvm"
    features: int = 1000000  # how many n-grams to keep: those in the most training reviews
    max_n: int = 3  # uni-, bi- and trigrams
    interpolation: float = 0.0  # a constant added to each learned weight: the pull towards the NB vote
    l2: float = 0.0  # the L2 penalty on the learned weights

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.l2 >= 0, f"model.l2={self.l2} must be >= 0")


@model_family("docvec", encoding="padded")
@dataclass
class DocvecConfig(ModelConfig):
    """Document vectors over word n-grams, learned without labels, then a logistic regression on them
    (models/doc_vectors.py). data.unlabeled adds text they learn from."""

    learns_from_unlabeled: ClassVar[bool] = True

    family: str = "docvec"
    features: int = (
        1000000  # the n-grams (NgramSlots) a vector is learned to predict: those in the most training reviews
    )
    max_n: int = 3
    dim: int = 100  # the vectors' dimensions
    learn_epochs: int = 10  # passes of the unsupervised learning over its documents
    negatives: int = 5  # noise n-grams per n-gram, in learning and in the inference's expected noise term
    inference_steps: int = 30
    inference_l2: float = 1.0  # the pull of an inferred vector towards 0
    learn_threads: int = 1  # more learn faster, but threads race: the vectors then differ from run to run

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.inference_l2 > 0, f"model.inference_l2={self.inference_l2} must be > 0")
        require(self.features < 2**24, f"model.features={self.features} must be < 2^24 (16,777,216)")

    def unrepeatable_preparation(self) -> str | None:
        if self.learn_threads == 1:
            return None
        return (
            f"its document vectors were learned by {self.learn_threads} threads at once (model.learn_threads), which "
            "race: learned again they differ from those its checkpoint's epochs were fitted on"
        )


@model_family("nbsvm_docvec", encoding="padded")
@dataclass
class NbsvmDocvecConfig(DocvecConfig):
    """NB-weighted n-grams (as nbsvm) and document vectors (as docvec) in one logistic regression."""

    family: str = "nbsvm_docvec"
    interpolation: float = 0.0  # as nbsvm's
    l2: float = 0.0  # as nbsvm's
    vector_weight: float = 1.0  # the document vector's scale against the n-grams': how fast its weights move

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.l2 >= 0, f"model.l2={self.l2} must be >= 0")
        require(self.vector_weight > 0, f"model.vector_weight={self.vector_weight} must be > 0")


@model_family("transformer", encoding="padded")
@dataclass
class TransformerConfig(ModelConfig):
    """Token and position embeddings -> encoder blocks (keras-hub's layers) -> the mean over the words ->
    a hidden Dense layer -> probability."""

    family: str = "transformer"
    embedding_dim: int = 32
    num_heads: int = 2
    intermediate_dim: int = 32  # the width of each block's feed-forward part
    blocks: int = 1
    hidden_units: int = 20
    dropout: float = 0.1  # inside each block and before and after the hidden layer


@model_family("bigru", encoding="padded")
@dataclass
class BigruConfig(ModelConfig):
    """Embedding -> stacked bidirectional recurrent layers (GRU or LSTM cells) -> probability."""

    family: str = "bigru"
    cell: str = "gru"  # gru | lstm
    embedding_dim: int = 64
    units: int = 64  # per direction
    layers: int = 1
    dropout: float = 0.0  # on the embeddings and on the last layer's output

    def __post_init__(self) -> None:
        super().__post_init__()
        choice("model.cell", self.cell, ("gru", "lstm"))


@model_family("cnn", encoding="padded")
@dataclass
class CnnConfig(ModelConfig):
    """Embedding -> one Conv1D branch per kernel size, each max-pooled over the review -> dropout -> probability."""

    family: str = "cnn"
    embedding_dim: int = 64
    filters: int = 100  # per branch
    kernel_sizes: list[int] = field(default_factory=lambda: [3, 4, 5])
    dropout: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            bool(self.kernel_sizes) and all(k > 0 for k in self.kernel_sizes),
            f"model.kernel_sizes={self.kernel_sizes} must be one or more sizes > 0",
        )


@model_family("fasttext", encoding="padded")
@dataclass
class FasttextConfig(ModelConfig):
    """The mean of the embeddings of a review's words and of its hashed word pairs -> probability."""

    family: str = "fasttext"
    embedding_dim: int = 16
    buckets: int = 200000  # word pairs share this many embeddings, by hash


@model_family("pretrained", encoding="text")
@dataclass
class PretrainedConfig(ModelConfig):
    """A keras-hub text classifier, its backbone's weights and its tokenizer from a preset, fine-tuned."""

    family: str = "pretrained"
    preset: str = MISSING  # a keras-hub preset name (downloads once) or a local preset folder
