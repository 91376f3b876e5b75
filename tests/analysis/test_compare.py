"""Two runs compared review by review: kept predictions, the paired difference, McNemar's test."""

import numpy as np
import pytest

from imdb_exp.analysis.compare import compare
from imdb_exp.analysis.predictions import Predictions, PredictionsError, Scored


def predicted(right: np.ndarray, source: str = "archive-sha") -> Predictions:
    """Predictions that get exactly the reviews in ``right`` right (labels all positive)."""
    rows = np.arange(len(right))
    return Predictions(source, Scored(rows, np.ones(len(right)), np.where(right, 0.9, 0.1)), None)


def test_the_paired_difference_its_interval_and_mcnemars_exact_p_value():
    # 100 reviews: both right on 80, only A on 10, only B on 2, neither on 8.
    a = np.array([True] * 80 + [True] * 10 + [False] * 2 + [False] * 8)
    b = np.array([True] * 80 + [False] * 10 + [True] * 2 + [False] * 8)
    c = compare(predicted(a), predicted(b))
    assert (c.accuracy_a, c.accuracy_b, c.only_a, c.only_b, c.both) == (0.9, 0.82, 10, 2, 80)
    assert c.difference == pytest.approx(0.08)
    # Two-sided exact binomial test of 2 successes in 12 at p = 1/2: 2 * (1 + 12 + 66) / 4096.
    assert c.p_value == pytest.approx(2 * 79 / 4096)
    # The bootstrap's spread: the sd of the paired difference's mean is sqrt((0.12 - 0.08**2) / 100).
    sd = np.sqrt((0.12 - 0.08**2) / 100)
    assert c.interval[0] == pytest.approx(0.08 - 1.96 * sd, abs=0.01) and c.interval[1] == pytest.approx(
        0.08 + 1.96 * sd, abs=0.01
    )
    same = compare(predicted(a), predicted(a))
    assert (same.p_value, same.interval) == (1.0, (0.0, 0.0))


def test_runs_tested_on_other_reviews_are_refused():
    right = np.ones(10, bool)
    with pytest.raises(PredictionsError, match="tested on different data"):
        compare(predicted(right), predicted(right, source="another-archive"))
    with pytest.raises(PredictionsError, match="tested on different reviews"):
        compare(predicted(right), predicted(right[:8]))
