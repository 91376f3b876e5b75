"""An ensemble's logged model as code (MLflow's models from code): each member's logged model loaded
from the ensemble's artifacts, their probabilities averaged with the chosen weights."""

import mlflow
import numpy as np
import pandas as pd

from imdb_exp.data.labels import label_names
from imdb_exp.serving.classifier import served_settings


class EnsembleClassifier(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.weights = served_settings(context)["weights"]
        self.members = [mlflow.pyfunc.load_model(context.artifacts[f"member_{i}"]) for i in range(len(self.weights))]

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        probability = sum(
            weight * member.predict(model_input)["probability"].to_numpy()
            for weight, member in zip(self.weights, self.members, strict=True)
        )
        return pd.DataFrame({"probability": probability.astype(np.float64), "label": label_names(probability)})


mlflow.models.set_model(EnsembleClassifier())
