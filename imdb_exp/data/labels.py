"""What a label and a prediction mean: 1 is a positive review, and a review is called positive when
its probability is above THRESHOLD, as keras.metrics.BinaryAccuracy calls it."""

import numpy as np

THRESHOLD = 0.5


def called_positive(probabilities: np.ndarray) -> np.ndarray:
    return np.asarray(probabilities) > THRESHOLD


def label_names(probabilities: np.ndarray) -> np.ndarray:
    return np.where(called_positive(probabilities), "positive", "negative")
