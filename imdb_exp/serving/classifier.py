"""Raw review text in, probability of "positive" out: the code of the logged MLflow model.

The logged model carries the Keras model, the vocabulary and the encoding settings, so it
tokenizes and encodes text exactly as training did; `mlflow models serve` and imdb-exp-predict
run the same code.
"""

import json
import zipfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from imdb_exp.config.schema import DataConfig
from imdb_exp.data.corpus import Reviews, encode_text, word_index
from imdb_exp.data.labels import label_names
from imdb_exp.data.splits import ENCODERS
from imdb_exp.runtime import process, quiet

COLUMN = "review"
SETTINGS = "settings"  # the artifact of a served model's settings (its backend, encoding, ensemble weights)


def served_settings(context) -> dict:
    """A logged model's settings; a model logged before they were an artifact has them as its config."""
    if SETTINGS in context.artifacts:
        return json.loads(Path(context.artifacts[SETTINGS]).read_text())
    return context.model_config


def read_vocabulary_tsv(path: str) -> list[str]:
    """The words in rank order from "id<TAB>word" lines (ids 0-3 are markers, not words; a header line
    of column names is skipped)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    rows = (line.split("\t", 1) for line in lines if line.split("\t", 1)[0].isdigit())
    return [word for _, word in sorted((int(i), w) for i, w in rows if int(i) > 3)]


def uses_keras_hub(keras_file: str) -> bool:
    """Whether a saved Keras model names keras-hub's layers or tasks (the transformer and pretrained
    families): only then is keras-hub imported, which takes a second."""
    with zipfile.ZipFile(keras_file) as saved:
        return b'"keras_hub' in saved.read("config.json")


class ReviewClassifier(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        served = served_settings(context)
        # Keras picks its backend at first import; a server process has not imported it yet.
        keras = process.use_backend(served["backend"])
        from imdb_exp.models import doc_vectors, layers  # noqa: F401  registers the project's layers, which the models use

        if uses_keras_hub(context.artifacts["keras_model"]):
            with quiet.start_up_notices_dropped():
                import keras_hub  # noqa: F401  (registers its layers and tasks)
        self.model = keras.saving.load_model(context.artifacts["keras_model"], compile=False)
        self.index = word_index(read_vocabulary_tsv(context.artifacts["vocabulary"]))
        self.data = DataConfig(encoding=served["encoding"], num_words=served["num_words"], maxlen=served["maxlen"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        texts = model_input[COLUMN].astype(str).tolist() if isinstance(model_input, pd.DataFrame) else model_input
        reviews = Reviews.from_lists([encode_text(text, self.index) for text in texts], np.zeros(len(texts)), texts)
        x = ENCODERS[self.data.encoding](reviews, self.data)
        probability = self.model.predict(x, verbose=0).ravel().astype(np.float64)
        return pd.DataFrame({"probability": probability, "label": label_names(probability)})
