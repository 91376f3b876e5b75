"""Raw review text in, probability of "positive" out: the logged MLflow model and imdb-exp-predict.

The logged model carries the Keras model, the vocabulary and the encoding settings, so it
tokenizes and encodes text exactly as training did; `mlflow models serve` and the command below
run the same code.
"""

import argparse
import sys
import zipfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from imdb_exp import process, quiet, store
from imdb_exp.corpus import Reviews, encode_text, word_index
from imdb_exp.data import ENCODERS
from imdb_exp.evaluation import THRESHOLD
from imdb_exp.schema import DataConfig

COLUMN = "review"


def read_vocabulary_tsv(path: str) -> list[str]:
    """The words in rank order from "id<TAB>word" lines (ids 0-3 are markers, not words)."""
    rows = (line.split("\t", 1) for line in Path(path).read_text(encoding="utf-8").splitlines())
    return [word for _, word in sorted((int(i), w) for i, w in rows if int(i) > 3)]


def uses_keras_hub(keras_file: str) -> bool:
    """Whether a saved Keras model names keras-hub's layers or tasks (the transformer and pretrained
    families): only then is keras-hub imported, which takes a second."""
    with zipfile.ZipFile(keras_file) as saved:
        return b'"keras_hub' in saved.read("config.json")


class ReviewClassifier(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        settings = context.model_config
        # Keras picks its backend at first import; a server process has not imported it yet.
        keras = process.use_backend(settings["backend"])
        from imdb_exp import layers  # noqa: F401  (registers the project's layers, which the models use)

        if uses_keras_hub(context.artifacts["keras_model"]):
            with quiet.start_up_notices_dropped():
                import keras_hub  # noqa: F401  (registers its layers and tasks)
        self.model = keras.saving.load_model(context.artifacts["keras_model"], compile=False)
        self.index = word_index(read_vocabulary_tsv(context.artifacts["vocabulary"]))
        self.data = DataConfig(
            encoding=settings["encoding"], num_words=settings["num_words"], maxlen=settings["maxlen"]
        )

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        texts = model_input[COLUMN].astype(str).tolist() if isinstance(model_input, pd.DataFrame) else model_input
        reviews = Reviews.from_lists([encode_text(text, self.index) for text in texts], np.zeros(len(texts)), texts)
        x = ENCODERS[self.data.encoding](reviews, self.data)
        probability = self.model.predict(x, verbose=0).ravel().astype(np.float64)
        label = np.where(probability > THRESHOLD, "positive", "negative")
        return pd.DataFrame({"probability": probability, "label": label})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="imdb-exp-predict",
        description="Classify reviews with a model logged by imdb-exp; prints label and probability per review.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", help="the MLflow run whose model to use")
    which.add_argument("--model", help="a model URI: models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model")
    parser.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI, else the imdb-exp SQLite store")
    parser.add_argument("--file", type=Path, help="a file with one review per line")
    parser.add_argument("reviews", nargs="*", help="review texts; none or '-' reads stdin, one per line")
    args = parser.parse_args(argv)
    if args.file:
        texts = args.file.read_text(encoding="utf-8").splitlines()
    elif args.reviews and args.reviews != ["-"]:
        texts = args.reviews
    else:
        texts = sys.stdin.read().splitlines()
    texts = [text for text in texts if text.strip()]
    if not texts:
        parser.error("no reviews: give them as arguments, with --file, or one per line on stdin")
    process.configure()  # the backends' and MLflow's notices and progress bars kept off the output
    store.activate(store.resolve_uri(args.tracking_uri))
    model_uri = args.model or f"runs:/{args.run_id}/model"
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except mlflow.exceptions.MlflowException as err:
        sys.exit(f"imdb-exp-predict: error: no model at {model_uri} ({str(err).splitlines()[0]})")
    predictions = model.predict(pd.DataFrame({COLUMN: texts}))
    for text, row in zip(texts, predictions.itertuples(), strict=True):
        print(f"{row.label}\t{row.probability:.6f}\t{text[:70]}")
