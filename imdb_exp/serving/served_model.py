"""The logged model's code, which MLflow stores and runs (models from code) instead of unpickling an
object: loading a logged model runs only this file and the package's own modules."""

import mlflow

from imdb_exp.serving.classifier import ReviewClassifier

mlflow.models.set_model(ReviewClassifier())
