"""Test-set verdicts from predicted probabilities: threshold metrics, the ROC curve, the failures."""

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import metrics

from imdb_exp.data.corpus import Reviews
from imdb_exp.data.labels import called_positive


@dataclass
class RocCurve:
    false_positive_rate: np.ndarray
    true_positive_rate: np.ndarray
    auc: float


def roc_curve(labels: np.ndarray, probabilities: np.ndarray) -> RocCurve:
    """One point per distinct probability, from the strictest threshold down; ties move together."""
    false_positive_rate, true_positive_rate, _ = metrics.roc_curve(labels, probabilities, drop_intermediate=False)
    return RocCurve(false_positive_rate, true_positive_rate, float(metrics.roc_auc_score(labels, probabilities)))


def confusion_matrix(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """2 x 2 counts: rows are the true class (negative, positive), columns the predicted one."""
    predicted = called_positive(probabilities).astype(np.int64)
    return np.bincount(2 * labels.astype(np.int64) + predicted, minlength=4).reshape(2, 2)


def test_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    (tn, fp), (fn, tp) = confusion_matrix(labels, probabilities)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "test_accuracy": float((tp + tn) / len(labels)),
        "test_auc": roc_curve(labels, probabilities).auc,
        "test_precision": float(precision),
        "test_recall": float(recall),
        "test_f1": float(f1),
    }


def misclassified(labels: np.ndarray, probabilities: np.ndarray, count: int) -> list[int]:
    """Indices of the first ``count`` wrong calls, alternating between the two true classes.

    Alternating, because the test split is ordered by label: the first wrong calls overall would
    all be of one kind. When one class runs out, the other fills the rest.
    """
    wrong = called_positive(probabilities) != labels.astype(bool)
    by_class = [np.flatnonzero(wrong & (labels == c)).tolist() for c in (1, 0)]
    alternating = [i for pair in itertools.zip_longest(*by_class) for i in pair if i is not None]
    return alternating[:count]


def misclassified_report(
    reviews: Reviews, decode: Callable[[np.ndarray], str], probabilities: np.ndarray, count: int
) -> str:
    """A markdown table of the first ``count`` wrong calls, each review decoded back to words."""
    lines = ["| review | true label | P(positive) | text |", "| --- | --- | --- | --- |"]
    for i in misclassified(reviews.labels, probabilities, count):
        text = decode(reviews.ids[reviews.offsets[i] : reviews.offsets[i + 1]]).removeprefix("<start> ")
        label = "positive" if reviews.labels[i] else "negative"
        lines.append(f"| {i} | {label} | {probabilities[i]:.4f} | {text.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
