"""A run's test metrics, ROC curve and misclassified reviews, checked against their definitions."""

import itertools

import numpy as np
import pytest

from imdb_exp.analysis import evaluation
from imdb_exp.data.corpus import Reviews


def pairwise_auc(labels, scores):
    """The AUC's definition: P(score of a positive > score of a negative), ties counting half."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    return np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_matches_its_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) * 0.5 + labels * 0.3, 1)  # coarse: many ties
    curve = evaluation.roc_curve(labels, scores)
    assert curve.auc == pytest.approx(pairwise_auc(labels, scores))
    assert curve.false_positive_rate[-1] == 1.0 and curve.true_positive_rate[-1] == 1.0


def test_threshold_metrics_on_a_hand_counted_example():
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    probabilities = np.array([0.9, 0.8, 0.2, 0.7, 0.1, 0.3, 0.5, 0.6])  # 0.5 itself is negative, as in Keras
    assert evaluation.confusion_matrix(labels, probabilities).tolist() == [[3, 1], [1, 3]]
    metrics = evaluation.test_metrics(labels, probabilities)
    assert metrics["test_accuracy"] == 0.75
    assert metrics["test_precision"] == metrics["test_recall"] == metrics["test_f1"] == 0.75


def test_misclassified_alternates_classes_and_decodes_the_reviews():
    labels = np.array([0, 0, 0, 1, 1])
    probabilities = np.array([0.9, 0.1, 0.8, 0.2, 0.4])  # wrong: 0, 2 (negatives), 3, 4 (positives)
    assert evaluation.misclassified(labels, probabilities, 3) == [3, 0, 4]
    assert evaluation.misclassified(labels, probabilities, 10) == [3, 0, 4, 2]
    reviews = Reviews.from_lists([[1, 4], [1, 5], [1, 4, 5], [1, 5, 5], [1, 4, 4]], labels)
    decode = lambda ids: " ".join("<start>" if i == 1 else str(i) for i in ids)  # noqa: E731
    report = evaluation.misclassified_report(reviews, decode, probabilities, 2)
    assert report.splitlines()[2:] == ["| 3 | positive | 0.2000 | 5 5 |", "| 0 | negative | 0.9000 | 4 |"]
