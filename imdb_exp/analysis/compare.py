"""imdb-exp-compare RUN_A RUN_B: whether two runs' test accuracies differ beyond chance.

Both runs tested every review of one test set, so the comparison is paired, review by review:
the difference of accuracies with a bootstrap 95% interval (the test reviews resampled), and
McNemar's exact test on the reviews that exactly one of the two gets right. Runs tested on other
reviews (another archive, another test set) are refused.
"""

from dataclasses import dataclass

import numpy as np
from scipy import stats

from imdb_exp.analysis.predictions import Predictions, PredictionsError

LEVEL = 0.05
RESAMPLES = 10_000


@dataclass(frozen=True)
class Comparison:
    reviews: int
    accuracy_a: float
    accuracy_b: float
    only_a: int  # reviews A gets right and B does not
    only_b: int
    both: int
    interval: tuple[float, float]  # of accuracy_a - accuracy_b, 95%, bootstrap
    p_value: float  # McNemar's exact test, two-sided

    @property
    def difference(self) -> float:
        return self.accuracy_a - self.accuracy_b


def compare(a: Predictions, b: Predictions, seed: int = 0) -> Comparison:
    """PredictionsError when the two were not tested on the same reviews."""
    if a.source != b.source:
        raise PredictionsError(f"the runs were tested on different data: {a.source[:16]} and {b.source[:16]}")
    if not np.array_equal(a.test.rows, b.test.rows):
        raise PredictionsError(
            f"the runs were tested on different reviews ({len(a.test.rows)} and {len(b.test.rows)} test reviews)"
        )
    right_a, right_b = a.test.correct(), b.test.correct()
    n = len(right_a)
    only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(right_b & ~right_a))
    # Resampling the reviews only moves how many fall in each of three kinds (only A right, only B
    # right, the rest): one multinomial draw per resample gives the resampled difference exactly.
    counts = np.random.default_rng(seed).multinomial(n, [only_a / n, only_b / n, 1 - (only_a + only_b) / n], RESAMPLES)
    differences = (counts[:, 0] - counts[:, 1]) / n
    low, high = np.percentile(differences, [2.5, 97.5])
    both = int(np.sum(right_a & right_b))
    p = mcnemar_p(right_a, right_b)
    return Comparison(n, float(right_a.mean()), float(right_b.mean()), only_a, only_b, both, (low, high), p)


def mcnemar_p(right_a: np.ndarray, right_b: np.ndarray) -> float:
    """McNemar's exact test, two-sided: are the reviews only A gets right as many as those only B does?"""
    only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(right_b & ~right_a))
    discordant = only_a + only_b
    return float(stats.binomtest(min(only_a, only_b), discordant, 0.5).pvalue) if discordant else 1.0


def report(comparison: Comparison, name_a: str, name_b: str) -> str:
    c = comparison
    verdict = "beyond chance" if c.p_value < LEVEL else "not beyond chance"
    return "\n".join(
        [
            f"A {name_a}: test accuracy {c.accuracy_a:.4f}",
            f"B {name_b}: test accuracy {c.accuracy_b:.4f}",
            f"A - B: {c.difference:+.4f}, 95% interval {c.interval[0]:+.4f} to {c.interval[1]:+.4f} "
            f"(bootstrap, {RESAMPLES:,} resamples of the {c.reviews:,} test reviews)",
            f"reviews only A gets right: {c.only_a:,}; only B: {c.only_b:,}; both: {c.both:,}; "
            f"neither: {c.reviews - c.only_a - c.only_b - c.both:,}",
            f"McNemar's exact test: p = {c.p_value:.3g}; the difference is {verdict} at {LEVEL:.0%}",
        ]
    )
